import { randomUUID } from "node:crypto"
import { Effect, Exit } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AuthVerifier, bearerToken, DEV_OWNER_ID, makeAuthVerifier } from "../src/auth.ts"
import { startTestAuthority, type TestAuthority } from "../src/testing.ts"

const outcome = async (verifier: AuthVerifier, token: string | null, actingFor: string | null = null) => {
  const exit = await Effect.runPromiseExit(verifier.authenticate({ token, actingFor }))
  if (Exit.isSuccess(exit)) return { principal: exit.value }
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (failure === undefined) throw new Error(`expected a typed failure, got a defect`)
  const error = failure.error as { _tag: string; message: string }
  return { failure: { tag: error._tag, message: error.message } }
}

const past = () => Math.floor(Date.now() / 1000) - 60

describe("dev mode (no auth configured)", () => {
  const verifier = makeAuthVerifier({})

  it("makes every request the dev user, whatever it presents", async () => {
    expect(verifier.mode).toBe("dev")
    const dev = { principal: { kind: "user", userId: DEV_OWNER_ID, dev: true } }
    expect(await outcome(verifier, null)).toEqual(dev)
    expect(await outcome(verifier, "anything at all")).toEqual(dev)
  })

  it("refuses to act for another owner", async () => {
    expect(await outcome(verifier, null, randomUUID())).toMatchObject({ failure: { tag: "Forbidden" } })
  })
})

