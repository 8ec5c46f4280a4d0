import { resolve } from "node:path"
import { DEFAULT_LIMITS } from "@chronicle/api"
import { DEFAULT_ALLOWED_MIME_TYPES } from "@chronicle/domain"
import { describe, expect, it } from "vitest"
import {
  authConfig,
  ConfigError,
  databaseConfig,
  isLoopback,
  limitsConfig,
  serverConfig,
} from "../src/config.ts"

describe("configuration from the environment", () => {
  it("defaults to the embedded database in ./.chronicle/data on 127.0.0.1:4000, in dev mode", () => {
    expect(serverConfig({})).toEqual({
      database: { kind: "embedded", dataDir: resolve(".chronicle/data") },
      host: "127.0.0.1",
      port: 4000,
      auth: {},
      limits: DEFAULT_LIMITS,
      logLevel: "Info",
      shutdownTimeoutMs: 10_000,
      sessionTtlHours: 720,
      purgeExpiredAfterDays: 0,
      graphKeepCheckpoints: 0,
      allowedMimeTypes: DEFAULT_ALLOWED_MIME_TYPES,
      requestTimeoutMs: 30_000,
    })
  })

  it("reads the session TTL and the MIME allow-list, refusing malformed values by name", () => {
    expect(serverConfig({ CHRONICLE_SESSION_TTL_HOURS: "0" }).sessionTtlHours).toBe(0)
    expect(
      serverConfig({ CHRONICLE_ALLOWED_MIME_TYPES: "text/*, Application/JSON" }).allowedMimeTypes,
    ).toEqual(["text/*", "application/json"])
    expect(() => serverConfig({ CHRONICLE_SESSION_TTL_HOURS: "-1" })).toThrow(
      /CHRONICLE_SESSION_TTL_HOURS must be/,
    )
    expect(serverConfig({ CHRONICLE_PURGE_EXPIRED_AFTER_DAYS: "90" }).purgeExpiredAfterDays).toBe(90)
    expect(() => serverConfig({ CHRONICLE_PURGE_EXPIRED_AFTER_DAYS: "soon" })).toThrow(
      /CHRONICLE_PURGE_EXPIRED_AFTER_DAYS must be a number of days >= 0/,
    )
    expect(serverConfig({ CHRONICLE_GRAPH_KEEP_CHECKPOINTS: "5" }).graphKeepCheckpoints).toBe(5)
    expect(() => serverConfig({ CHRONICLE_GRAPH_KEEP_CHECKPOINTS: "2.5" })).toThrow(
      /CHRONICLE_GRAPH_KEEP_CHECKPOINTS must be a whole number of checkpoints >= 0/,
    )
    expect(() => serverConfig({ CHRONICLE_ALLOWED_MIME_TYPES: "text" })).toThrow(
      /CHRONICLE_ALLOWED_MIME_TYPES must be/,
    )
  })

  it("honours CHRONICLE_DATA_DIR, memory:// and postgres URLs", () => {
    expect(databaseConfig({ CHRONICLE_DATA_DIR: "/tmp/x" })).toEqual({ kind: "embedded", dataDir: "/tmp/x" })
    expect(databaseConfig({ DATABASE_URL: "memory://" })).toEqual({ kind: "memory" })
    expect(databaseConfig({ DATABASE_URL: "postgresql://u:p@db:5432/app" })).toEqual({
      kind: "postgres",
      url: "postgresql://u:p@db:5432/app",
      prepare: true,
      listen: true,
      pooler: "none",
      sequencerPollMs: 20,
      sequencerMinPassMs: 5,
    })
    expect(
      databaseConfig({ DATABASE_URL: "postgres://db/app", CHRONICLE_SEQUENCER_POLL_MS: "250" }),
    ).toMatchObject({ sequencerPollMs: 250 })
    expect(
      databaseConfig({ DATABASE_URL: "postgres://db/app", CHRONICLE_SEQUENCER_MIN_PASS_MS: "0" }),
    ).toMatchObject({ sequencerMinPassMs: 0 })
    expect(() =>
      databaseConfig({ DATABASE_URL: "postgres://db/app", CHRONICLE_SEQUENCER_MIN_PASS_MS: "2.5" }),
    ).toThrow(
      'CHRONICLE_SEQUENCER_MIN_PASS_MS must be a whole number of milliseconds from 0 to 1000, got "2.5"',
    )
    expect(() =>
      databaseConfig({ DATABASE_URL: "postgres://db/app", CHRONICLE_SEQUENCER_POLL_MS: "0" }),
    ).toThrow("CHRONICLE_SEQUENCER_POLL_MS must be a whole number of milliseconds from 1 to 60000")
  })

  it("detects a transaction-mode pooler by CHRONICLE_PG_POOLER, port 6543 or 6432, or ?pgbouncer=true", () => {
    const transaction = { prepare: false, listen: false, pooler: "transaction" }
    expect(databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6543/app" })).toMatchObject(transaction)
    expect(databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6432/app" })).toMatchObject(transaction)
    // The parameter is Chronicle's: Postgres would refuse it as a startup parameter.
    expect(
      databaseConfig({ DATABASE_URL: "postgres://u:p@db:7000/app?pgbouncer=true&sslmode=disable" }),
    ).toEqual({
      kind: "postgres",
      url: "postgres://u:p@db:7000/app?sslmode=disable",
      ...transaction,
      sequencerPollMs: 20,
      sequencerMinPassMs: 5,
    })
    expect(
      databaseConfig({ DATABASE_URL: "postgres://u:p@db:7000/app", CHRONICLE_PG_POOLER: "transaction" }),
    ).toMatchObject(transaction)
    expect(
      databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6432/app", CHRONICLE_PG_POOLER: "session" }),
    ).toMatchObject({ prepare: true, listen: true, pooler: "session" })
    expect(
      databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6543/app", CHRONICLE_PG_POOLER: "none" }),
    ).toMatchObject({ prepare: true, listen: true, pooler: "none" })
    expect(() =>
      databaseConfig({ DATABASE_URL: "postgres://u:p@db/app", CHRONICLE_PG_POOLER: "statement" }),
    ).toThrow(/CHRONICLE_PG_POOLER must be transaction, session or none/)
  })

  it("turns prepared statements and LISTEN off for a transaction-mode pooler unless told otherwise", () => {
    expect(databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6543/app" })).toMatchObject({
      prepare: false,
      listen: false,
    })
    expect(
      databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6543/app", CHRONICLE_PG_PREPARE: "true" }),
    ).toMatchObject({ prepare: true, listen: false })
  })

  it("refuses a malformed setting with a message naming it", () => {
    expect(() => databaseConfig({ DATABASE_URL: "mysql://x" })).toThrow(ConfigError)
    expect(() => databaseConfig({ DATABASE_URL: "mysql://x" })).toThrow(/DATABASE_URL must be/)
    expect(() => serverConfig({ PORT: "http" })).toThrow(/PORT must be/)
    expect(() =>
      databaseConfig({ DATABASE_URL: "postgres://x:5432/a", CHRONICLE_PG_LISTEN: "maybe" }),
    ).toThrow(/CHRONICLE_PG_LISTEN must be true or false/)
  })

  it("reads the auth settings and checks them", () => {
    const secret = "s".repeat(32)
    expect(
      authConfig({
        SUPABASE_URL: "https://abc.supabase.co",
        SUPABASE_JWT_SECRET: secret,
        CHRONICLE_SERVICE_KEY: "k".repeat(40),
        SUPABASE_ANON_KEY: "anon",
      }),
    ).toEqual({
      supabaseUrl: "https://abc.supabase.co",
      jwtSecret: secret,
      serviceKey: "k".repeat(40),
      anonKey: "anon",
    })
    expect(authConfig({ SUPABASE_URL: " ", CHRONICLE_SERVICE_KEY: "" })).toEqual({})
    expect(() => authConfig({ SUPABASE_URL: "abc.supabase.co" })).toThrow(
      /SUPABASE_URL must be the project URL/,
    )
    expect(() => authConfig({ SUPABASE_JWT_SECRET: secret })).toThrow(
      /SUPABASE_JWT_SECRET is set but SUPABASE_URL is not/,
    )
    expect(() =>
      authConfig({ SUPABASE_URL: "https://abc.supabase.co", SUPABASE_JWT_SECRET: "short" }),
    ).toThrow(/SUPABASE_JWT_SECRET must be at least 32 characters/)
    expect(() => authConfig({ CHRONICLE_SERVICE_KEY: "short" })).toThrow(
      /CHRONICLE_SERVICE_KEY must be at least 32 characters/,
    )
    expect(
      authConfig({
        SUPABASE_URL: "https://abc.supabase.co",
        SUPABASE_ANON_KEY: "anon",
        SUPABASE_AUTH_CHECK_USER: "true",
      }),
    ).toMatchObject({ checkUser: true })
    expect(() =>
      authConfig({ SUPABASE_URL: "https://abc.supabase.co", SUPABASE_AUTH_CHECK_USER: "yes" }),
    ).toThrow(
      /SUPABASE_AUTH_CHECK_USER asks the Auth server about each user's token: it needs SUPABASE_URL .* and SUPABASE_ANON_KEY/,
    )
  })

  it("refuses dev mode (no auth) on an address other machines can reach", () => {
    expect(serverConfig({ HOST: "localhost" }).host).toBe("localhost")
    expect(serverConfig({ HOST: "::1" }).host).toBe("::1")
    expect(() => serverConfig({ HOST: "0.0.0.0" })).toThrow(ConfigError)
    expect(() => serverConfig({ HOST: "0.0.0.0" })).toThrow(
      /HOST=0\.0\.0\.0 is not a loopback address, and no auth is configured/,
    )
    expect(serverConfig({ HOST: "0.0.0.0", CHRONICLE_SERVICE_KEY: "k".repeat(32) }).host).toBe("0.0.0.0")
    expect([isLoopback("127.0.0.2"), isLoopback("[::1]"), isLoopback("10.0.0.1"), isLoopback("::")]).toEqual([
      true,
      true,
      false,
      false,
    ])
  })

  it("reads size limits in bytes, KiB or MiB and checks they fit together", () => {
    expect(limitsConfig({})).toEqual(DEFAULT_LIMITS)
    expect(DEFAULT_LIMITS).toMatchObject({
      maxBodyBytes: 32 * 1024 * 1024,
      maxMessageBytes: 16 * 1024 * 1024,
      largeValueBytes: 64 * 1024,
      maxFileBytes: 10 * 1024 * 1024,
      list: { default: 50, max: 500 },
      maxBatchSize: 500,
    })
    expect(
      limitsConfig({
        CHRONICLE_MAX_BODY_BYTES: "20MiB",
        CHRONICLE_MAX_MESSAGE_BYTES: "512KiB",
        CHRONICLE_MAX_FILE_BYTES: "1048576",
      }),
    ).toMatchObject({
      maxBodyBytes: 20 * 1024 * 1024,
      maxMessageBytes: 512 * 1024,
      maxFileBytes: 1024 * 1024,
    })
    expect(() => limitsConfig({ CHRONICLE_MAX_BODY_BYTES: "lots" })).toThrow(
      /CHRONICLE_MAX_BODY_BYTES must be a size in bytes such as 1048576, 512KiB or 12MiB, got "lots"/,
    )
    expect(() => limitsConfig({ CHRONICLE_MAX_MESSAGE_BYTES: "0" })).toThrow(
      /CHRONICLE_MAX_MESSAGE_BYTES must be/,
    )
    expect(() => limitsConfig({ CHRONICLE_MAX_MESSAGE_BYTES: "32MiB" })).toThrow(
      /CHRONICLE_MAX_MESSAGE_BYTES \(33554432\) must be below CHRONICLE_MAX_BODY_BYTES/,
    )
    expect(() =>
      limitsConfig({ CHRONICLE_MAX_MESSAGE_BYTES: "20MiB", CHRONICLE_MAX_RESPONSE_BYTES: "20MiB" }),
    ).toThrow(
      /CHRONICLE_MAX_MESSAGE_BYTES \(20971520\) does not fit in a response of CHRONICLE_MAX_RESPONSE_BYTES/,
    )
    expect(limitsConfig({ CHRONICLE_LARGE_VALUE_BYTES: "16KiB" }).largeValueBytes).toBe(16 * 1024)
    expect(() => limitsConfig({ CHRONICLE_LARGE_VALUE_BYTES: "1MiB" })).toThrow(
      /CHRONICLE_LARGE_VALUE_BYTES \(1048576\) must be at most 262144/,
    )
    expect(() => limitsConfig({ CHRONICLE_MAX_FILE_BYTES: "24MiB" })).toThrow(
      /CHRONICLE_MAX_FILE_BYTES \(25165824\) is 33554432 bytes base64-encoded/,
    )
  })

  it("reads the response budgets, the limits per user and the request timeout, and keeps them consistent", () => {
    expect(DEFAULT_LIMITS).toMatchObject({
      maxResponseBytes: 32 * 1024 * 1024,
      maxPageBytes: 4 * 1024 * 1024,
      maxConcurrentQueries: 8,
      maxSubscriptions: 32,
    })
    expect(
      limitsConfig({
        CHRONICLE_MAX_RESPONSE_BYTES: "32MiB",
        CHRONICLE_MAX_PAGE_BYTES: "1MiB",
        CHRONICLE_MAX_CONCURRENT_QUERIES: "0",
        CHRONICLE_MAX_SUBSCRIPTIONS: "4",
      }),
    ).toMatchObject({
      maxResponseBytes: 32 * 1024 * 1024,
      maxPageBytes: 1024 * 1024,
      maxConcurrentQueries: 0,
      maxSubscriptions: 4,
    })
    expect(() => limitsConfig({ CHRONICLE_MAX_PAGE_BYTES: "64MiB" })).toThrow(
      /CHRONICLE_MAX_PAGE_BYTES \(67108864\) must not be above CHRONICLE_MAX_RESPONSE_BYTES \(33554432\)/,
    )
    // files.get must be able to return the largest file.
    expect(() =>
      limitsConfig({
        CHRONICLE_MAX_RESPONSE_BYTES: "8MiB",
        CHRONICLE_MAX_PAGE_BYTES: "1MiB",
        CHRONICLE_MAX_MESSAGE_BYTES: "1MiB",
      }),
    ).toThrow(
      /CHRONICLE_MAX_FILE_BYTES \(10485760\) is 13981016 bytes base64-encoded, which does not fit in a response of CHRONICLE_MAX_RESPONSE_BYTES/,
    )
    expect(() => limitsConfig({ CHRONICLE_MAX_CONCURRENT_QUERIES: "many" })).toThrow(
      /CHRONICLE_MAX_CONCURRENT_QUERIES must be a whole number \(0 for no limit\), got "many"/,
    )
    expect(serverConfig({ CHRONICLE_REQUEST_TIMEOUT_MS: "5000" }).requestTimeoutMs).toBe(5000)
    expect(() => serverConfig({ CHRONICLE_REQUEST_TIMEOUT_MS: "10" })).toThrow(
      /CHRONICLE_REQUEST_TIMEOUT_MS must be a whole number of milliseconds, at least 1000/,
    )
  })

  it("reads the log level and the shutdown timeout", () => {
    expect(serverConfig({ CHRONICLE_LOG_LEVEL: "warn", CHRONICLE_SHUTDOWN_TIMEOUT_MS: "500" })).toMatchObject(
      {
        logLevel: "Warn",
        shutdownTimeoutMs: 500,
      },
    )
    expect(() => serverConfig({ CHRONICLE_LOG_LEVEL: "loud" })).toThrow(
      /CHRONICLE_LOG_LEVEL must be debug, info/,
    )
    expect(() => serverConfig({ CHRONICLE_SHUTDOWN_TIMEOUT_MS: "-1" })).toThrow(
      /CHRONICLE_SHUTDOWN_TIMEOUT_MS/,
    )
  })
})
