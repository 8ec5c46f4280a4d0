/**
 * Who is calling. A request presents `Authorization: Bearer <token>`, where the token is
 * one of:
 *
 * - the service key (CHRONICLE_SERVICE_KEY), compared in constant time → the service role;
 * - a Supabase Auth access token signed with the project's JWT secret (HS256), verified
 *   here with `jose` and SUPABASE_JWT_SECRET;
 * - a Supabase Auth access token signed with an asymmetric key (ES256/RS256), verified with
 *   `jose` against the project's JWKS (`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`), held
 *   in memory and refreshed on a schedule (jwks.ts): verifying never waits on the network
 *   once the keys are held, and no token makes the server call anything else — unless
 *   `checkUser` (SUPABASE_AUTH_CHECK_USER) asks the Auth server about each user's token, at
 *   most once a minute per token.
 *
 * Every JWT then has its claims checked here, whatever its role: `exp` in the future, `iss` =
 * `<SUPABASE_URL>/auth/v1`, `aud` = "authenticated". A verified JWT whose `role` is
 * `service_role` grants the service role; any other needs `sub` a UUID (the owner).
 *
 * The service role may act for one owner by sending `x-chronicle-owner: <uuid>`.
 *
 * A browser's EventSource cannot send headers, so a subscription may carry its credentials in
 * the URL (tRPC's connectionParams): a user's token, or better a **stream ticket** — a
 * short-lived (60 s) token signed by this server that `auth.streamTicket` hands out to any
 * authenticated caller. The service key and service-role tokens are never accepted in a URL
 * (URLs end up in logs and histories): the service role exchanges its key for a ticket.
 *
 * With none of SUPABASE_URL, SUPABASE_JWT_SECRET and CHRONICLE_SERVICE_KEY set, the server
 * runs in dev mode: every request is the dev user, whatever it presents.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { Forbidden, InvalidCommand } from "@chronicle/events"
import { isUuid } from "@chronicle/store"
import { Effect } from "effect"
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from "jose"
import { AuthUnavailable, Unauthenticated } from "./errors.ts"
import { type JwksOptions, JwksUnavailable, makeJwksCache, UnknownSigningKey } from "./jwks.ts"

export type Principal =
  | { readonly kind: "service"; readonly actingFor: string | null }
  | { readonly kind: "user"; readonly userId: string; readonly dev: boolean }

/** The owner every request acts as in dev mode. */
export const DEV_OWNER_ID = "00000000-0000-4000-8000-000000000000"

/** The header with which the service role names the owner it acts for. */
export const ACTING_FOR_HEADER = "x-chronicle-owner"

/** How long a stream ticket may be used to open a subscription. */
export const STREAM_TICKET_TTL_SECONDS = 60

export interface AuthConfig {
  /** `https://<project>.supabase.co`: the issuer of user tokens and the home of the JWKS. */
  readonly supabaseUrl?: string | undefined
  /** The project's legacy JWT secret, for HS256 tokens. Needs `supabaseUrl` (the issuer). */
  readonly jwtSecret?: string | undefined
  /** A secret that grants the service role. */
  readonly serviceKey?: string | undefined
  /** The project's anon (publishable) key, sent when fetching the JWKS. Optional. */
  readonly anonKey?: string | undefined
  /** When and how long the JWKS is fetched (defaults in jwks.ts). */
  readonly jwks?: Omit<JwksOptions, "url" | "headers"> | undefined
  /**
   * Also ask the Auth server (`GET <SUPABASE_URL>/auth/v1/user`) whether a user's token is
   * still good (not signed out), at most once a minute per token (SUPABASE_AUTH_CHECK_USER).
   * Off by default: a token's signature and expiry are checked locally.
   */
  readonly checkUser?: boolean | undefined
}

/** Dev mode: no way to authenticate is configured. */
export const isDevMode = (config: AuthConfig): boolean =>
  !config.supabaseUrl && !config.jwtSecret && !config.serviceKey

/** What a request presents: a bearer token and the owner the service role acts for. */
export interface Credentials {
  readonly token: string | null
  readonly actingFor: string | null
  /** A stream ticket (from `auth.streamTicket`), presented instead of a token. */
  readonly ticket?: string | null | undefined
  /** The credentials came in the URL: the service key and service-role tokens are refused. */
  readonly inUrl?: boolean | undefined
}

export type AuthFailure = Unauthenticated | Forbidden | InvalidCommand | AuthUnavailable

export interface StreamTicket {
  readonly ticket: string
  /** ISO-8601: after this the ticket opens nothing (an open subscription stays open). */
  readonly expiresAt: string
}

