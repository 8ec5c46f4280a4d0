/**
 * Test support: a stand-in for a Supabase project's Auth, so tests sign real tokens and the
 * real verification paths run. It serves the JWKS document where supabase-js looks for it
 * (`<url>/auth/v1/.well-known/jwks.json`) from a local HTTP server on 127.0.0.1.
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
  /** How many times the JWKS document was fetched. */
  readonly jwksFetches: () => number
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

export const startTestAuthority = async (): Promise<TestAuthority> => {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true })
  const forger = await generateKeyPair("ES256", { extractable: true })
  const KEY_ID = `chronicle-test-${randomBytes(6).toString("hex")}`
  const jwk = { ...(await exportJWK(publicKey)), kid: KEY_ID, alg: "ES256", use: "sig" }
  let fetches = 0
  let lastHeaders: Record<string, string | Array<string> | undefined> = {}
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/auth/v1/.well-known/jwks.json") {
      fetches++
      lastHeaders = { ...req.headers }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }))
      return
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "not found" }))
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
  ) => {
    const { expiresIn = "1h", ...payload } = claims
    return new SignJWT({ role: "authenticated", ...payload })
      .setProtectedHeader(alg === "ES256" ? { alg, kid: KEY_ID, typ: "JWT" } : { alg, typ: "JWT" })
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
    lastJwksHeaders: () => lastHeaders,
    es256Token: (claims) => sign("ES256", privateKey, claims),
    hs256Token: (claims, secret) => sign("HS256", new TextEncoder().encode(secret ?? jwtSecret), claims),
    forgedEs256Token: (claims) => sign("ES256", forger.privateKey, claims),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
