/**
 * What one request may cost, over HTTP with the real client: every list ends its page early,
 * with a cursor, once the page's byte budget is reached (and paging on returns every item once,
 * in order); the calls of one batched request share one response budget, and a call that no
 * longer fits is refused on its own (413 `ResponseTooLarge`, never a 500); a user running too
 * many queries or holding too many subscriptions at once gets 429; `sessions.export` comes in
 * pages pinned to one version; a message at the message limit is accepted, large text kept in
 * the blob store whatever its escaping.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { Database, type DatabaseService } from "@chronicle/store"
import type {} from "@chronicle/store/vitest-global-setup"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import {
  allPages,
  clientFor,
  failure,
  SMALL_LIMITS,
  smallLimitsEnv,
  startTestServer,
  type TestServer,
  testDatabases,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const PAGE_BYTES = 4096
const RESPONSE_BYTES = 128 * 1024
/** Items of this many bytes of content: two fit in a page, three do not. */
const BIG = 1500
const COUNT = 9

const big = (i: number) => `${i}:`.padEnd(BIG, "x")
const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value))
const base64 = (text: string) => Buffer.from(text).toString("base64")

type Page<A> = { readonly items: ReadonlyArray<A>; readonly nextCursor: string | null }

/**
 * Pages through a list asking for up to 500 items a page, and checks each page: its items
 * take at most the page budget (a page of one item may take more), and it ends with a cursor
 * while items are left. Returns the items and the number of pages.
 */
const pagedWithinBudget = async <A>(what: string, page: (cursor: string | undefined) => Promise<Page<A>>) => {
  const { items, pages } = await allPages(async (cursor) => {
    const next = await page(cursor)
    if (next.items.length > 1) {
      const bytes = next.items.reduce((sum, item) => sum + jsonBytes(item) + 1, 0)
      expect(bytes, `${what}: a page of ${next.items.length} items`).toBeLessThanOrEqual(PAGE_BYTES)
    }
    expect(next.items.length, `${what}: an empty page with a cursor`).toBeGreaterThan(
      next.nextCursor === null ? -1 : 0,
    )
    return next
  })
  return { items, pages }
}