export interface AuthVerifier {
  readonly mode: "dev" | "verified"
  /** The principal the credentials prove; null when none were presented. */
  readonly authenticate: (credentials: Credentials) => Effect.Effect<Principal | null, AuthFailure>
  /** A short-lived ticket that opens subscriptions as `principal`. */
  readonly issueTicket: (principal: Principal) => StreamTicket
  /** Fetches what verification needs ahead of the first request (the JWKS), without waiting. */
  readonly warmUp: () => void
}

const sha256 = (text: string) => createHash("sha256").update(text).digest()

const unauthenticated = (reason: string) => Effect.fail(new Unauthenticated({ reason }))

const withActingFor = (
  principal: Principal,
  actingFor: string | null,
): Effect.Effect<Principal, Forbidden | InvalidCommand> => {
  if (actingFor === null) return Effect.succeed(principal)
  const owner = actingFor.trim().toLowerCase()
  if (!isUuid(owner)) {
    return Effect.fail(
      new InvalidCommand({
        path: ACTING_FOR_HEADER,
        reason: `must be a UUID, got ${JSON.stringify(actingFor)}`,
      }),
    )
  }
  if (principal.kind === "service") return Effect.succeed<Principal>({ kind: "service", actingFor: owner })
  if (owner === principal.userId) return Effect.succeed(principal)
  return Effect.fail(
    new Forbidden({ reason: `Only the service role may act for another owner (${ACTING_FOR_HEADER})` }),
  )
}

const describeJoseError = (error: unknown): string => {
  if (error instanceof joseErrors.JWTExpired) return "The token has expired"
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return "The token's signature does not verify"
  return `The token is invalid: ${error instanceof Error ? error.message : String(error)}`
}

type Claims = { readonly [claim: string]: unknown }

// ----- stream tickets ---------------------------------------------------------------------

const TICKET_PREFIX = "ct1"

/**
 * The key tickets are signed with. Derived from the configured secrets, so every instance
 * behind a load balancer accepts the others' tickets; with no secret configured (JWKS only,
 * or dev mode) a key of this process, so a ticket opens subscriptions on the instance that
 * issued it only.
 */
const ticketKey = (config: AuthConfig): Buffer => {
  const secrets = [config.serviceKey, config.jwtSecret].filter((s): s is string => Boolean(s))
  if (secrets.length === 0) return randomBytes(32)
  return createHmac("sha256", "chronicle stream ticket v1").update(secrets.join("\u0000")).digest()
}

interface TicketBody {
  /** u: a user, s: the service role. */
  readonly k: "u" | "s"
  /** The user, or the owner the service role acts for. */
  readonly o: string | null
  /** Expiry, seconds since the epoch. */
  readonly e: number
}

const makeTickets = (key: Buffer) => {
  const sign = (body: string) => createHmac("sha256", key).update(body).digest("base64url")

  const issue = (principal: Principal): StreamTicket => {
    const expires = Math.floor(Date.now() / 1000) + STREAM_TICKET_TTL_SECONDS
    const body: TicketBody =
      principal.kind === "user"
        ? { k: "u", o: principal.userId, e: expires }
        : { k: "s", o: principal.actingFor, e: expires }
    const encoded = Buffer.from(JSON.stringify(body)).toString("base64url")
    return {
      ticket: `${TICKET_PREFIX}.${encoded}.${sign(encoded)}`,
      expiresAt: new Date(expires * 1000).toISOString(),
    }
  }

  const verify = (ticket: string, dev: boolean): Effect.Effect<Principal, Unauthenticated> => {
    const [prefix, encoded, signature, ...rest] = ticket.split(".")
    if (prefix !== TICKET_PREFIX || !encoded || !signature || rest.length > 0) {
      return unauthenticated("The stream ticket is malformed: get one from auth.streamTicket")
    }
    const expected = Buffer.from(sign(encoded))
    const given = Buffer.from(signature)
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      return unauthenticated(
        "The stream ticket does not verify (it was issued by another server, or altered)",
      )
    }
    let body: TicketBody
    try {
      body = JSON.parse(Buffer.from(encoded, "base64url").toString("utf8")) as TicketBody
    } catch {
      return unauthenticated("The stream ticket is malformed: get one from auth.streamTicket")
    }
    if (typeof body.e !== "number" || body.e <= Math.floor(Date.now() / 1000)) {
      return unauthenticated("The stream ticket has expired: get a new one from auth.streamTicket")
    }
    if (body.k === "s") return Effect.succeed({ kind: "service", actingFor: isUuid(body.o) ? body.o : null })
    if (body.k === "u" && isUuid(body.o)) return Effect.succeed({ kind: "user", userId: body.o, dev })
    return unauthenticated("The stream ticket is malformed: get one from auth.streamTicket")
  }

  return { issue, verify }
}

