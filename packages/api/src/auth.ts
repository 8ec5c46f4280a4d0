/**
 * Who is calling. A request presents `Authorization: Bearer <token>`, where the token is
 * one of:
 *
 * - the service key (CHRONICLE_SERVICE_KEY), compared in constant time → the service role;
 * - a Supabase Auth access token signed with the project's JWT secret (HS256), verified
 *   here with `jose` and SUPABASE_JWT_SECRET;
 * - a Supabase Auth access token signed with an asymmetric key (ES256/RS256), verified by
 *   supabase-js `auth.getClaims` against the project's JWKS
 *   (`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`, fetched once and cached).
 *
 * Either JWT then has its claims checked here: `exp` in the future, `iss` =
 * `<SUPABASE_URL>/auth/v1`, `aud` = "authenticated", `sub` a UUID (the owner). A verified JWT
 * whose `role` is `service_role` grants the service role instead.
 *
 * The service role may act for one owner by sending `x-chronicle-owner: <uuid>`.
 *
 * With none of SUPABASE_URL, SUPABASE_JWT_SECRET and CHRONICLE_SERVICE_KEY set, the server
 * runs in dev mode: every request is the dev user, whatever it presents.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { Forbidden, InvalidCommand } from "@chronicle/events"
import { isUuid } from "@chronicle/store"
import { createClient } from "@supabase/supabase-js"
import { Effect } from "effect"
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from "jose"
import { Unauthenticated } from "./errors.ts"

export type Principal =
  | { readonly kind: "service"; readonly actingFor: string | null }
  | { readonly kind: "user"; readonly userId: string; readonly dev: boolean }

/** The owner every request acts as in dev mode. */
export const DEV_OWNER_ID = "00000000-0000-4000-8000-000000000000"

/** The header with which the service role names the owner it acts for. */
export const ACTING_FOR_HEADER = "x-chronicle-owner"

export interface AuthConfig {
  /** `https://<project>.supabase.co`: the issuer of user tokens and the home of the JWKS. */
  readonly supabaseUrl?: string | undefined
  /** The project's legacy JWT secret, for HS256 tokens. Needs `supabaseUrl` (the issuer). */
  readonly jwtSecret?: string | undefined
  /** A secret that grants the service role. */
  readonly serviceKey?: string | undefined
  /** The project's anon (publishable) key, sent when fetching the JWKS. Optional. */
  readonly anonKey?: string | undefined
}

/** Dev mode: no way to authenticate is configured. */
export const isDevMode = (config: AuthConfig): boolean =>
  !config.supabaseUrl && !config.jwtSecret && !config.serviceKey

/** What a request presents: a bearer token and the owner the service role acts for. */
export interface Credentials {
  readonly token: string | null
  readonly actingFor: string | null
}

export type AuthFailure = Unauthenticated | Forbidden | InvalidCommand

export interface AuthVerifier {
  readonly mode: "dev" | "verified"
  /** The principal the credentials prove; null when none were presented. */
  readonly authenticate: (credentials: Credentials) => Effect.Effect<Principal | null, AuthFailure>
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

const withoutApiKey: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers)
  headers.delete("apikey")
  headers.delete("authorization")
  return fetch(input, { ...init, headers })
}

export const makeAuthVerifier = (config: AuthConfig): AuthVerifier => {
  if (isDevMode(config)) {
    const dev: Principal = { kind: "user", userId: DEV_OWNER_ID, dev: true }
    return { mode: "dev", authenticate: ({ actingFor }) => withActingFor(dev, actingFor) }
  }
  if (config.jwtSecret && !config.supabaseUrl) {
    throw new Error("SUPABASE_JWT_SECRET needs SUPABASE_URL: the issuer its tokens must name")
  }
  const serviceKeyDigest = config.serviceKey ? sha256(config.serviceKey) : null
  const hmacKey = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : null
  const baseUrl = config.supabaseUrl?.replace(/\/+$/, "")
  const issuer = baseUrl === undefined ? null : `${baseUrl}/auth/v1`
  // One client, so the JWKS it fetches is cached across requests. It never holds a session.
  // createClient needs a key; without an anon key the placeholder is not sent anywhere.
  const supabase =
    baseUrl === undefined
      ? null
      : createClient(baseUrl, config.anonKey || "no-anon-key", {
          auth: {
            persistSession: false,
            autoRefreshToken: false,
            detectSessionInUrl: false,
            // auth-js caches the JWKS per storage key, which it derives from the host name
            // alone; keying it by the whole URL keeps two projects on one host apart.
            storageKey: `chronicle-jwks:${baseUrl}`,
          },
          ...(config.anonKey ? {} : { global: { fetch: withoutApiKey } }),
        })

  const checkClaims = (claims: Claims): Effect.Effect<Principal, Unauthenticated> => {
    const now = Math.floor(Date.now() / 1000)
    if (typeof claims.exp !== "number") return unauthenticated("The token has no expiry (exp)")
    if (claims.exp <= now) return unauthenticated("The token has expired")
    if (typeof claims.nbf === "number" && claims.nbf > now + 5)
      return unauthenticated("The token is not valid yet")
    if (claims.role === "service_role") return Effect.succeed({ kind: "service", actingFor: null })
    if (claims.iss !== issuer) {
      return unauthenticated(
        `The token was issued by ${JSON.stringify(claims.iss)}, not ${JSON.stringify(issuer)}`,
      )
    }
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
    if (!audiences.includes("authenticated")) {
      return unauthenticated(`The token's audience is ${JSON.stringify(claims.aud)}, not "authenticated"`)
    }
    const sub = typeof claims.sub === "string" ? claims.sub.toLowerCase() : undefined
    if (!isUuid(sub)) return unauthenticated("The token's subject (sub) is not a user id")
    return Effect.succeed({ kind: "user", userId: sub, dev: false })
  }

  const verifyHs256 = (token: string, key: Uint8Array) =>
    Effect.tryPromise({
      try: () => jwtVerify(token, key, { algorithms: ["HS256"] }),
      catch: (error) => new Unauthenticated({ reason: describeJoseError(error) }),
    }).pipe(Effect.map((verified): Claims => verified.payload))

  const verifyWithJwks = (token: string, client: NonNullable<typeof supabase>) =>
    Effect.tryPromise({
      try: () => client.auth.getClaims(token),
      catch: (error) =>
        new Unauthenticated({
          reason: `The token could not be verified: ${error instanceof Error ? error.message : String(error)}`,
        }),
    }).pipe(
      Effect.flatMap(({ data, error }) =>
        data !== null
          ? Effect.succeed<Claims>(data.claims)
          : unauthenticated(`The token is invalid: ${error?.message ?? "no claims"}`),
      ),
    )

  const verifyToken = Effect.fn("Auth.verifyToken")(function* (token: string) {
    if (serviceKeyDigest !== null && timingSafeEqual(sha256(token), serviceKeyDigest)) {
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
      if (supabase === null) {
        return yield* unauthenticated(`${alg} tokens are not accepted: SUPABASE_URL is not set`)
      }
      if (!kid) return yield* unauthenticated("The token names no signing key (kid)")
      claims = yield* verifyWithJwks(token, supabase)
    } else {
      return yield* unauthenticated(`Tokens signed with ${JSON.stringify(alg)} are not accepted`)
    }
    return yield* checkClaims(claims)
  })

  return {
    mode: "verified",
    authenticate: ({ token, actingFor }) =>
      token === null
        ? Effect.succeed(null)
        : Effect.flatMap(verifyToken(token), (p) => withActingFor(p, actingFor)),
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
