import { randomUUID } from "node:crypto"
import { request } from "node:http"
import { type ChronicleClient, createChronicleClient, type EventView } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import {
  clientFor,
  events,
  failure,
  newSessionStream,
  seed,
  sql,
  startTestServer,
  type TestServer,
  testDatabases,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

/** Subscribes and gathers events; `until` resolves once `n` have arrived. */
const follow = (
  client: ChronicleClient,
  input: Parameters<ChronicleClient["events"]["subscribe"]["subscribe"]>[0],
) => {
  const received: Array<{ id: string; data: EventView }> = []
  const waiters: Array<{ n: number; resolve: () => void }> = []
  let failed: ((error: unknown) => void) | undefined
  const errored = new Promise<never>((_, reject) => {
    failed = reject
  })
  errored.catch(() => {})
  const subscription = client.events.subscribe.subscribe(input, {
    onData: (event) => {
      received.push(event)
      for (const w of waiters.filter((w) => received.length >= w.n)) w.resolve()
    },
    onError: (error) => failed?.(error),
  })
  const until = (n: number, timeoutMs = 15_000) =>
    Promise.race([
      errored,
      new Promise<void>((resolve, reject) => {
        if (received.length >= n) return resolve()
        const timer = setTimeout(
          () => reject(new Error(`got ${received.length} of ${n} events in ${timeoutMs} ms`)),
          timeoutMs,
        )
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer)
            resolve()
          },
        })
      }),
    ])
  return { received, until, errored, stop: () => subscription.unsubscribe() }
}

