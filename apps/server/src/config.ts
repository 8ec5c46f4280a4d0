import { resolve } from "node:path"
import {
  type AuthConfig,
  base64Length,
  DEFAULT_LIMITS,
  DEV_OWNER_ID,
  isDevMode,
  type Limits,
  MAX_LARGE_VALUE_THRESHOLD,
} from "@chronicle/api"
import { DEFAULT_ALLOWED_MIME_TYPES, DEFAULT_SESSION_TTL_HOURS } from "@chronicle/domain"
import { DEFAULT_MIN_PASS_INTERVAL_MS } from "@chronicle/store"

/** Where the data lives: the embedded database (on disk or in memory) or a Postgres server. */
export type DatabaseConfig =
  | { readonly kind: "embedded"; readonly dataDir: string }
  | { readonly kind: "memory" }
  | {
      readonly kind: "postgres"
      readonly url: string
      readonly prepare: boolean
      readonly listen: boolean
      /** What sits between Chronicle and Postgres (CHRONICLE_PG_POOLER, or guessed from the URL). */
      readonly pooler: Pooler
      /**
       * How often the process that orders the log looks for events other processes appended
       * (CHRONICLE_SEQUENCER_POLL_MS); its own are ordered as they commit.
       */
      readonly sequencerPollMs?: number
      /**
       * The least time between two passes of the sequencer while appends keep coming
       * (CHRONICLE_SEQUENCER_MIN_PASS_MS, 0 to 1000; 0: a pass after every commit).
       */
      readonly sequencerMinPassMs?: number
    }

/**
 * A transaction-mode pooler (PgBouncer `pool_mode=transaction`, Supavisor on 6543) gives a
 * server connection for one transaction at a time: no prepared statements, no LISTEN, and no
 * query pipelined behind a running one. A session-mode pooler keeps one for the session.
 */
export type Pooler = "transaction" | "session" | "none"

/** The ports of the usual transaction-mode poolers: Supavisor (6543) and PgBouncer (6432). */
const POOLER_PORTS = ["6543", "6432"]

export type LogLevel = "Debug" | "Info" | "Warn" | "Error" | "None"

export interface ServerConfig {
  readonly database: DatabaseConfig
  readonly host: string
  readonly port: number
  /** Empty: dev mode (every request is the dev user; loopback addresses only). */
  readonly auth: AuthConfig
  readonly limits: Limits
  readonly logLevel: LogLevel
  /** How long a shutdown waits for in-flight requests before closing their connections. */
  readonly shutdownTimeoutMs: number
  /** Sessions idle longer than this many hours are expired; 0 = never (CHRONICLE_SESSION_TTL_HOURS). */
  readonly sessionTtlHours: number
  /**
   * Sessions expired for this many days are purged (content erased) by the sweep; 0 = never
   * (CHRONICLE_PURGE_EXPIRED_AFTER_DAYS).
   */
  readonly purgeExpiredAfterDays: number
  /**
   * LangGraph threads keep this many checkpoints per thread and namespace; the sweep prunes
   * the older ones; 0 = keep all (CHRONICLE_GRAPH_KEEP_CHECKPOINTS).
   */
  readonly graphKeepCheckpoints: number
  /** MIME types files.put accepts; `type/*` allows a family (CHRONICLE_ALLOWED_MIME_TYPES). */
  readonly allowedMimeTypes: ReadonlyArray<string>
  /**
   * How long a client may take to send a whole request, headers and body
   * (CHRONICLE_REQUEST_TIMEOUT_MS); the headers alone get at most 10 s of it. Answered 408.
   */
  readonly requestTimeoutMs: number
}

export class ConfigError extends Error {
  override readonly name = "ConfigError"
}

const DEFAULT_DATA_DIR = ".chronicle/data"