// ----- the Auth server's word, when asked for ------------------------------------------------

/** How long the Auth server's answer about a token is trusted. */
const USER_CHECK_TTL_MS = 60_000
/** Most tokens whose answer is remembered; the oldest are forgotten first. */
const USER_CHECK_ENTRIES = 10_000
const USER_CHECK_TIMEOUT_MS = 3_000

/**
 * Asks the Auth server whether a token is still good: one call per token per minute at most,
 * shared by the requests that ask meanwhile, given up after 3 s (503, not a wait).
 */
const makeUserCheck = (url: string, anonKey: string | undefined) => {
  const answers = new Map<string, { readonly ok: boolean; readonly at: number }>()
  const pending = new Map<string, Promise<boolean>>()
  const ask = async (token: string): Promise<boolean> => {
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, ...(anonKey ? { apikey: anonKey } : {}) },
      signal: AbortSignal.timeout(USER_CHECK_TIMEOUT_MS),
      redirect: "error",
    })
    await response.body?.cancel()
    if (response.ok) return true
    if (response.status === 401 || response.status === 403) return false
    throw new Error(`HTTP ${response.status}`)
  }
  return (token: string): Effect.Effect<void, Unauthenticated | AuthUnavailable> => {
    const key = sha256(token).toString("base64url")
    const known = answers.get(key)
    const fresh = known !== undefined && Date.now() - known.at < USER_CHECK_TTL_MS
    const answer = fresh
      ? Promise.resolve(known.ok)
      : (pending.get(key) ??
        (() => {
          const asked = ask(token)
            .then((ok) => {
              answers.delete(key)
              answers.set(key, { ok, at: Date.now() })
              if (answers.size > USER_CHECK_ENTRIES) answers.delete(answers.keys().next().value!)
              return ok
            })
            .finally(() => pending.delete(key))
          pending.set(key, asked)
          return asked
        })())
    return Effect.tryPromise({
      try: () => answer,
      catch: (error) =>
        new AuthUnavailable({
          reason: `The Auth server could not confirm the token (${url}: ${error instanceof Error && error.name === "TimeoutError" ? "no answer in time" : error instanceof Error ? error.message : String(error)})`,
        }),
    }).pipe(
      Effect.flatMap((ok) =>
        ok
          ? Effect.void
          : unauthenticated("The Auth server no longer accepts this token (signed out or revoked)"),
      ),
    )
  }
}

// ----- the verifier -----------------------------------------------------------------------