describe.each(testDatabases(env))("the API over HTTP, on $name", (database) => {
  let t: TestServer
  let url: string
  const alice = randomUUID()
  const bob = randomUUID()
  let asAlice: ChronicleClient
  let asBob: ChronicleClient
  let asService: ChronicleClient
  let anonymous: ChronicleClient

  beforeAll(async () => {
    t = await startTestServer(database)
    url = t.server.url
    asAlice = clientFor(url, await t.authority.es256Token({ sub: alice }))
    asBob = clientFor(url, await t.authority.hs256Token({ sub: bob }))
    asService = clientFor(url, t.authority.serviceKey)
    anonymous = clientFor(url)
  })
  afterAll(() => t?.close())

  it("answers health and /healthz, echoing the caller's request id", async () => {
    // Public: it says nothing about what the log holds.
    expect(await anonymous.health.query()).toEqual({ ok: true, database: database.name })
    expect((await asAlice.events.head.query()).cursor).toMatch(/^\d+$/)
    const res = await fetch(`${url}/healthz`, { headers: { "x-request-id": "probe-1" } })
    expect(res.status).toBe(200)
    expect(res.headers.get("x-request-id")).toBe("probe-1")
    expect(await res.json()).toEqual({ ok: true })
    const generated = await fetch(`${url}/healthz`)
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
    expect((await fetch(`${url}/elsewhere`)).status).toBe(404)
  })

  it("sends a call made alone at once, on its own, and calls made together in one request", async () => {
    const sent: Array<string> = []
    const counting = createChronicleClient({
      url,
      token: await t.authority.hs256Token({ sub: alice }),
      fetch: (input, init) => {
        sent.push(String(input))
        return fetch(input, init)
      },
    })
    const session = await counting.sessions.create.mutate({ title: "links" })
    expect(sent).toHaveLength(1)
    expect(sent[0]).not.toContain("batch=1")
    sent.length = 0
    const [a, b, c] = await Promise.all([
      counting.messages.append.mutate({ sessionId: session.id, role: "user", content: "a" }),
      counting.messages.list.query({ sessionId: session.id }),
      counting.sessions.get.query({ id: session.id }),
    ])
    expect(sent).toHaveLength(2) // the mutation, and the two queries together
    expect(sent.filter((u) => u.includes("batch=1"))).toHaveLength(2)
    // Each answer is its own call's, in one batched response.
    expect(a.content).toBe("a")
    expect(Array.isArray(b.items)).toBe(true)
    expect(c.id).toBe(session.id)
  })

  it("reads a target starting with // as a path on this server, and keeps serving", async () => {
    // `new URL("//", base)` throws and `new URL("//host/x", base)` names another host: neither
    // may take the server down or route the request elsewhere.
    for (const target of ["//", "//evil.example/healthz", "//evil.example/trpc/health"]) {
      const answer = await rawGet(url, target)
      expect(answer.status, target).toBe(404)
      expect(JSON.parse(answer.body).error, target).toContain(`No route for GET ${target}`)
    }
    expect((await rawGet(url, "/healthz")).status).toBe(200)
  })

  it("reads a stream page by page to the end, with ISO timestamps and cursors", async () => {
    const streamId = newSessionStream()
    await seed(t.server, streamId, events(7), alice)
    const versions: Array<number> = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await asAlice.events.readStream.query({
        streamId,
        limit: 3,
        ...(cursor ? { cursor } : {}),
      })
      pages++
      expect(page.version).toBe(7)
      versions.push(...page.items.map((e) => e.version))
      cursor = page.nextCursor ?? undefined
    } while (cursor !== undefined)
    expect(pages).toBe(3)
    expect(versions).toEqual([1, 2, 3, 4, 5, 6, 7])
    const [first] = (await asAlice.events.readStream.query({ streamId, fromVersion: 2, limit: 1 })).items
    expect(first).toMatchObject({
      streamId,
      version: 2,
      type: "MessageAppended",
      data: { n: 1 },
      schemaVersion: 1,
    })
    expect(new Date(first!.recordedAt).toISOString()).toBe(first!.recordedAt)
    expect(first!.cursor).toMatch(/^\d+$/)
  })

  it("reads the whole log to the end, only the caller's streams unless it is the service role", async () => {
    const start = (await asService.events.head.query()).cursor
    const mine = newSessionStream()
    const theirs = newSessionStream()
    await seed(t.server, mine, events(3), alice)
    await seed(t.server, theirs, events(2, "Other"), bob)
    await seed(t.server, mine, events(2, "Later"))

    const readAll = async (client: ChronicleClient, input: { types?: Array<string> } = {}) => {
      const seen: Array<string> = []
      let after: string | undefined = start
      while (after !== undefined) {
        const page: Awaited<ReturnType<ChronicleClient["events"]["readAll"]["query"]>> =
          await client.events.readAll.query({ after, limit: 2, ...input })
        seen.push(...page.items.map((e) => `${e.streamId === mine ? "mine" : "theirs"}:${e.version}`))
        after = page.nextCursor ?? undefined
        if (page.nextCursor === null) expect(page.cursor).toBeTruthy()
      }
      return seen
    }
    expect(await readAll(asAlice)).toEqual(["mine:1", "mine:2", "mine:3", "mine:4", "mine:5"])
    expect(await readAll(asBob)).toEqual(["theirs:1", "theirs:2"])
    expect(await readAll(asService)).toEqual([
      "mine:1",
      "mine:2",
      "mine:3",
      "theirs:1",
      "theirs:2",
      "mine:4",
      "mine:5",
    ])
    expect(await readAll(clientFor(url, t.authority.serviceKey, bob))).toEqual(["theirs:1", "theirs:2"])
    expect(await readAll(asAlice, { types: ["Later"] })).toEqual(["mine:4", "mine:5"])
  })

  it("answers a client's mistakes with BAD_REQUEST and a message naming the field", async () => {
    const badCursor = await failure(asAlice.events.readAll.query({ after: "garbage" }))
    expect(badCursor.message).toBe('Cursor "garbage" is not a cursor handed out by this store')
    expect(badCursor.data).toMatchObject({ code: "BAD_REQUEST", httpStatus: 400, tag: "InvalidCursor" })

    const tooMany = await failure(asAlice.events.readAll.query({ limit: 501 }))
    expect(tooMany.message).toBe("limit: Expected a value less than or equal to 500")
    expect(tooMany.data).toMatchObject({
      code: "BAD_REQUEST",
      tag: "InvalidInput",
      fields: { issues: [{ path: "limit", message: "Expected a value less than or equal to 500" }] },
    })

    const badStream = await failure(asAlice.events.readStream.query({ streamId: "Session-1", limit: 0 }))
    expect(badStream.message).toBe(
      "streamId: must be <category>-<uuid>, such as session-0b6f2c7e-…; limit: Expected a value greater than or equal to 1",
    )
    const streamId = newSessionStream()
    await seed(t.server, streamId, events(1), alice)
    const badPage = await failure(asAlice.events.readStream.query({ streamId, cursor: "x" }))
    expect(badPage).toMatchObject({
      message: 'Cursor "x" is not a cursor handed out by this store',
      data: { code: "BAD_REQUEST" },
    })
  })

  it("refuses an unknown input field with its path, so a misspelt option is never silently ignored", async () => {
    const session = await asAlice.sessions.create.mutate({ title: "typos" })
    await asAlice.messages.append.mutate({ sessionId: session.id, role: "user", content: "one" })
    const typo = await failure(
      asAlice.messages.append.mutate({
        sessionId: session.id,
        role: "user",
        content: "two",
        // A stale version under a misspelt key: refused, never appended unchecked.
        ...({ expectedVerison: 0 } as object),
      }),
    )
    expect(typo.data).toMatchObject({
      code: "BAD_REQUEST",
      tag: "InvalidInput",
      fields: { issues: [{ path: "expectedVerison" }] },
    })
    expect(typo.message).toMatch(/^expectedVerison: /)
    expect((await asAlice.messages.list.query({ sessionId: session.id })).items).toHaveLength(1)
    // Nested objects and the optional inputs of queries too.
    const nested = await failure(
      asAlice.sessions.get.query({ id: session.id, asOf: { version: 1, ...({ extra: 1 } as object) } }),
    )
    expect(nested.data?.code).toBe("BAD_REQUEST")
    const issues = (nested.data?.fields ?? { issues: [] }) as { issues: Array<{ path: string }> }
    expect(issues.issues).toContainEqual({
      path: "asOf.extra",
      message: "Expected no excess property",
    })
    const list = await failure(asAlice.sessions.list.query({ limit: 5, ...({ staus: "active" } as object) }))
    expect(list.data).toMatchObject({ code: "BAD_REQUEST", fields: { issues: [{ path: "staus" }] } })
  })

  it("enforces ownership and tokens on events.readStream: A, B, service role, no token, expired, forged", async () => {
    const streamId = newSessionStream()
    await seed(t.server, streamId, events(2), alice)
    const read = (client: ChronicleClient) => client.events.readStream.query({ streamId })

    expect((await read(asAlice)).items).toHaveLength(2)
    expect((await read(asService)).items).toHaveLength(2)
    expect((await read(clientFor(url, t.authority.serviceKey, bob))).items).toHaveLength(2)
    expect(
      (await read(clientFor(url, await t.authority.es256Token({ role: "service_role" })))).items,
    ).toHaveLength(2)

    const otherUser = await failure(read(asBob))
    expect(otherUser.data).toMatchObject({ code: "NOT_FOUND", httpStatus: 404 })
    expect(otherUser.message).toBe(`Stream ${streamId} was not found`)
    const missing = await failure(asAlice.events.readStream.query({ streamId: newSessionStream() }))
    expect(missing.data?.code).toBe("NOT_FOUND")

    const noToken = await failure(read(anonymous))
    expect(noToken.data).toMatchObject({ code: "UNAUTHORIZED", httpStatus: 401, tag: "Unauthenticated" })
    expect(noToken.message).toBe("Missing credentials: send the header Authorization: Bearer <token>")

    const past = Math.floor(Date.now() / 1000) - 60
    const expiredEs = await failure(
      read(clientFor(url, await t.authority.es256Token({ sub: alice, expiresIn: past }))),
    )
    expect(expiredEs.data?.code).toBe("UNAUTHORIZED")
    expect(expiredEs.message).toMatch(/expired/)
    const expiredHs = await failure(
      read(clientFor(url, await t.authority.hs256Token({ sub: alice, expiresIn: past }))),
    )
    expect(expiredHs.message).toBe("The token has expired")

    const forged = await failure(read(clientFor(url, await t.authority.forgedEs256Token({ sub: alice }))))
    expect(forged).toMatchObject({
      message: "The token's signature does not verify",
      data: { code: "UNAUTHORIZED" },
    })
    const wrongSecret = await failure(
      read(
        clientFor(url, await t.authority.hs256Token({ sub: alice }, "not-the-project-secret-at-all-0123")),
      ),
    )
    expect(wrongSecret).toMatchObject({
      message: "The token's signature does not verify",
      data: { code: "UNAUTHORIZED" },
    })

    const actingForOther = await failure(
      read(clientFor(url, await t.authority.es256Token({ sub: alice }), bob)),
    )
    expect(actingForOther.data?.code).toBe("FORBIDDEN")
  })

  it("follows the log live; a subscription that is cut resumes from its last id with no gap or duplicate", async () => {
    const sessionId = randomUUID()
    const streamId = `session-${sessionId}`
    await seed(t.server, streamId, events(3), alice)
    await seed(t.server, newSessionStream(), events(2), alice)

    // Cut by the client: unsubscribe after 3, resume with the last tracked id.
    const first = follow(asAlice, { sessionId })
    await first.until(3)
    first.stop()
    const lastSeen = first.received.at(-1)!.id
    await seed(t.server, streamId, events(2, "MessageAppended", 3))
    const resumed = follow(asAlice, { sessionId, lastEventId: lastSeen })
    await resumed.until(2)
    await seed(t.server, streamId, events(1, "MessageAppended", 5))
    await resumed.until(3)
    resumed.stop()
    expect(first.received.map((e) => e.data.version)).toEqual([1, 2, 3])
    expect(resumed.received.map((e) => e.data.version)).toEqual([4, 5, 6])
    expect(resumed.received.every((e) => e.id === e.data.cursor)).toBe(true)

    // Cut by the network: the server drops every connection mid-stream; the client's
    // EventSource reconnects with Last-Event-ID and the server resumes after it.
    const live = follow(asAlice, { sessionId, types: ["MessageAppended"] })
    await live.until(6)
    t.server.httpServer.closeAllConnections()
    await seed(t.server, streamId, events(2, "MessageAppended", 6))
    await seed(t.server, streamId, events(1, "Ignored"))
    await seed(t.server, streamId, events(1, "MessageAppended", 8))
    await live.until(9)
    await new Promise((r) => setTimeout(r, 200))
    live.stop()
    expect(live.received.map((e) => e.data.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 10])

    // Bob sees nothing of Alice's session; a live feed without a session sees only his own.
    const bobs = follow(asBob, {})
    const bobStream = newSessionStream()
    await seed(t.server, streamId, events(1, "MessageAppended", 10))
    await seed(t.server, bobStream, events(1), bob)
    // Bob's earlier streams arrive first (a feed without a cursor starts at the beginning);
    // wait for the new one, then a moment more for anything that should not come.
    for (let i = 0; i < 300 && !bobs.received.some((e) => e.data.streamId === bobStream); i++)
      await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => setTimeout(r, 200))
    bobs.stop()
    expect(bobs.received.map((e) => e.data.streamId)).toEqual(expect.arrayContaining([bobStream]))
    expect(bobs.received.some((e) => e.data.streamId === streamId)).toBe(false)
  })

  it("refuses a subscription without a token or with a bad cursor, through the event stream", async () => {
    const refused = follow(anonymous, {})
    const error = (await refused.errored.catch((e: unknown) => e)) as {
      message: string
      data?: { code: string }
    }
    refused.stop()
    expect(error.data?.code).toBe("UNAUTHORIZED")
    const badCursor = follow(asAlice, { after: "nope" })
    const cursorError = (await badCursor.errored.catch((e: unknown) => e)) as {
      message: string
      data?: { code: string }
    }
    badCursor.stop()
    expect(cursorError.data?.code).toBe("BAD_REQUEST")
    expect(cursorError.message).toBe('Cursor "nope" is not a cursor handed out by this store')
  })

  it("refuses a body over the limit with 413 and a tRPC error naming the limit", async () => {
    const limit = 32 * 1024 * 1024
    const res = await fetch(`${url}/trpc/events.readAll`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.authority.serviceKey}` },
      body: JSON.stringify({ padding: "x".repeat(limit) }),
    })
    expect(res.status).toBe(413)
    const body = (await res.json()) as { error: { message: string; data: Record<string, unknown> } }
    expect(body.error.message).toBe(
      `The request body is ${limit + 14} bytes, over the limit of ${limit} bytes`,
    )
    expect(body.error.data).toMatchObject({
      code: "PAYLOAD_TOO_LARGE",
      httpStatus: 413,
      tag: "PayloadTooLarge",
      fields: { what: "The request body", limit },
      requestId: res.headers.get("x-request-id"),
    })

    // Without a Content-Length: refused once the bytes read pass the limit.
    const chunk = new Uint8Array(256 * 1024).fill(120)
    let sent = 0
    const chunked = await fetch(`${url}/trpc/events.readAll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= limit + chunk.length * 4) return controller.close()
          sent += chunk.length
          controller.enqueue(chunk)
        },
      }),
      duplex: "half",
    } as RequestInit)
    expect(chunked.status).toBe(413)
    const refused = (await chunked.json()) as { error: { message: string; data: { code: string } } }
    expect(refused.error.data.code).toBe("PAYLOAD_TOO_LARGE")
    expect(refused.error.message).toMatch(
      new RegExp(`^The request body is \\d+ bytes, over the limit of ${limit} bytes$`),
    )
    // The server is still there.
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
  })

  it("answers an unexpected failure with 500 and the request id, logging the details under that id", async () => {
    const streamId = newSessionStream()
    await seed(t.server, streamId, events(1), alice)
    await sql(t.server, "alter table chronicle.streams rename to streams_unavailable")
    let error: Awaited<ReturnType<typeof failure>>
    try {
      error = await failure(asAlice.events.readStream.query({ streamId }))
    } finally {
      await sql(t.server, "alter table chronicle.streams_unavailable rename to streams")
    }
    const requestId = error.data?.requestId
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/)
    expect(error.message).toBe(`Internal server error; quote request id ${requestId} when reporting it`)
    expect(error.data).toMatchObject({
      code: "INTERNAL_SERVER_ERROR",
      httpStatus: 500,
      tag: null,
      fields: null,
    })
    expect(JSON.stringify(error)).not.toMatch(/streams|relation|SQL/i)
    await new Promise((r) => setTimeout(r, 50))
    const logged = t.logs.find(
      (line) =>
        line.level === "ERROR" &&
        (line.annotations as Record<string, unknown> | undefined)?.requestId === requestId,
    )
    expect(logged?.message).toBe("unexpected failure")
    expect(String(logged?.cause)).toMatch(/streams/)
    // The service carries on.
    expect((await asAlice.events.readStream.query({ streamId })).items).toHaveLength(1)
  })
})

/** A GET with the target exactly as given (fetch would normalise it). */
const rawGet = (base: string, target: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const { hostname, port } = new URL(base)
    request({ host: hostname, port, path: target, method: "GET" }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        body += chunk
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
      .on("error", reject)
      .end()
  })