const flag = (env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean => {
  const raw = env[name]
  if (raw === undefined || raw === "") return fallback
  if (["1", "true", "yes", "on"].includes(raw.toLowerCase())) return true
  if (["0", "false", "no", "off"].includes(raw.toLowerCase())) return false
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(raw)}`)
}

/**
 * Reads the database settings from the environment:
 * - DATABASE_URL unset: the embedded database in CHRONICLE_DATA_DIR (default ./.chronicle/data)
 * - DATABASE_URL=memory://: the embedded database in memory; nothing persists
 * - DATABASE_URL=postgres://… (or postgresql://…): Postgres or Supabase, direct or through a
 *   pooler: CHRONICLE_PG_POOLER=transaction|session|none, or else a transaction-mode pooler
 *   when the port is 6543 or 6432 or the URL says `?pgbouncer=true` (a parameter for
 *   Chronicle, taken off the URL before connecting).
 */
export const databaseConfig = (env: NodeJS.ProcessEnv = process.env): DatabaseConfig => {
  const url = env.DATABASE_URL?.trim()
  if (url === undefined || url === "") {
    return { kind: "embedded", dataDir: resolve(env.CHRONICLE_DATA_DIR?.trim() || DEFAULT_DATA_DIR) }
  }
  if (url === "memory://" || url === "memory:") return { kind: "memory" }
  if (/^postgres(ql)?:\/\//.test(url)) {
    try {
      new URL(url)
    } catch {
      throw new ConfigError("DATABASE_URL is not a valid URL")
    }
    const parsed = new URL(url)
    const marked = parsed.searchParams.get("pgbouncer")
    parsed.searchParams.delete("pgbouncer")
    const explicit = setting(env, "CHRONICLE_PG_POOLER")?.toLowerCase()
    if (explicit !== undefined && !["transaction", "session", "none"].includes(explicit)) {
      throw new ConfigError(
        `CHRONICLE_PG_POOLER must be transaction, session or none, got ${JSON.stringify(explicit)}`,
      )
    }
    const pooler: Pooler =
      (explicit as Pooler | undefined) ??
      (marked === "true" || POOLER_PORTS.includes(parsed.port) ? "transaction" : "none")
    const transactionMode = pooler === "transaction"
    return {
      kind: "postgres",
      url: marked === null ? url : parsed.toString(),
      prepare: flag(env, "CHRONICLE_PG_PREPARE", !transactionMode),
      listen: flag(env, "CHRONICLE_PG_LISTEN", !transactionMode),
      pooler,
      sequencerPollMs: milliseconds(env, "CHRONICLE_SEQUENCER_POLL_MS", 20),
      sequencerMinPassMs: millisecondsUpTo(
        env,
        "CHRONICLE_SEQUENCER_MIN_PASS_MS",
        DEFAULT_MIN_PASS_INTERVAL_MS,
        0,
        1000,
      ),
    }
  }
  throw new ConfigError(
    `DATABASE_URL must be postgres://…, postgresql://… or memory://, got a URL starting ${JSON.stringify(url.split(":")[0])}`,
  )
}