export const makeAuthVerifier = (config: AuthConfig): AuthVerifier => {
  const tickets = makeTickets(ticketKey(config))
  if (isDevMode(config)) {
    const dev: Principal = { kind: "user", userId: DEV_OWNER_ID, dev: true }
    return {
      mode: "dev",
      authenticate: ({ actingFor }) => withActingFor(dev, actingFor),
      issueTicket: tickets.issue,
      warmUp: () => {},
    }
  }
  if (config.jwtSecret && !config.supabaseUrl) {
    throw new Error("SUPABASE_JWT_SECRET needs SUPABASE_URL: the issuer its tokens must name")
  }
  const serviceKeyDigest = config.serviceKey ? sha256(config.serviceKey) : null
  const hmacKey = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : null
  const baseUrl = config.supabaseUrl?.replace(/\/+$/, "")
  const issuer = baseUrl === undefined ? null : `${baseUrl}/auth/v1`
  const jwks =
    baseUrl === undefined
      ? null
      : makeJwksCache({
          ...config.jwks,
          url: `${baseUrl}/auth/v1/.well-known/jwks.json`,
          headers: config.anonKey ? { apikey: config.anonKey } : {},
        })

  const userCheck =
    config.checkUser && baseUrl !== undefined
      ? makeUserCheck(`${baseUrl}/auth/v1/user`, config.anonKey)
      : null

  const checkClaims = (claims: Claims): Effect.Effect<Principal, Unauthenticated> => {
    const now = Math.floor(Date.now() / 1000)
    if (typeof claims.exp !== "number") return unauthenticated("The token has no expiry (exp)")
    if (claims.exp <= now) return unauthenticated("The token has expired")
    if (typeof claims.nbf === "number" && claims.nbf > now + 5)
      return unauthenticated("The token is not valid yet")
    // Checked for every role: a service-role token of another project (or one minted for
    // another audience) grants nothing here.
    if (claims.iss !== issuer) {
      return unauthenticated(
        `The token was issued by ${JSON.stringify(claims.iss)}, not ${JSON.stringify(issuer)}`,
      )
    }
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
    if (!audiences.includes("authenticated")) {
      return unauthenticated(`The token's audience is ${JSON.stringify(claims.aud)}, not "authenticated"`)
    }
    if (claims.role === "service_role") return Effect.succeed({ kind: "service", actingFor: null })
    const sub = typeof claims.sub === "string" ? claims.sub.toLowerCase() : undefined
    if (!isUuid(sub)) return unauthenticated("The token's subject (sub) is not a user id")
    return Effect.succeed({ kind: "user", userId: sub, dev: false })
  }

  const verifyHs256 = (token: string, key: Uint8Array) =>
    Effect.tryPromise({
      try: () => jwtVerify(token, key, { algorithms: ["HS256"] }),
      catch: (error) => new Unauthenticated({ reason: describeJoseError(error) }),
    }).pipe(Effect.map((verified): Claims => verified.payload))

  const verifyWithJwks = (token: string, alg: string, cache: NonNullable<typeof jwks>) =>
    Effect.tryPromise({
      try: () => jwtVerify(token, (header) => cache.resolve(header), { algorithms: [alg] }),
      catch: (error): Unauthenticated | AuthUnavailable =>
        error instanceof JwksUnavailable
          ? new AuthUnavailable({ reason: error.message })
          : new Unauthenticated({
              reason: error instanceof UnknownSigningKey ? error.message : describeJoseError(error),
            }),
    }).pipe(Effect.map((verified): Claims => verified.payload))

  const verifyToken = Effect.fn("Auth.verifyToken")(function* (token: string, inUrl: boolean) {
    if (serviceKeyDigest !== null && timingSafeEqual(sha256(token), serviceKeyDigest)) {
      if (inUrl) {
        return yield* unauthenticated(
          "The service key is never accepted in a URL: send it in the Authorization header, or exchange it for a stream ticket (auth.streamTicket)",
        )
      }
      return { kind: "service", actingFor: null } satisfies Principal
    }
    let alg: string | undefined
    let kid: string | undefined
    try {
      ;({ alg, kid } = decodeProtectedHeader(token))
    } catch {
      return yield* unauthenticated("The bearer token is neither the service key nor a JWT")
    }
    let claims: Claims
    if (alg === "HS256") {
      if (hmacKey === null) {
        return yield* unauthenticated("HS256 tokens are not accepted: SUPABASE_JWT_SECRET is not set")
      }
      claims = yield* verifyHs256(token, hmacKey)
    } else if (alg === "ES256" || alg === "RS256") {
      if (jwks === null) {
        return yield* unauthenticated(`${alg} tokens are not accepted: SUPABASE_URL is not set`)
      }
      if (!kid) return yield* unauthenticated("The token names no signing key (kid)")
      claims = yield* verifyWithJwks(token, alg, jwks)
    } else {
      return yield* unauthenticated(`Tokens signed with ${JSON.stringify(alg)} are not accepted`)
    }
    const principal = yield* checkClaims(claims)
    if (userCheck !== null && principal.kind === "user") yield* userCheck(token)
    if (inUrl && principal.kind === "service") {
      return yield* unauthenticated(
        "A service-role token is never accepted in a URL: send it in the Authorization header, or exchange it for a stream ticket (auth.streamTicket)",
      )
    }
    return principal
  })

  return {
    mode: "verified",
    authenticate: ({ token, actingFor, ticket, inUrl }) => {
      if (ticket) return Effect.flatMap(tickets.verify(ticket, false), (p) => withActingFor(p, actingFor))
      return token === null
        ? Effect.succeed(null)
        : Effect.flatMap(verifyToken(token, inUrl === true), (p) => withActingFor(p, actingFor))
    },
    issueTicket: tickets.issue,
    warmUp: () => jwks?.warmUp(),
  }
}

/**
 * The bearer token of an `Authorization` header value; an Unauthenticated failure for any
 * other scheme.
 */
export const bearerToken = (authorization: string | null): Effect.Effect<string | null, Unauthenticated> => {
  if (authorization === null || authorization.trim() === "") return Effect.succeed(null)
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match
    ? Effect.succeed(match[1]!)
    : unauthenticated("The Authorization header must be `Bearer <token>`")
}

// ----- ownership ------------------------------------------------------------------------

/**
 * The owner whose data lists and feeds are limited to: a user's own id, the owner the
 * service role acts for, or null (every owner) for the service role acting for no one.
 */
export const listScope = (principal: Principal): string | null =>
  principal.kind === "user" ? principal.userId : principal.actingFor

/**
 * Whether the principal may read data owned by `ownerId`. Users see their own; the service
 * role sees everyone's. Callers answer NotFound otherwise, so existence is not revealed.
 */
export const canRead = (principal: Principal, ownerId: string | null): boolean =>
  principal.kind === "service" || ownerId === principal.userId