describe("verified mode", () => {
  let authority: TestAuthority
  let verifier: AuthVerifier

  beforeAll(async () => {
    authority = await startTestAuthority()
    verifier = makeAuthVerifier(authority.authConfig)
  })
  afterAll(() => authority.close())

  it("has no principal for a request without a token", async () => {
    expect(verifier.mode).toBe("verified")
    expect(await outcome(verifier, null)).toEqual({ principal: null })
  })

  it("grants the service role to the service key, acting for the owner it names", async () => {
    expect(await outcome(verifier, authority.serviceKey)).toEqual({
      principal: { kind: "service", actingFor: null },
    })
    const owner = randomUUID()
    expect(await outcome(verifier, authority.serviceKey, owner.toUpperCase())).toEqual({
      principal: { kind: "service", actingFor: owner },
    })
    expect(await outcome(verifier, authority.serviceKey, "someone")).toEqual({
      failure: { tag: "InvalidCommand", message: 'x-chronicle-owner: must be a UUID, got "someone"' },
    })
    expect(await outcome(verifier, `${authority.serviceKey}x`)).toMatchObject({
      failure: { tag: "Unauthenticated", message: "The bearer token is neither the service key nor a JWT" },
    })
  })

  it("verifies an HS256 token with the project secret; sub is the owner", async () => {
    const userId = randomUUID()
    expect(await outcome(verifier, await authority.hs256Token({ sub: userId }))).toEqual({
      principal: { kind: "user", userId, dev: false },
    })
    expect(await outcome(verifier, await authority.hs256Token({ sub: userId }), userId)).toEqual({
      principal: { kind: "user", userId, dev: false },
    })
    expect(await outcome(verifier, await authority.hs256Token({ sub: userId }), randomUUID())).toEqual({
      failure: {
        tag: "Forbidden",
        message: "Only the service role may act for another owner (x-chronicle-owner)",
      },
    })
  })

  it("rejects HS256 tokens that are expired, signed with another secret, or name the wrong issuer, audience or subject", async () => {
    expect(await outcome(verifier, await authority.hs256Token({ expiresIn: past() }))).toEqual({
      failure: { tag: "Unauthenticated", message: "The token has expired" },
    })
    expect(
      await outcome(verifier, await authority.hs256Token({}, "another-secret-of-enough-length")),
    ).toEqual({
      failure: { tag: "Unauthenticated", message: "The token's signature does not verify" },
    })
    expect(
      await outcome(verifier, await authority.hs256Token({ iss: "https://elsewhere.example/auth/v1" })),
    ).toEqual({
      failure: {
        tag: "Unauthenticated",
        message: `The token was issued by "https://elsewhere.example/auth/v1", not "${authority.issuer}"`,
      },
    })
    expect(await outcome(verifier, await authority.hs256Token({ aud: "anon" }))).toEqual({
      failure: { tag: "Unauthenticated", message: `The token's audience is "anon", not "authenticated"` },
    })
    expect(await outcome(verifier, await authority.hs256Token({ sub: "not-a-uuid" }))).toEqual({
      failure: { tag: "Unauthenticated", message: "The token's subject (sub) is not a user id" },
    })
  })

  it("grants the service role to a verified token whose role is service_role", async () => {
    expect(await outcome(verifier, await authority.hs256Token({ role: "service_role" }))).toEqual({
      principal: { kind: "service", actingFor: null },
    })
    expect(await outcome(verifier, await authority.es256Token({ role: "service_role" }))).toEqual({
      principal: { kind: "service", actingFor: null },
    })
  })

  it("verifies ES256 tokens with supabase-js against the JWKS, fetched once and cached", async () => {
    const before = authority.jwksFetches()
    const alice = randomUUID()
    const bob = randomUUID()
    expect(await outcome(verifier, await authority.es256Token({ sub: alice }))).toEqual({
      principal: { kind: "user", userId: alice, dev: false },
    })
    expect(await outcome(verifier, await authority.es256Token({ sub: bob }))).toEqual({
      principal: { kind: "user", userId: bob, dev: false },
    })
    expect(authority.jwksFetches() - before).toBeLessThanOrEqual(1)
    // No anon key configured: no placeholder key is sent with the JWKS request.
    expect(authority.lastJwksHeaders().apikey).toBeUndefined()
    expect(authority.lastJwksHeaders().authorization).toBeUndefined()
  })

  it("sends the anon key, when configured, with the JWKS request; keeps projects' key sets apart", async () => {
    const other = await startTestAuthority()
    try {
      const withKey = makeAuthVerifier({ ...other.authConfig, anonKey: "anon-key-123" })
      const userId = randomUUID()
      expect(await outcome(withKey, await other.es256Token({ sub: userId }))).toEqual({
        principal: { kind: "user", userId, dev: false },
      })
      expect(other.lastJwksHeaders().apikey).toBe("anon-key-123")
      // Each verifier trusts its own project's keys only.
      expect(await outcome(withKey, await authority.es256Token())).toMatchObject({
        failure: { tag: "Unauthenticated" },
      })
      expect(await outcome(verifier, await authority.es256Token({ sub: userId }))).toEqual({
        principal: { kind: "user", userId, dev: false },
      })
    } finally {
      await other.close()
    }
  })

  it("rejects ES256 tokens that are forged, expired, or name the wrong issuer or audience", async () => {
    expect(await outcome(verifier, await authority.forgedEs256Token())).toEqual({
      failure: { tag: "Unauthenticated", message: "The token is invalid: Invalid JWT signature" },
    })
    expect(await outcome(verifier, await authority.es256Token({ expiresIn: past() }))).toMatchObject({
      failure: { tag: "Unauthenticated", message: expect.stringMatching(/expired/) },
    })
    // getClaims checks only the signature and expiry: the issuer and audience are checked here.
    expect(
      await outcome(verifier, await authority.es256Token({ iss: "https://elsewhere.example" })),
    ).toMatchObject({
      failure: { tag: "Unauthenticated", message: expect.stringMatching(/^The token was issued by/) },
    })
    expect(await outcome(verifier, await authority.es256Token({ aud: "anon" }))).toMatchObject({
      failure: { tag: "Unauthenticated", message: expect.stringMatching(/audience/) },
    })
  })

  it("rejects tokens in algorithms it does not accept and tokens that are not JWTs", async () => {
    const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(
      JSON.stringify({ sub: randomUUID(), exp: Math.floor(Date.now() / 1000) + 60 }),
    ).toString("base64url")}.`
    expect(await outcome(verifier, none)).toEqual({
      failure: { tag: "Unauthenticated", message: 'Tokens signed with "none" are not accepted' },
    })
    expect(await outcome(verifier, "not.a.jwt")).toMatchObject({ failure: { tag: "Unauthenticated" } })
  })

  it("refuses HS256 tokens when no project secret is configured, and ES256 ones when no project URL is", async () => {
    const serviceOnly = makeAuthVerifier({ serviceKey: authority.serviceKey })
    expect(await outcome(serviceOnly, await authority.hs256Token())).toEqual({
      failure: {
        tag: "Unauthenticated",
        message: "HS256 tokens are not accepted: SUPABASE_JWT_SECRET is not set",
      },
    })
    expect(await outcome(serviceOnly, await authority.es256Token())).toEqual({
      failure: { tag: "Unauthenticated", message: "ES256 tokens are not accepted: SUPABASE_URL is not set" },
    })
    expect(() => makeAuthVerifier({ jwtSecret: "x" })).toThrow(/SUPABASE_JWT_SECRET needs SUPABASE_URL/)
  })
})

describe("the Authorization header", () => {
  it("takes the token of a Bearer header and refuses other schemes", async () => {
    expect(await Effect.runPromise(bearerToken("Bearer abc.def"))).toBe("abc.def")
    expect(await Effect.runPromise(bearerToken("bearer   abc"))).toBe("abc")
    expect(await Effect.runPromise(bearerToken(null))).toBeNull()
    const exit = await Effect.runPromiseExit(bearerToken("Basic dXNlcjpwYXNz"))
    expect(
      Exit.isFailure(exit) && exit.cause.reasons[0]?._tag === "Fail" && exit.cause.reasons[0].error.message,
    ).toBe("The Authorization header must be `Bearer <token>`")
  })
})