/** A whole number of milliseconds from 1 to 60,000. */
const millisecondsUpTo = (
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number => {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `${name} must be a whole number of milliseconds from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    )
  }
  return value
}

const milliseconds = (env: NodeJS.ProcessEnv, name: string, fallback: number): number =>
  millisecondsUpTo(env, name, fallback, 1, 60_000)

const setting = (env: NodeJS.ProcessEnv, name: string): string | undefined => {
  const value = env[name]?.trim()
  return value === undefined || value === "" ? undefined : value
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kib: 1024,
  kb: 1024,
  mib: 1024 ** 2,
  mb: 1024 ** 2,
  gib: 1024 ** 3,
}

/** A size in bytes: `1048576`, `512KiB`, `12MiB` (KB/MB are read as KiB/MiB). */
const bytes = (env: NodeJS.ProcessEnv, name: string, fallback: number): number => {
  const raw = setting(env, name)
  if (raw === undefined) return fallback
  const match = /^(\d+)\s*([a-z]*)$/i.exec(raw)
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined
  const value = match && unit !== undefined ? Number(match[1]) * unit : Number.NaN
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(
      `${name} must be a size in bytes such as 1048576, 512KiB or 12MiB, got ${JSON.stringify(raw)}`,
    )
  }
  return value
}

/**
 * Auth settings: SUPABASE_URL (the project; its JWKS verifies asymmetric tokens),
 * SUPABASE_JWT_SECRET (HS256 tokens), CHRONICLE_SERVICE_KEY (the service role),
 * SUPABASE_ANON_KEY (optional, sent when fetching the JWKS), SUPABASE_AUTH_CHECK_USER (also ask
 * the Auth server about each user's token, at most once a minute per token). None set: dev mode.
 */
export const authConfig = (env: NodeJS.ProcessEnv = process.env): AuthConfig => {
  const supabaseUrl = setting(env, "SUPABASE_URL")
  const jwtSecret = setting(env, "SUPABASE_JWT_SECRET")
  const serviceKey = setting(env, "CHRONICLE_SERVICE_KEY")
  const anonKey = setting(env, "SUPABASE_ANON_KEY")
  const checkUser = flag(env, "SUPABASE_AUTH_CHECK_USER", false)
  if (checkUser && (supabaseUrl === undefined || anonKey === undefined)) {
    throw new ConfigError(
      "SUPABASE_AUTH_CHECK_USER asks the Auth server about each user's token: it needs SUPABASE_URL (where the server is) and SUPABASE_ANON_KEY (the apikey it wants)",
    )
  }
  if (supabaseUrl !== undefined) {
    let url: URL | undefined
    try {
      url = new URL(supabaseUrl)
    } catch {}
    if (url === undefined || !["http:", "https:"].includes(url.protocol)) {
      throw new ConfigError(
        `SUPABASE_URL must be the project URL, such as https://<project>.supabase.co, got ${JSON.stringify(supabaseUrl)}`,
      )
    }
  }
  if (jwtSecret !== undefined && supabaseUrl === undefined) {
    throw new ConfigError(
      "SUPABASE_JWT_SECRET is set but SUPABASE_URL is not: set SUPABASE_URL to the project URL, the issuer of the tokens the secret verifies",
    )
  }
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new ConfigError("SUPABASE_JWT_SECRET must be at least 32 characters (the project's JWT secret)")
  }
  if (serviceKey !== undefined && serviceKey.length < 32) {
    throw new ConfigError(
      "CHRONICLE_SERVICE_KEY must be at least 32 characters; generate one with `openssl rand -hex 32`",
    )
  }
  return {
    ...(supabaseUrl === undefined ? {} : { supabaseUrl }),
    ...(jwtSecret === undefined ? {} : { jwtSecret }),
    ...(serviceKey === undefined ? {} : { serviceKey }),
    ...(anonKey === undefined ? {} : { anonKey }),
    ...(checkUser ? { checkUser } : {}),
  }
}

/** A whole number >= 0 (0 often meaning "no limit"). */
const count = (env: NodeJS.ProcessEnv, name: string, fallback: number): number => {
  const raw = setting(env, name)
  if (raw === undefined) return fallback
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(value)) {
    throw new ConfigError(`${name} must be a whole number (0 for no limit), got ${JSON.stringify(raw)}`)
  }
  return value
}

/**
 * Size limits: CHRONICLE_MAX_BODY_BYTES (default 32 MiB), CHRONICLE_MAX_MESSAGE_BYTES
 * (default 16 MiB; values over CHRONICLE_LARGE_VALUE_BYTES, default 64 KiB, go to the blob store), CHRONICLE_MAX_FILE_BYTES (default 10 MiB; base64-encoded it must fit in
 * a request body); response budgets: CHRONICLE_MAX_RESPONSE_BYTES (default 32 MiB, a whole
 * response) and CHRONICLE_MAX_PAGE_BYTES (default 4 MiB, one list page); concurrency per
 * user: CHRONICLE_MAX_CONCURRENT_QUERIES (8) and CHRONICLE_MAX_SUBSCRIPTIONS (32). List
 * pages (max 500 items), batches (max 500 items) and calls per batched request (100) are
 * fixed by the API.
 */
