/**
 * The project's signing keys (its JWKS), held in memory so that verifying a token never waits
 * on the network and no request can make the server fetch on its behalf more than the
 * schedule allows:
 *
 * - the keys are fetched once at start-up (`warmUp`) and then refreshed in the background
 *   when they are older than `refreshMs`; requests go on using the keys held meanwhile;
 * - a token naming a key id the set does not hold makes at most one fetch per `cooldownMs`
 *   (key rotation), shared by every request that asks meanwhile; other such tokens are
 *   refused at once;
 * - every fetch gives up after `timeoutMs`; while no keys could be fetched at all, requests
 *   are answered "unavailable" at once, with a new attempt at most every `retryMs`.
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWSHeaderParameters } from "jose"

export interface JwksOptions {
  /** `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`. */
  readonly url: string
  /** Sent with every fetch (the anon key, when configured). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** How long one fetch may take. Default 3 s. */
  readonly timeoutMs?: number | undefined
  /** Keys older than this are refreshed in the background. Default 10 min. */
  readonly refreshMs?: number | undefined
  /** Least time between fetches caused by unknown key ids. Default 30 s. */
  readonly cooldownMs?: number | undefined
  /** Least time between attempts while no keys are held. Default 5 s. */
  readonly retryMs?: number | undefined
}

export const JWKS_DEFAULTS = {
  timeoutMs: 3_000,
  refreshMs: 10 * 60_000,
  cooldownMs: 30_000,
  retryMs: 5_000,
} as const

/** No keys could be fetched: the server cannot verify tokens right now. */
export class JwksUnavailable extends Error {
  override readonly name = "JwksUnavailable"
}

/** The token names a key the project does not publish. */
export class UnknownSigningKey extends Error {
  override readonly name = "UnknownSigningKey"
}

type KeyResolver = ReturnType<typeof createLocalJWKSet>

export interface JwksCache {
  /** The public key for a token's protected header. Rejects with the two errors above. */
  readonly resolve: (header: JWSHeaderParameters) => Promise<Awaited<ReturnType<KeyResolver>>>
  /** Starts the first fetch, without waiting for it. */
  readonly warmUp: () => void
}

const describe = (error: unknown): string => {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return "no answer in time"
  }
  return error instanceof Error ? error.message : String(error)
}

export const makeJwksCache = (options: JwksOptions): JwksCache => {
  const timeoutMs = options.timeoutMs ?? JWKS_DEFAULTS.timeoutMs
  const refreshMs = options.refreshMs ?? JWKS_DEFAULTS.refreshMs
  const cooldownMs = options.cooldownMs ?? JWKS_DEFAULTS.cooldownMs
  const retryMs = options.retryMs ?? JWKS_DEFAULTS.retryMs

  let held: { readonly keys: KeyResolver; readonly kids: ReadonlySet<string>; readonly at: number } | null =
    null
  let inFlight: Promise<void> | null = null
  let lastAttempt = Number.NEGATIVE_INFINITY
  let lastError = "the keys have not been fetched yet"

  const fetchKeys = async () => {
    const response = await fetch(options.url, {
      headers: { accept: "application/json", ...options.headers },
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "error",
    })
    if (!response.ok) {
      await response.body?.cancel()
      throw new Error(`HTTP ${response.status}`)
    }
    const document = (await response.json()) as JSONWebKeySet
    const keys = createLocalJWKSet(document)
    const kids = new Set(document.keys.flatMap((key) => (typeof key.kid === "string" ? [key.kid] : [])))
    held = { keys, kids, at: Date.now() }
  }

  /** One fetch at a time; everyone who asks meanwhile shares it. */
  const load = (): Promise<void> => {
    inFlight ??= (async () => {
      lastAttempt = Date.now()
      try {
        await fetchKeys()
      } catch (error) {
        lastError = `${options.url}: ${describe(error)}`
      } finally {
        inFlight = null
      }
    })()
    return inFlight
  }

  const resolve = async (header: JWSHeaderParameters) => {
    const kid = header.kid ?? ""
    const now = Date.now()
    if (held?.kids.has(kid)) {
      if (now - held.at > refreshMs && now - lastAttempt > retryMs) void load()
      return held.keys(header)
    }
    const wait = held === null ? retryMs : cooldownMs
    if (inFlight !== null || now - lastAttempt >= wait) await load()
    const current = held as typeof held
    if (current === null) {
      throw new JwksUnavailable(`The project's signing keys could not be fetched (${lastError})`)
    }
    if (!current.kids.has(kid)) {
      throw new UnknownSigningKey(
        `The token's signing key ${JSON.stringify(kid)} is not one of the project's keys`,
      )
    }
    return current.keys(header)
  }

  return { resolve, warmUp: () => void load() }
}
