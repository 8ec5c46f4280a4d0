/**
 * Test support: a stand-in for a Supabase project's Auth, so tests sign real tokens and the
 * real verification paths run. It serves the JWKS document where Supabase publishes it
 * (`<url>/auth/v1/.well-known/jwks.json`) from a local HTTP server on 127.0.0.1, counts
 * every request it gets (any path: a server that calls `/auth/v1/user` shows up too), can
 * hang instead of answering, and can rotate its signing key.
 */
import { randomBytes, randomUUID } from "node:crypto"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose"
import type { AuthConfig } from "./auth.ts"

export interface TestAuthority {
  /** The project URL: SUPABASE_URL. */
  readonly url: string
  /** `<url>/auth/v1`: the issuer user tokens name. */
  readonly issuer: string
  /** The HS256 project secret: SUPABASE_JWT_SECRET. */
  readonly jwtSecret: string
  readonly serviceKey: string
  /** The settings that make a verifier trust this authority. */
  readonly authConfig: AuthConfig
  /** How many times the JWKS document was fetched (answered or not). */
  readonly jwksFetches: () => number
  /** Every request it got, by path. */
  readonly requests: () => Readonly<Record<string, number>>
  /** While true, requests are held open and never answered (until `hang(false)` or close). */
  readonly hang: (on: boolean) => void
  /** Publishes a new signing key (a new kid) next to the old one; tokens are then signed with it. */
  readonly rotate: () => Promise<void>
  /** An ES256 token under a key id the JWKS does not publish. */
  readonly unknownKeyToken: (claims?: JWTPayload) => Promise<string>
  /** From now on `/auth/v1/user` answers 401 for this token (its session was signed out). */
  readonly revoke: (token: string) => void
  /** The headers of the latest JWKS request. */
  readonly lastJwksHeaders: () => Readonly<Record<string, string | Array<string> | undefined>>
  /** A user token signed with the ES256 key the JWKS publishes. */
  readonly es256Token: (claims?: JWTPayload & { readonly expiresIn?: string | number }) => Promise<string>
  /** A user token signed with the HS256 project secret (or `secret`). */
  readonly hs256Token: (
    claims?: JWTPayload & { readonly expiresIn?: string | number },
    secret?: string,
  ) => Promise<string>
  /** An ES256 token under the published key id but signed with a different key. */
  readonly forgedEs256Token: (claims?: JWTPayload) => Promise<string>
  readonly close: () => Promise<void>
}

const newSigningKey = async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true })
  const kid = `chronicle-test-${randomBytes(6).toString("hex")}`
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } }
}

export const startTestAuthority = async (): Promise<TestAuthority> => {
  const keys = [await newSigningKey()]
  const forger = await generateKeyPair("ES256", { extractable: true })
  let fetches = 0
  let hanging = false
  const held = new Set<() => void>()
  const requests: Record<string, number> = {}
  const revoked = new Set<string>()
  let lastHeaders: Record<string, string | Array<string> | undefined> = {}
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0]!
    requests[path] = (requests[path] ?? 0) + 1
    const isJwks = req.method === "GET" && path === "/auth/v1/.well-known/jwks.json"
    if (isJwks) {
      fetches++
      lastHeaders = { ...req.headers }
    }
    const answer = () => {
      if (isJwks) {
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ keys: keys.map((k) => k.jwk) }))
        return
      }
      if (req.method === "GET" && path === "/auth/v1/user") {
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1]
        const ok = token !== undefined && !revoked.has(token)
        res
          .writeHead(ok ? 200 : 401, { "content-type": "application/json" })
          .end(JSON.stringify(ok ? { id: "user" } : { message: "invalid JWT" }))
        return
      }
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "not found" }))
    }
    if (!hanging) return answer()
    const release = () => res.destroy()
    held.add(release)
    res.once("close", () => held.delete(release))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const issuer = `${url}/auth/v1`
  const jwtSecret = randomBytes(32).toString("base64url")
  const serviceKey = `chronicle-service-${randomBytes(24).toString("base64url")}`

  const sign = (
    alg: "ES256" | "HS256",
    key: Parameters<SignJWT["sign"]>[0],
    claims: JWTPayload & { readonly expiresIn?: string | number } = {},
    keyId?: string,
  ) => {
    const { expiresIn = "1h", ...payload } = claims
    return new SignJWT({ role: "authenticated", ...payload })
      .setProtectedHeader(
        alg === "ES256" ? { alg, kid: keyId ?? keys.at(-1)!.kid, typ: "JWT" } : { alg, typ: "JWT" },
      )
      .setIssuer(payload.iss ?? issuer)
      .setAudience(payload.aud ?? "authenticated")
      .setSubject(payload.sub ?? randomUUID())
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(key)
  }

  return {
    url,
    issuer,
    jwtSecret,
    serviceKey,
    authConfig: { supabaseUrl: url, jwtSecret, serviceKey },
    jwksFetches: () => fetches,
    requests: () => ({ ...requests }),
    hang: (on) => {
      hanging = on
      if (!on) for (const release of held) release()
    },
    rotate: async () => {
      keys.push(await newSigningKey())
    },
    revoke: (token) => void revoked.add(token),
    unknownKeyToken: (claims) =>
      sign("ES256", forger.privateKey, claims, `unknown-${randomBytes(6).toString("hex")}`),
    lastJwksHeaders: () => lastHeaders,
    es256Token: (claims) => sign("ES256", keys.at(-1)!.privateKey, claims),
    hs256Token: (claims, secret) => sign("HS256", new TextEncoder().encode(secret ?? jwtSecret), claims),
    forgedEs256Token: (claims) => sign("ES256", forger.privateKey, claims),
    close: () =>
      new Promise<void>((resolve) => {
        for (const release of held) release()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