export const limitsConfig = (env: NodeJS.ProcessEnv = process.env): Limits => {
  const maxBodyBytes = bytes(env, "CHRONICLE_MAX_BODY_BYTES", DEFAULT_LIMITS.maxBodyBytes)
  const maxMessageBytes = bytes(env, "CHRONICLE_MAX_MESSAGE_BYTES", DEFAULT_LIMITS.maxMessageBytes)
  const maxFileBytes = bytes(env, "CHRONICLE_MAX_FILE_BYTES", DEFAULT_LIMITS.maxFileBytes)
  const largeValueBytes = bytes(env, "CHRONICLE_LARGE_VALUE_BYTES", DEFAULT_LIMITS.largeValueBytes)
  if (largeValueBytes > MAX_LARGE_VALUE_THRESHOLD) {
    throw new ConfigError(
      `CHRONICLE_LARGE_VALUE_BYTES (${largeValueBytes}) must be at most ${MAX_LARGE_VALUE_THRESHOLD}: values below it stay in the event, whose size is limited`,
    )
  }
  const maxResponseBytes = bytes(env, "CHRONICLE_MAX_RESPONSE_BYTES", DEFAULT_LIMITS.maxResponseBytes)
  const maxPageBytes = bytes(env, "CHRONICLE_MAX_PAGE_BYTES", DEFAULT_LIMITS.maxPageBytes)
  const maxConcurrentQueries = count(
    env,
    "CHRONICLE_MAX_CONCURRENT_QUERIES",
    DEFAULT_LIMITS.maxConcurrentQueries,
  )
  const maxSubscriptions = count(env, "CHRONICLE_MAX_SUBSCRIPTIONS", DEFAULT_LIMITS.maxSubscriptions)
  if (maxMessageBytes >= maxBodyBytes) {
    throw new ConfigError(
      `CHRONICLE_MAX_MESSAGE_BYTES (${maxMessageBytes}) must be below CHRONICLE_MAX_BODY_BYTES (${maxBodyBytes}): a message travels in a request body`,
    )
  }
  const encodedFile = base64Length(maxFileBytes)
  if (encodedFile + 64 * 1024 > maxBodyBytes) {
    throw new ConfigError(
      `CHRONICLE_MAX_FILE_BYTES (${maxFileBytes}) is ${encodedFile} bytes base64-encoded, which with the rest of the request does not fit in CHRONICLE_MAX_BODY_BYTES (${maxBodyBytes}): raise the body limit or lower the file limit`,
    )
  }
  if (maxPageBytes > maxResponseBytes) {
    throw new ConfigError(
      `CHRONICLE_MAX_PAGE_BYTES (${maxPageBytes}) must not be above CHRONICLE_MAX_RESPONSE_BYTES (${maxResponseBytes}): a page travels in a response`,
    )
  }
  if (maxMessageBytes + 64 * 1024 > maxResponseBytes) {
    throw new ConfigError(
      `CHRONICLE_MAX_MESSAGE_BYTES (${maxMessageBytes}) does not fit in a response of CHRONICLE_MAX_RESPONSE_BYTES (${maxResponseBytes}): messages.list could never return such a message. Raise the response budget or lower the message limit`,
    )
  }
  if (encodedFile + 64 * 1024 > maxResponseBytes) {
    throw new ConfigError(
      `CHRONICLE_MAX_FILE_BYTES (${maxFileBytes}) is ${encodedFile} bytes base64-encoded, which does not fit in a response of CHRONICLE_MAX_RESPONSE_BYTES (${maxResponseBytes}): files.get could never return it. Raise the response budget or lower the file limit`,
    )
  }
  return {
    ...DEFAULT_LIMITS,
    maxBodyBytes,
    maxMessageBytes,
    largeValueBytes,
    maxFileBytes,
    maxResponseBytes,
    maxPageBytes,
    maxConcurrentQueries,
    maxSubscriptions,
  }
}

const LOG_LEVELS: Record<string, LogLevel> = {
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
  none: "None",
  off: "None",
}

/** Whether `host` only accepts connections from this machine. */
export const isLoopback = (host: string): boolean => {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "")
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\./.test(h)
}

