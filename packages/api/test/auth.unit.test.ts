import { randomUUID } from "node:crypto"
import { Effect, Exit } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest"
import {
  type AuthVerifier,
  bearerToken,
  type Credentials,
  DEV_OWNER_ID,
  makeAuthVerifier,
  STREAM_TICKET_TTL_SECONDS,
} from "../src/auth.ts"
import { startTestAuthority, type TestAuthority } from "../src/testing.ts"

const outcome = async (
  verifier: AuthVerifier,
  token: string | null,
  actingFor: string | null = null,
  more: Partial<Credentials> = {},
) => {
  const exit = await Effect.runPromiseExit(verifier.authenticate({ token, actingFor, ...more }))
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

  it("checks the issuer and audience of service-role tokens too", async () => {
    for (const token of [
      await authority.hs256Token({ role: "service_role", iss: "supabase" }),
      await authority.es256Token({ role: "service_role", iss: "https://other.example/auth/v1" }),
    ]) {
      expect(await outcome(verifier, token)).toMatchObject({
        failure: { tag: "Unauthenticated", message: expect.stringMatching(/^The token was issued by/) },
      })
    }
    expect(
      await outcome(verifier, await authority.hs256Token({ role: "service_role", aud: "anon" })),
    ).toEqual({
      failure: { tag: "Unauthenticated", message: `The token's audience is "anon", not "authenticated"` },
    })
  })

  it("takes a user's token from a URL, but never the service key or a service-role token", async () => {
    const userId = randomUUID()
    expect(
      await outcome(verifier, await authority.hs256Token({ sub: userId }), null, { inUrl: true }),
    ).toEqual({
      principal: { kind: "user", userId, dev: false },
    })
    expect(await outcome(verifier, authority.serviceKey, null, { inUrl: true })).toEqual({
      failure: {
        tag: "Unauthenticated",
        message:
          "The service key is never accepted in a URL: send it in the Authorization header, or exchange it for a stream ticket (auth.streamTicket)",
      },
    })
    expect(
      await outcome(verifier, await authority.hs256Token({ role: "service_role" }), null, { inUrl: true }),
    ).toMatchObject({
      failure: { tag: "Unauthenticated", message: /^A service-role token is never accepted in a URL/ },
    })
  })

  it("verifies ES256 tokens against the JWKS, fetched once and cached", async () => {
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
      failure: { tag: "Unauthenticated", message: "The token's signature does not verify" },
    })
    expect(await outcome(verifier, await authority.es256Token({ expiresIn: past() }))).toMatchObject({
      failure: { tag: "Unauthenticated", message: expect.stringMatching(/expired/) },
    })
    // The issuer and audience are checked for every token, whatever verified its signature.
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

describe("stream tickets", () => {
  let authority: TestAuthority
  let verifier: AuthVerifier
  beforeAll(async () => {
    authority = await startTestAuthority()
    verifier = makeAuthVerifier(authority.authConfig)
  })
  afterAll(() => authority.close())
  afterEach(() => vi.useRealTimers())

  it("open subscriptions as the principal they were issued to, for a minute", async () => {
    const userId = randomUUID()
    const owner = randomUUID()
    const user = verifier.issueTicket({ kind: "user", userId, dev: false })
    const service = verifier.issueTicket({ kind: "service", actingFor: owner })
    expect(await outcome(verifier, null, null, { ticket: user.ticket, inUrl: true })).toEqual({
      principal: { kind: "user", userId, dev: false },
    })
    expect(await outcome(verifier, null, null, { ticket: service.ticket, inUrl: true })).toEqual({
      principal: { kind: "service", actingFor: owner },
    })
    // Another server with the same secrets (behind one load balancer) accepts them too.
    const twin = makeAuthVerifier(authority.authConfig)
    expect(await outcome(twin, null, null, { ticket: user.ticket })).toEqual({
      principal: { kind: "user", userId, dev: false },
    })

    vi.useFakeTimers({ now: Date.now() + (STREAM_TICKET_TTL_SECONDS + 1) * 1000 })
    expect(await outcome(verifier, null, null, { ticket: user.ticket })).toEqual({
      failure: {
        tag: "Unauthenticated",
        message: "The stream ticket has expired: get a new one from auth.streamTicket",
      },
    })
  })

  it("refuse a ticket that was altered or issued by a server with other secrets", async () => {
    const { ticket } = verifier.issueTicket({ kind: "user", userId: randomUUID(), dev: false })
    const [prefix, body, signature] = ticket.split(".")
    const forged = Buffer.from(JSON.stringify({ k: "s", o: null, e: 9_999_999_999 })).toString("base64url")
    const other = await startTestAuthority()
    try {
      const elsewhere = makeAuthVerifier(other.authConfig).issueTicket({ kind: "service", actingFor: null })
      for (const bad of [`${prefix}.${forged}.${signature}`, elsewhere.ticket]) {
        expect(await outcome(verifier, null, null, { ticket: bad })).toEqual({
          failure: {
            tag: "Unauthenticated",
            message: "The stream ticket does not verify (it was issued by another server, or altered)",
          },
        })
      }
      expect(await outcome(verifier, null, null, { ticket: `${body}` })).toMatchObject({
        failure: { tag: "Unauthenticated", message: /malformed/ },
      })
    } finally {
      await other.close()
    }
  })
})

describe("the project's signing keys", () => {
  let authority: TestAuthority
  beforeAll(async () => {
    authority = await startTestAuthority()
  })
  afterAll(() => authority.close())
  afterEach(() => authority.hang(false))

  const fetchesDuring = async (work: () => Promise<void>) => {
    const before = authority.requests()
    await work()
    const after = authority.requests()
    return Object.fromEntries(
      Object.entries(after)
        .map(([path, n]) => [path, n - (before[path] ?? 0)] as const)
        .filter(([, n]) => n > 0),
    )
  }

  it("fetch nothing per request: unknown key ids make at most one fetch per cool-down, and nothing else is called", async () => {
    const verifier = makeAuthVerifier(authority.authConfig)
    const userId = randomUUID()
    // The first token fetches the keys; later ones use them.
    const first = await fetchesDuring(async () => {
      expect(await outcome(verifier, await authority.es256Token({ sub: userId }))).toEqual({
        principal: { kind: "user", userId, dev: false },
      })
    })
    expect(first).toEqual({ "/auth/v1/.well-known/jwks.json": 1 })
    const calls = await fetchesDuring(async () => {
      for (let i = 0; i < 50; i++) {
        expect(await outcome(verifier, await authority.unknownKeyToken({ sub: userId }))).toMatchObject({
          failure: { tag: "Unauthenticated", message: /is not one of the project's keys$/ },
        })
        expect(await outcome(verifier, await authority.es256Token({ sub: userId }))).toMatchObject({
          principal: { userId },
        })
      }
    })
    // 100 tokens, 50 of them naming unknown keys: the first unknown one may refetch (the
    // cool-down runs from the first fetch, moments ago, so here it does not), nothing more.
    expect(calls["/auth/v1/.well-known/jwks.json"] ?? 0).toBeLessThanOrEqual(1)
    expect(Object.keys(calls).filter((path) => path !== "/auth/v1/.well-known/jwks.json")).toEqual([])
  })

  it("pick up a rotated key with one fetch once the cool-down allows", async () => {
    const verifier = makeAuthVerifier({ ...authority.authConfig, jwks: { cooldownMs: 0 } })
    verifier.warmUp()
    expect(await outcome(verifier, await authority.es256Token())).toMatchObject({
      principal: { kind: "user" },
    })
    await authority.rotate()
    const calls = await fetchesDuring(async () => {
      expect(await outcome(verifier, await authority.es256Token())).toMatchObject({
        principal: { kind: "user" },
      })
      expect(await outcome(verifier, await authority.es256Token())).toMatchObject({
        principal: { kind: "user" },
      })
    })
    expect(calls).toEqual({ "/auth/v1/.well-known/jwks.json": 1 })
  })

  it("never wait on a key server that hangs once the keys are held", async () => {
    // Keys older than 0 ms are refreshed on every use, and a fetch may take 10 minutes: a
    // verification that waited for the refresh would not finish within the test's time.
    const verifier = makeAuthVerifier({
      ...authority.authConfig,
      jwks: { refreshMs: 0, retryMs: 0, timeoutMs: 600_000 },
    })
    expect(await outcome(verifier, await authority.es256Token())).toMatchObject({
      principal: { kind: "user" },
    })
    authority.hang(true)
    for (let i = 0; i < 5; i++) {
      expect(await outcome(verifier, await authority.es256Token())).toMatchObject({
        principal: { kind: "user" },
      })
    }
  })

  it("answer 'unavailable' after the fetch timeout when the keys were never fetched, then at once until a retry", async () => {
    authority.hang(true)
    const verifier = makeAuthVerifier({ ...authority.authConfig, jwks: { timeoutMs: 200, retryMs: 60_000 } })
    const token = await authority.es256Token()
    const unavailable = {
      failure: {
        tag: "AuthUnavailable",
        message: `The project's signing keys could not be fetched (${authority.url}/auth/v1/.well-known/jwks.json: no answer in time); retry shortly`,
      },
    }
    const first = await fetchesDuring(async () => {
      expect(await outcome(verifier, token)).toEqual(unavailable)
    })
    expect(first).toEqual({ "/auth/v1/.well-known/jwks.json": 1 })
    // Within the retry interval: refused at once, no new fetch.
    const later = await fetchesDuring(async () => {
      for (let i = 0; i < 20; i++) expect(await outcome(verifier, token)).toEqual(unavailable)
    })
    expect(later).toEqual({})
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