describe.each(testDatabases(env))("response budgets, on $name", (database) => {
  let t: TestServer
  let me: ChronicleClient
  let owner: string
  let sessionId: string

  beforeAll(async () => {
    t = await startTestServer(database, {
      ...smallLimitsEnv,
      CHRONICLE_MAX_PAGE_BYTES: String(PAGE_BYTES),
      CHRONICLE_MAX_RESPONSE_BYTES: String(RESPONSE_BYTES),
      CHRONICLE_MAX_SUBSCRIPTIONS: "2",
    })
    owner = randomUUID()
    me = clientFor(t.server.url, await t.authority.hs256Token({ sub: owner }))
    const session = await me.sessions.create.mutate({ title: "big", metadata: { pad: big(0) } })
    sessionId = session.id
    await me.messages.appendMany.mutate({
      sessionId,
      messages: Array.from({ length: COUNT }, (_, i) => ({ role: "user" as const, content: big(i) })),
    })
    for (let i = 0; i < COUNT; i++) {
      await me.revisions.add.mutate({ sessionId, ir: { text: big(i) } })
      await me.drafts.add.mutate({ sessionId, code: big(i), language: "ts", valid: true })
      await me.holes.resolve.mutate({ sessionId, holeId: `h${i}`, value: big(i), confidence: 0.5 })
      await me.toolRuns.record.mutate({
        sessionId,
        tool: "t",
        input: {},
        output: big(i),
        status: "succeeded",
      })
      await me.checkpoints.create.mutate({ sessionId, label: big(i).slice(0, 190) })
      await me.sandboxes.register.mutate({
        sessionId,
        provider: "p",
        externalId: `e${i}`,
        metadata: { pad: big(i) },
      })
    }
    for (let i = 1; i < COUNT; i++)
      await me.sessions.create.mutate({ title: `s${i}`, metadata: { pad: big(i) } })
    const job = await me.jobs.create.mutate({ type: "work", sessionId, input: { pad: big(0) } })
    for (let i = 1; i < COUNT; i++) await me.jobs.create.mutate({ type: "work", input: { pad: big(i) } })
    for (let i = 0; i < COUNT; i++) {
      await me.jobs.addTask.mutate({ id: job.id, name: `task ${i}`, input: { pad: big(i) } })
      const file = await me.files.put.mutate({
        name: `f${i}.txt`,
        mimeType: "text/plain",
        contentBase64: base64(big(i)),
      })
      await me.files.attach.mutate({ sessionId, fileId: file.id })
      await me.artifacts.record.mutate({ jobId: job.id, fileId: file.id, kind: "output" })
      await me.graphs.putCheckpoint.mutate({
        threadId: "thread",
        checkpointNs: "",
        checkpointId: `cp-${String(i).padStart(3, "0")}`,
        parentCheckpointId: null,
        checkpoint: { type: "json", data: base64(big(i)) },
        metadata: {},
        channelVersions: {},
        blobs: [],
      })
    }
  })
  afterAll(() => t?.close())

  it("ends the page of every list early, with a cursor, once its byte budget is reached; paging on returns every item once, in order", async () => {
    const session = { sessionId }
    const job = (await me.jobs.list.query({ sessionId })).items[0]!
    const lists: ReadonlyArray<[string, (cursor: string | undefined) => Promise<Page<unknown>>, number]> = [
      ["messages.list", (cursor) => me.messages.list.query({ ...session, cursor, limit: 500 }), COUNT],
      [
        "messages.list desc",
        (cursor) => me.messages.list.query({ ...session, cursor, limit: 500, order: "desc" }),
        COUNT,
      ],
      ["revisions.list", (cursor) => me.revisions.list.query({ ...session, cursor, limit: 500 }), COUNT],
      ["drafts.list", (cursor) => me.drafts.list.query({ ...session, cursor, limit: 500 }), COUNT],
      ["holes.list", (cursor) => me.holes.list.query({ ...session, cursor, limit: 500 }), COUNT],
      ["toolRuns.list", (cursor) => me.toolRuns.list.query({ ...session, cursor, limit: 500 }), COUNT],
      ["checkpoints.list", (cursor) => me.checkpoints.list.query({ ...session, cursor, limit: 500 }), COUNT],
      ["sandboxes.list", (cursor) => me.sandboxes.list.query({ ...session, cursor, limit: 500 }), COUNT],
      [
        "files.listAttached",
        (cursor) => me.files.listAttached.query({ ...session, cursor, limit: 500 }),
        COUNT,
      ],
      ["files.list", (cursor) => me.files.list.query({ cursor, limit: 500 }), COUNT],
      ["sessions.list", (cursor) => me.sessions.list.query({ cursor, limit: 500 }), COUNT],
      ["jobs.list", (cursor) => me.jobs.list.query({ cursor, limit: 500 }), COUNT],
      ["jobs.listTasks", (cursor) => me.jobs.listTasks.query({ id: job.id, cursor, limit: 500 }), COUNT],
      ["artifacts.list", (cursor) => me.artifacts.list.query({ jobId: job.id, cursor, limit: 500 }), COUNT],
      ["graphs.list", (cursor) => me.graphs.list.query({ cursor, limit: 500 }), COUNT],
      [
        "sessions.timeline",
        (cursor) => me.sessions.timeline.query({ id: sessionId, cursor, limit: 500 }),
        -1,
      ],
      [
        "events.readStream",
        (cursor) => me.events.readStream.query({ streamId: `session-${sessionId}`, cursor, limit: 500 }),
        -1,
      ],
      [
        "events.readAll",
        async (cursor) => {
          const page = await me.events.readAll.query({ after: cursor, limit: 500 })
          return { items: page.items, nextCursor: page.nextCursor }
        },
        -1,
      ],
      ["analytics.recentActivity", (cursor) => me.analytics.recentActivity.query({ cursor, limit: 500 }), -1],
      [
        "analytics.sessionSummary",
        (cursor) => me.analytics.sessionSummary.query({ cursor, limit: 500 }),
        COUNT,
      ],
    ]
    const figures: Record<string, number> = {}
    for (const [what, list, expected] of lists) {
      const { items, pages } = await pagedWithinBudget(what, list)
      figures[what] = pages
      if (expected >= 0) expect(items.length, what).toBe(expected)
      // Every item once: no page repeats or skips one.
      const keys = items.map((item) => JSON.stringify(item))
      expect(new Set(keys).size, what).toBe(keys.length)
      // The whole list takes more than a page: the budget, not the 500-item limit, ended the pages.
      const total = items.reduce<number>((sum, item) => sum + jsonBytes(item) + 1, 0)
      if (total > PAGE_BYTES) expect(pages, what).toBeGreaterThan(1)
    }
    // Order is kept across the budget's page breaks.
    const messages = (await allPages((cursor) => me.messages.list.query({ sessionId, cursor, limit: 500 })))
      .items
    expect(messages.map((m) => m.content)).toEqual(Array.from({ length: COUNT }, (_, i) => big(i)))
    const newestFirst = (
      await allPages((cursor) => me.messages.list.query({ sessionId, cursor, limit: 500, order: "desc" }))
    ).items
    expect(newestFirst.map((m) => m.content)).toEqual(messages.map((m) => m.content).reverse())
    const stream = (
      await allPages((cursor) =>
        me.events.readStream.query({ streamId: `session-${sessionId}`, cursor, limit: 500 }),
      )
    ).items
    expect(stream.map((e) => e.version)).toEqual(stream.map((_, i) => i + 1))
    console.log(`[budgets] pages of ${PAGE_BYTES} bytes: ${JSON.stringify(figures)}`)
  })

  it("exports a session in pages pinned to the version the first page saw", async () => {
    const first = await me.sessions.export.query({ id: sessionId, limit: 500 })
    const pinned = first.session.version
    expect(first.nextCursor).not.toBeNull()
    // Appended after the export began: not part of it.
    await me.messages.append.mutate({ sessionId, role: "user", content: "later" })
    const events = [...first.events]
    let cursor = first.nextCursor
    while (cursor !== null) {
      const page = await me.sessions.export.query({ id: sessionId, cursor, limit: 500 })
      expect(page.session.version).toBe(pinned)
      expect(jsonBytes(page.events)).toBeLessThanOrEqual(PAGE_BYTES + BIG * 3)
      events.push(...page.events)
      cursor = page.nextCursor
    }
    expect(events.map((e) => e.version)).toEqual(Array.from({ length: pinned }, (_, i) => i + 1))
  })

  it("shares one response budget between the calls of a batch: a call that no longer fits is refused on its own", async () => {
    const file = await me.files.put.mutate({
      name: "blob.bin",
      mimeType: "text/plain",
      contentBase64: base64("y".repeat(SMALL_LIMITS.maxFileBytes)),
    })
    const calls = 20
    const input = Object.fromEntries(
      Array.from({ length: calls }, (_, i) => [String(i), { id: file.id, includeContent: true }]),
    )
    const token = await t.authority.hs256Token({ sub: owner })
    const res = await fetch(
      `${t.server.url}/trpc/${Array.from({ length: calls }, () => "files.get").join(",")}?batch=1&input=${encodeURIComponent(JSON.stringify(input))}`,
      { headers: { authorization: `Bearer ${token}` } },
    )
    const text = await res.text()
    expect(res.status).toBe(207)
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(RESPONSE_BYTES + 4096)
    const answers = JSON.parse(text) as ReadonlyArray<{
      result?: { data: { contentBase64: string } }
      error?: { message: string; data: { code: string; tag: string; httpStatus: number } }
    }>
    const answered = answers.filter((a) => a.result !== undefined)
    const refused = answers.filter((a) => a.error !== undefined)
    // The first calls got the file, in full; once the budget was spent the rest were refused.
    expect(answered.length).toBeGreaterThan(0)
    expect(refused.length).toBeGreaterThan(0)
    expect(answers.findIndex((a) => a.error !== undefined)).toBe(answered.length)
    for (const a of answered)
      expect(a.result!.data.contentBase64.length).toBeGreaterThan(SMALL_LIMITS.maxFileBytes)
    for (const a of refused) {
      expect(a.error!.data).toMatchObject({
        code: "PAYLOAD_TOO_LARGE",
        httpStatus: 413,
        tag: "ResponseTooLarge",
      })
      expect(a.error!.message).toMatch(
        new RegExp(`does not fit in what is left of the response budget of ${RESPONSE_BYTES} bytes`),
      )
    }
    // Alone, each call is answered.
    expect((await me.files.get.query({ id: file.id, includeContent: true })).size).toBe(
      SMALL_LIMITS.maxFileBytes,
    )
  })

  it("refuses a user's subscriptions beyond the limit with 429, and takes new ones once one closes; the service role is not limited", async () => {
    const token = await t.authority.hs256Token({ sub: randomUUID() })
    const open = (authorization: string) => {
      const controller = new AbortController()
      const first = (async () => {
        const res = await fetch(`${t.server.url}/trpc/events.subscribe?input=${encodeURIComponent("{}")}`, {
          headers: { authorization, accept: "text/event-stream" },
          signal: controller.signal,
        })
        const reader = res.body!.getReader()
        let text = ""
        while (!text.includes("\n\n")) {
          const { value, done } = await reader.read()
          if (done) break
          text += new TextDecoder().decode(value)
        }
        const error = /^event: serialized-error\ndata: (.*)$/m.exec(text)
        return error
          ? (JSON.parse(error[1]!) as { message: string; data: { code: string } })
          : { message: "", data: { code: "OK" } }
      })()
      return { first, close: () => controller.abort() }
    }
    const user = `Bearer ${token}`
    const a = open(user)
    const b = open(user)
    expect((await a.first).data.code).toBe("OK")
    expect((await b.first).data.code).toBe("OK")
    const c = open(user)
    expect(await c.first).toMatchObject({
      data: { code: "TOO_MANY_REQUESTS" },
      message: "You already have 2 subscriptions open, the most one caller may hold: close one, then retry",
    })
    c.close()
    // The service role holds as many as it needs.
    const service = Array.from({ length: 3 }, () => open(`Bearer ${t.authority.serviceKey}`))
    for (const s of service) expect((await s.first).data.code).toBe("OK")
    for (const s of service) s.close()
    // Closing one frees its place (the server sees the close a moment later).
    a.close()
    let code = ""
    for (let i = 0; i < 50 && code !== "OK"; i++) {
      const d = open(user)
      code = (await d.first).data.code
      d.close()
      if (code !== "OK") await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(code).toBe("OK")
    b.close()
  })
})

describe.runIf(env.postgresUrl !== null)("limits per user and between limits, on postgres", () => {
  const database = testDatabases(env).find((d) => d.name === "postgres")!
  let t: TestServer

  beforeAll(async () => {
    t = await startTestServer(database, { CHRONICLE_MAX_CONCURRENT_QUERIES: "1" })
  })
  afterAll(() => t?.close())

  it("refuses a user's query with 429 while their limit of running queries is reached; others and the service role go on", async () => {
    const alice = randomUUID()
    const asAlice = clientFor(t.server.url, await t.authority.hs256Token({ sub: alice }))
    const asBob = clientFor(t.server.url, await t.authority.hs256Token({ sub: randomUUID() }))
    const asService = clientFor(t.server.url, t.authority.serviceKey)
    await asAlice.sessions.create.mutate({ title: "a" })
    // A transaction holding the sessions table keeps Alice's first query running.
    const db = <A>(effect: (db: DatabaseService) => Effect.Effect<A, unknown>) =>
      t.server.runtime.runPromise(Effect.flatMap(Database, effect).pipe(Effect.orDie))
    let release!: () => void
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    const locking = db((d) =>
      d.transaction(
        Effect.andThen(
          d.query("lock table chronicle.sessions in access exclusive mode"),
          Effect.promise(() => held),
        ),
      ),
    )
    try {
      // Polls pg_locks on the sessions table: a hang guard, not a timing (on a loaded machine a
      // query may take seconds to arrive).
      const waitForSessionsLocks = async (filter: string, n: number, never: string) => {
        for (let i = 0; i < 2_400; i++) {
          const rows = await db((d) =>
            d.query<{ n: number }>(
              `select count(*)::int as n from pg_locks where relation = 'chronicle.sessions'::regclass and ${filter}`,
            ),
          )
          if ((rows[0]?.n ?? 0) >= n) return
          await new Promise((resolve) => setTimeout(resolve, 25))
        }
        throw new Error(never)
      }
      const waitForLockWaiters = (n: number) =>
        waitForSessionsLocks("not granted", n, "the query never waited for the lock")
      // The lock is taken on another connection: Alice's query must not start before it is held,
      // or it runs to the end and never waits.
      await waitForSessionsLocks("granted and mode = 'AccessExclusiveLock'", 1, "the lock was never taken")
      const first = asAlice.sessions.list.query({})
      await waitForLockWaiters(1)
      const second = await failure(asAlice.sessions.list.query({}))
      expect(second.data).toMatchObject({
        code: "TOO_MANY_REQUESTS",
        httpStatus: 429,
        tag: "TooManyRequests",
      })
      expect(second.message).toBe(
        "You already have 1 queries running, the most one caller may run at once: wait for one to finish (or batch your calls), then retry",
      )
      // Bob and the service role are not held up by Alice's limit (they wait for the lock, as Alice does).
      const bob = asBob.sessions.list.query({})
      const service = asService.sessions.list.query({})
      await waitForLockWaiters(3)
      release()
      await locking
      expect((await first).items.length).toBe(1)
      await bob
      await service
      // Her query done, Alice may query again.
      expect((await asAlice.sessions.list.query({})).items.length).toBe(1)
    } finally {
      release()
    }
  })

  it("accepts a message at the message limit, and text that escapes sixfold in its event", async () => {
    const asUser = clientFor(t.server.url, await t.authority.hs256Token({ sub: randomUUID() }))
    const { id } = await asUser.sessions.create.mutate({})
    const limit = 16 * 1024 * 1024
    // Large text goes to the blob store, so however it escapes the event stays small; only the
    // request body (32 MiB) bounds how escaped text may arrive.
    for (const content of ["x".repeat(limit), "é".repeat(limit / 2), "\u0001".repeat(limit / 8)]) {
      const message = await asUser.messages.append.mutate({ sessionId: id, role: "user", content })
      expect(message.content.length).toBe(content.length)
    }
    const over = await failure(
      asUser.messages.append.mutate({ sessionId: id, role: "user", content: "x".repeat(limit + 1) }),
    )
    expect(over.data).toMatchObject({ code: "PAYLOAD_TOO_LARGE", tag: "PayloadTooLarge" })
    expect(over.message).toBe(
      `content (message content) is ${limit + 1} bytes, over the limit of ${limit} bytes`,
    )
  })
})
