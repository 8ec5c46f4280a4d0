/**
 * Authentication never waits and never multiplies, against the real server and a real key
 * server (the test authority: a local HTTP server that counts every request it gets and can
 * hang): no outbound call for public procedures, unknown paths or unknown procedures; tokens
 * naming unknown keys make at most one key fetch per cool-down and nothing else; a hanging
 * key server delays a token by the fetch timeout at most; credentials in a URL only to open a
 * subscription, never the service key; in dev mode, only requests addressed to this machine.
 */
import { randomUUID } from "node:crypto"
import { request } from "node:http"
import type {} from "@chronicle/store/vitest-global-setup"
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest"
import { startTestServer, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
// Authentication does not depend on the database: one is enough.
const databases = testDatabases(env)
const database = databases.find((d) => d.name === "postgres") ?? databases[0]!
const JWKS = "/auth/v1/.well-known/jwks.json"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The requests the key server got while `work` ran, by path. */
const outboundDuring = async (t: TestServer, work: () => Promise<void>) => {
  const before = t.authority.requests()
  await work()
  const after = t.authority.requests()
  return Object.fromEntries(
    Object.entries(after)
      .map(([path, n]) => [path, n - (before[path] ?? 0)] as const)
      .filter(([, n]) => n > 0),
  )
}

/** A raw request, so any header (Host included) can be sent. */
const raw = (
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const req = request({ host: hostname, port, path, headers }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        body += chunk
        // An SSE stream stays open: its first event is all a test needs.
        if ((res.headers["content-type"] ?? "").startsWith("text/event-stream") && body.includes("\n\n")) {
          resolve({ status: res.statusCode ?? 0, body })
          res.destroy()
        }
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      res.on("error", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on("error", reject)
    req.end()
  })

const trpcError = (body: string) =>
  (JSON.parse(body) as { error: { message: string; data: { code: string; httpStatus: number } } }).error

/** The first SSE event of a subscription: `connected`, or the error it was refused with. */
const firstEvent = (body: string) => {
  const error = /^event: serialized-error\ndata: (.*)$/m.exec(body)
  if (error) {
    const parsed = JSON.parse(error[1]!) as { message: string; data: { code: string } }
    return { error: parsed.data.code, message: parsed.message }
  }
  return { event: /^event: (\S+)$/m.exec(body)?.[1] ?? "data" }
}

const subscribePath = (params: Record<string, string>) =>
  `/trpc/events.subscribe?input=${encodeURIComponent("{}")}&connectionParams=${encodeURIComponent(JSON.stringify(params))}`

describe(`authentication, on ${database.name}`, () => {
  describe("with a key server that answers", () => {
    let t: TestServer
    beforeAll(async () => {
      t = await startTestServer(database)
      // The server fetches the keys once at start-up; wait for that to be done.
      for (let i = 0; i < 100 && t.authority.jwksFetches() === 0; i++) await sleep(20)
    })
    afterAll(() => t?.close())

    it("makes no outbound call for public procedures or unknown paths, and at most one key fetch for 50 tokens naming unknown keys", async () => {
      const tokens = await Promise.all(
        Array.from({ length: 50 }, () => t.authority.unknownKeyToken({ sub: randomUUID() })),
      )
      const publicCalls = await outboundDuring(t, async () => {
        for (const token of tokens) {
          const authorization = `Bearer ${token}`
          expect((await raw(t.server.url, "/trpc/health", { authorization })).status).toBe(200)
          expect((await raw(t.server.url, "/nowhere", { authorization })).status).toBe(404)
          expect((await raw(t.server.url, "/trpc/no.such.procedure", { authorization })).status).toBe(404)
        }
      })
      const authedCalls = await outboundDuring(t, async () => {
        for (const token of tokens) {
          const answer = await raw(t.server.url, "/trpc/sessions.list", { authorization: `Bearer ${token}` })
          expect(answer.status).toBe(401)
          expect(trpcError(answer.body).message).toMatch(/is not one of the project's keys$/)
        }
      })
      console.log(
        `[auth] outbound calls: 150 public/unknown-path requests ${JSON.stringify(publicCalls)}, 50 authed requests ${JSON.stringify(authedCalls)}`,
      )
      expect(publicCalls).toEqual({})
      // One refetch for the first unknown key id at most (the cool-down then holds), and no
      // call to the Auth server's user endpoint, or anywhere else.
      expect(Object.keys(authedCalls).filter((path) => path !== JWKS)).toEqual([])
      expect(authedCalls[JWKS] ?? 0).toBeLessThanOrEqual(1)
      // Valid tokens still verify, with the keys held.
      const valid = await t.authority.es256Token({ sub: randomUUID() })
      const calls = await outboundDuring(t, async () => {
        const answer = await raw(t.server.url, "/trpc/sessions.list", { authorization: `Bearer ${valid}` })
        expect(answer.status).toBe(200)
      })
      expect(calls).toEqual({})
    })

    it("takes credentials in the URL only to open a subscription, and never the service key", async () => {
      const user = randomUUID()
      const token = await t.authority.hs256Token({ sub: user })
      // A query with a token in its URL: refused, saying where the token belongs.
      const query = await raw(
        t.server.url,
        `/trpc/sessions.list?connectionParams=${encodeURIComponent(JSON.stringify({ token }))}`,
      )
      expect(query.status).toBe(401)
      expect(trpcError(query.body).message).toBe(
        "Credentials in the URL (connectionParams) are accepted only to open a subscription: send the header Authorization: Bearer <token>",
      )
      const sse = { accept: "text/event-stream" }
      // A user's token opens a subscription.
      expect(firstEvent((await raw(t.server.url, subscribePath({ token }), sse)).body)).toEqual({
        event: "connected",
      })
      // The service key never travels in a URL.
      expect(
        firstEvent((await raw(t.server.url, subscribePath({ token: t.authority.serviceKey }), sse)).body),
      ).toEqual({
        error: "UNAUTHORIZED",
        message:
          "The service key is never accepted in a URL: send it in the Authorization header, or exchange it for a stream ticket (auth.streamTicket)",
      })
      // It is exchanged, in a POST with the key in its header, for a ticket that does.
      const ticketAnswer = await fetch(`${t.server.url}/trpc/auth.streamTicket`, {
        method: "POST",
        headers: { authorization: `Bearer ${t.authority.serviceKey}`, "content-type": "application/json" },
      })
      expect(ticketAnswer.status).toBe(200)
      const { ticket } = ((await ticketAnswer.json()) as { result: { data: { ticket: string } } }).result.data
      expect(ticket).not.toContain(t.authority.serviceKey)
      expect(firstEvent((await raw(t.server.url, subscribePath({ ticket }), sse)).body)).toEqual({
        event: "connected",
      })
      // A ticket opens subscriptions only.
      const ticketQuery = await raw(
        t.server.url,
        `/trpc/sessions.list?connectionParams=${encodeURIComponent(JSON.stringify({ ticket }))}`,
      )
      expect(ticketQuery.status).toBe(401)
    })
  })

  describe("with a key server that hangs", () => {
    let t: TestServer
    beforeAll(async () => {
      // Hanging from the start: the server's start-up fetch of the keys never ends.
      t = await startTestServer(database, {}, { beforeStart: (authority) => authority.hang(true) })
    })
    afterEach(() => t?.authority.hang(true))
    afterAll(() => t?.close())

    it("answers a token signed with the project's key 503 once the fetch times out, and others at once", async () => {
      const token = await t.authority.es256Token({ sub: randomUUID() })
      const started = performance.now()
      const answer = await raw(t.server.url, "/trpc/sessions.list", { authorization: `Bearer ${token}` })
      console.log(
        `[auth] a valid token with the key server hanging: ${answer.status} after ${Math.round(performance.now() - started)} ms`,
      )
      expect(answer.status).toBe(503)
      expect(trpcError(answer.body)).toMatchObject({
        message: expect.stringMatching(
          /^The project's signing keys could not be fetched \(.*no answer in time\); retry shortly$/,
        ),
        data: { code: "SERVICE_UNAVAILABLE" },
      })
      // Tokens that need no keys are not held up.
      const hs256 = await t.authority.hs256Token({ sub: randomUUID() })
      expect(
        (await raw(t.server.url, "/trpc/sessions.list", { authorization: `Bearer ${hs256}` })).status,
      ).toBe(200)
      // Once the key server answers again, the next attempt fetches the keys.
      t.authority.hang(false)
      let status = 0
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = (await raw(t.server.url, "/trpc/sessions.list", { authorization: `Bearer ${token}` })).status
        if (status !== 200) await sleep(100)
      }
      expect(status).toBe(200)
    })
  })

  describe("with SUPABASE_AUTH_CHECK_USER", () => {
    let t: TestServer
    beforeAll(async () => {
      t = await startTestServer(database, { SUPABASE_AUTH_CHECK_USER: "true", SUPABASE_ANON_KEY: "anon-key" })
    })
    afterAll(() => t?.close())

    it("asks the Auth server about a user's token at most once a minute, and refuses one it no longer accepts", async () => {
      const token = await t.authority.es256Token({ sub: randomUUID() })
      const calls = await outboundDuring(t, async () => {
        for (let i = 0; i < 20; i++) {
          expect(
            (await raw(t.server.url, "/trpc/sessions.list", { authorization: `Bearer ${token}` })).status,
          ).toBe(200)
        }
      })
      expect(calls["/auth/v1/user"]).toBe(1)
      // A token signed out at the Auth server: refused once asked about (a new token here).
      const signedOut = await t.authority.hs256Token({ sub: randomUUID() })
      t.authority.revoke(signedOut)
      const refused = await raw(t.server.url, "/trpc/sessions.list", { authorization: `Bearer ${signedOut}` })
      expect(refused.status).toBe(401)
      expect(trpcError(refused.body).message).toBe(
        "The Auth server no longer accepts this token (signed out or revoked)",
      )
      // The service key is not a user's token: nothing to ask.
      const service = await outboundDuring(t, async () => {
        expect(
          (
            await raw(t.server.url, "/trpc/sessions.list", {
              authorization: `Bearer ${t.authority.serviceKey}`,
            })
          ).status,
        ).toBe(200)
      })
      expect(service).toEqual({})
    })
  })

  describe("in dev mode", () => {
    let t: TestServer
    beforeAll(async () => {
      t = await startTestServer(database, {
        SUPABASE_URL: "",
        SUPABASE_JWT_SECRET: "",
        CHRONICLE_SERVICE_KEY: "",
      })
    })
    afterAll(() => t?.close())

    it("answers only requests addressed to a loopback name (DNS rebinding gets nothing)", async () => {
      const { port } = new URL(t.server.url)
      for (const host of [
        `127.0.0.1:${port}`,
        `localhost:${port}`,
        `[::1]:${port}`,
        `studio.localhost:${port}`,
      ]) {
        expect((await raw(t.server.url, "/trpc/sessions.list", { host })).status, host).toBe(200)
      }
      for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.evil.example:${port}`]) {
        const answer = await raw(t.server.url, "/trpc/sessions.list", { host })
        expect(answer.status, host).toBe(403)
        expect((JSON.parse(answer.body) as { error: string }).error).toMatch(
          /^In dev mode \(no auth configured\) the server answers only requests addressed to this machine/,
        )
        expect((await raw(t.server.url, "/studio/", { host })).status, host).toBe(403)
      }
    })
  })
})