export const serverConfig = (env: NodeJS.ProcessEnv = process.env): ServerConfig => {
  const port = env.PORT === undefined || env.PORT === "" ? 4000 : Number(env.PORT)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`PORT must be a whole number from 0 to 65535, got ${JSON.stringify(env.PORT)}`)
  }
  const host = setting(env, "HOST") ?? "127.0.0.1"
  const auth = authConfig(env)
  if (isDevMode(auth) && !isLoopback(host)) {
    throw new ConfigError(
      `HOST=${host} is not a loopback address, and no auth is configured: without SUPABASE_URL, SUPABASE_JWT_SECRET or CHRONICLE_SERVICE_KEY the server runs in dev mode, where every request acts as the dev user ${DEV_OWNER_ID}. Configure auth, or bind to 127.0.0.1.`,
    )
  }
  const rawLevel = setting(env, "CHRONICLE_LOG_LEVEL")
  const logLevel = rawLevel === undefined ? "Info" : LOG_LEVELS[rawLevel.toLowerCase()]
  if (logLevel === undefined) {
    throw new ConfigError(
      `CHRONICLE_LOG_LEVEL must be debug, info, warn, error or none, got ${JSON.stringify(rawLevel)}`,
    )
  }
  const rawTimeout = setting(env, "CHRONICLE_SHUTDOWN_TIMEOUT_MS")
  const shutdownTimeoutMs = rawTimeout === undefined ? 10_000 : Number(rawTimeout)
  if (!Number.isInteger(shutdownTimeoutMs) || shutdownTimeoutMs < 0) {
    throw new ConfigError(
      `CHRONICLE_SHUTDOWN_TIMEOUT_MS must be a whole number of milliseconds, got ${JSON.stringify(rawTimeout)}`,
    )
  }
  const rawTtl = setting(env, "CHRONICLE_SESSION_TTL_HOURS")
  const sessionTtlHours = rawTtl === undefined ? DEFAULT_SESSION_TTL_HOURS : Number(rawTtl)
  if (!Number.isFinite(sessionTtlHours) || sessionTtlHours < 0) {
    throw new ConfigError(
      `CHRONICLE_SESSION_TTL_HOURS must be a number of hours >= 0 (0 = never expire), got ${JSON.stringify(rawTtl)}`,
    )
  }
  const rawPurge = setting(env, "CHRONICLE_PURGE_EXPIRED_AFTER_DAYS")
  const purgeExpiredAfterDays = rawPurge === undefined ? 0 : Number(rawPurge)
  if (!Number.isFinite(purgeExpiredAfterDays) || purgeExpiredAfterDays < 0) {
    throw new ConfigError(
      `CHRONICLE_PURGE_EXPIRED_AFTER_DAYS must be a number of days >= 0 (0 = never purge), got ${JSON.stringify(rawPurge)}`,
    )
  }
  const rawKeep = setting(env, "CHRONICLE_GRAPH_KEEP_CHECKPOINTS")
  const graphKeepCheckpoints = rawKeep === undefined ? 0 : Number(rawKeep)
  if (
    !Number.isInteger(graphKeepCheckpoints) ||
    graphKeepCheckpoints < 0 ||
    graphKeepCheckpoints > 2_147_483_647
  ) {
    throw new ConfigError(
      `CHRONICLE_GRAPH_KEEP_CHECKPOINTS must be a whole number of checkpoints >= 0 (0 = keep all), got ${JSON.stringify(rawKeep)}`,
    )
  }
  const rawMime = setting(env, "CHRONICLE_ALLOWED_MIME_TYPES")
  const allowedMimeTypes =
    rawMime === undefined ? DEFAULT_ALLOWED_MIME_TYPES : rawMime.split(",").map((m) => m.trim().toLowerCase())
  const badMime = allowedMimeTypes.find(
    (m) => !/^[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/.test(m),
  )
  if (badMime !== undefined) {
    throw new ConfigError(
      `CHRONICLE_ALLOWED_MIME_TYPES must be a comma-separated list such as text/*,application/json, got ${JSON.stringify(badMime)}`,
    )
  }
  const rawRequestTimeout = setting(env, "CHRONICLE_REQUEST_TIMEOUT_MS")
  const requestTimeoutMs = rawRequestTimeout === undefined ? 30_000 : Number(rawRequestTimeout)
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1_000) {
    throw new ConfigError(
      `CHRONICLE_REQUEST_TIMEOUT_MS must be a whole number of milliseconds, at least 1000, got ${JSON.stringify(rawRequestTimeout)}`,
    )
  }
  return {
    sessionTtlHours,
    purgeExpiredAfterDays,
    graphKeepCheckpoints,
    allowedMimeTypes,
    requestTimeoutMs,
    database: databaseConfig(env),
    host,
    port,
    auth,
    limits: limitsConfig(env),
    logLevel,
    shutdownTimeoutMs,
  }
}
