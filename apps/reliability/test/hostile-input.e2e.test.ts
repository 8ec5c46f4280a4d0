/**
 * Property-based fuzzing of every procedure of the real router over HTTP: wrong types, huge
 * strings, deep JSON, unicode edge cases, NUL bytes, SQL fragments in every string field,
 * oversized batches, malformed bodies. Every answer must be a success or a 4xx with a clear
 * message — never a 500, never a crash — and a refused call must leave the database as it was.
 */
import { randomUUID } from "node:crypto"
import { appRouter } from "@chronicle/api"
import {
  clientFor,
  SMALL_LIMITS,
  smallLimitsEnv,
  sql,
  startTestServer,
  type TestServer,
  testDatabases,
} from "@chronicle/server/testing"
import { Database } from "@chronicle/store"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { report, scale } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

type Kind = "query" | "mutation" | "subscription"

/** Every procedure of the router, read off its definition: a new one is fuzzed without a change here. */
const procedures: ReadonlyArray<{ readonly path: string; readonly kind: Kind }> = Object.entries(
  (appRouter as unknown as { _def: { procedures: Record<string, { _def: { type: Kind } }> } })._def
    .procedures,
)
  .map(([path, procedure]) => ({ path, kind: procedure._def.type }))
  .sort((a, b) => a.path.localeCompare(b.path))

/** Field names the API's inputs use, so fuzzed objects reach past "unknown field" checks. */
const FIELDS = [
  "id",
  "sessionId",
  "jobId",
  "fileId",
  "taskId",
  "checkpointId",
  "parentId",
  "parentJobId",
  "streamId",
  "externalKey",
  "externalId",
  "title",
  "metadata",
  "role",
  "content",
  "messages",
  "ir",
  "code",
  "language",
  "valid",
  "holeId",
  "value",
  "confidence",
  "tool",
  "input",
  "output",
  "status",
  "progress",
  "error",
  "type",
  "types",
  "kind",
  "provider",
  "name",
  "mimeType",
  "contentBase64",
  "includeContent",
  "toVersion",
  "atVersion",
  "fromVersion",
  "asOf",
  "version",
  "label",
  "cursor",
  "after",
  "limit",
  "expectedVersion",
  "idempotencyKey",
  "lastEventId",
  "projections",
  "runId",
  "from",
  "to",
  "timestamp",
]

const SQL_FRAGMENTS = [
  "'; drop table chronicle.events; --",
  '" or 1=1 --',
  "1; truncate chronicle.streams",
  "$$; delete from chronicle.sessions; $$",
  "' union select * from pg_authid --",
  "\\x00'||pg_sleep(10)||'",
]

const UNICODE = [
  "\u0000",
  "a\u0000b",
  "\uD800",
  "\uDFFF",
  "\uFEFF",
  "\u202Eevil",
  "😀".repeat(50),
  "\u0301\u0301\u0301",
  "\uFFFF",
  "e\u0301",
]

const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.string({ unit: "binary", maxLength: 50 }),
  fc.constantFrom(...SQL_FRAGMENTS, ...UNICODE),
  fc.constantFrom(randomUUID(), "00000000-0000-0000-0000-000000000000", `session-${randomUUID()}`),
  // Past the message limit, but under the body limit: the field's own limit must answer.
  fc.constant("x".repeat(SMALL_LIMITS.maxMessageBytes + 1)),
  fc.constant("\u0000".repeat(1000)),
)

const deep = (depth: number, leaf: unknown): unknown => {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value } : [value]
  return value
}

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  fc.constantFrom(null, true, false, 0, -1, 1.5, 2 ** 53, -(2 ** 31), Number.MAX_SAFE_INTEGER, 1e308),
  fc.integer(),
  fc.double(),
  fc.constantFrom(deep(100, "x"), deep(600, 1), deep(3_000, null)),
  fc.array(hostileString, { maxLength: 5 }),
  fc.constant(Array.from({ length: 501 }, () => ({ role: "user", content: "x" }))),
  fc.jsonValue({ maxDepth: 4 }),
)

const hostileInput: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 1, arbitrary: hostileValue },
  { weight: 4, arbitrary: fc.dictionary(fc.constantFrom(...FIELDS), hostileValue, { maxKeys: 6 }) },
  {
    weight: 1,
    arbitrary: fc.dictionary(fc.oneof(fc.string(), fc.constantFrom(...UNICODE)), hostileValue, {
      maxKeys: 3,
    }),
  },
)

interface Outcome {
  readonly status: number
  readonly message: string
}

describe.each(testDatabases(env))("hostile input over HTTP, on $name", (database) => {
  let t: TestServer
  let token: string
  const tally = { inputs: 0, accepted: 0, refused: 0, status500: 0, crashes: 0 }
  const byStatus = new Map<number, number>()

  beforeAll(async () => {
    t = await startTestServer(database, smallLimitsEnv)
    token = await t.authority.es256Token({ sub: randomUUID() })
  })
  afterAll(async () => {
    report(`hostile input (${database.name})`, {
      procedures: procedures.length,
      ...tally,
      byStatus: Object.fromEntries(byStatus),
    })
    await t?.close()
  })

  /** The log's head and size and the rows of every table: what a refused call must not move. */
  const fingerprint = () =>
    t.server.runtime.runPromise(
      Effect.flatMap(Database, (db) =>
        db.query<{ f: string }>(
          `select jsonb_build_object(
             'events', (select count(*) from chronicle.events),
             'head', (select max(global_position) from chronicle.events),
             'streams', (select count(*) from chronicle.streams),
             'versions', (select sum(version) from chronicle.streams)
           )::text as f`,
        ),
      ).pipe(
        Effect.map((rows) => rows[0]!.f),
        Effect.orDie,
      ),
    )

  const record = (outcome: Outcome) => {
    tally.inputs++
    byStatus.set(outcome.status, (byStatus.get(outcome.status) ?? 0) + 1)
    if (outcome.status >= 500) tally.status500++
    else if (outcome.status >= 400) tally.refused++
    else tally.accepted++
  }

  const expectClear = (outcome: Outcome, fullWhat: string) => {
    const what = fullWhat.slice(0, 300)
    expect(outcome.status, `${what}: ${outcome.message}`).toBeLessThan(500)
    if (outcome.status >= 400) {
      expect(outcome.message.length, what).toBeGreaterThan(0)
      expect(outcome.message, what).not.toMatch(/Internal server error/)
    }
  }

  /** Raw HTTP, as any client could send it. */
  const call = async (
    path: string,
    kind: Kind,
    input: unknown,
    init: { body?: string; contentType?: string } = {},
  ): Promise<Outcome> => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` }
    let response: Response
    if (kind === "mutation") {
      response = await fetch(`${t.server.url}/trpc/${path}`, {
        method: "POST",
        headers: { ...headers, "content-type": init.contentType ?? "application/json" },
        body: init.body ?? JSON.stringify(input),
      })
    } else {
      const controller = new AbortController()
      const query = input === undefined ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`
      response = await fetch(`${t.server.url}/trpc/${path}${query}`, {
        headers: kind === "subscription" ? { ...headers, accept: "text/event-stream" } : headers,
        signal: controller.signal,
      })
      const isStream = (response.headers.get("content-type") ?? "").startsWith("text/event-stream")
      if (kind === "subscription" && isStream) {
        // An SSE stream answers 200 and reports a refused input as its first event.
        const reader = response.body!.getReader()
        let text = ""
        while (!/\n\n/.test(text)) {
          const { value, done } = await reader.read()
          if (done) break
          text += new TextDecoder().decode(value)
        }
        controller.abort()
        const errored = /^event: serialized-error\ndata: (.*)$/m.exec(text)
        if (errored) {
          const error = JSON.parse(errored[1]!) as { message?: string; data?: { httpStatus?: number } }
          return { status: error.data?.httpStatus ?? 500, message: error.message ?? "" }
        }
        return { status: response.status, message: "" }
      }
    }
    const text = await response.text()
    let message = ""
    try {
      const body = JSON.parse(text) as { error?: { message?: string } }
      message = body.error?.message ?? ""
    } catch {
      message = text
    }
    return { status: response.status, message }
  }

  it("answers every fuzzed input to every procedure with a success or a clear 4xx, and refusals change nothing", async () => {
    expect(procedures.length).toBeGreaterThan(50)
    const runs = scale(12, 60)
    for (const { path, kind } of procedures) {
      await fc.assert(
        fc.asyncProperty(hostileInput, async (input) => {
          const before = kind === "mutation" ? await fingerprint() : ""
          const outcome = await call(path, kind, input)
          record(outcome)
          expectClear(outcome, `${path} ${JSON.stringify(input)?.slice(0, 200)}`)
          if (kind === "mutation" && outcome.status >= 400) expect(await fingerprint()).toBe(before)
        }),
        { numRuns: runs },
      )
    }
    expect(tally.status500).toBe(0)
  })

  it("refuses malformed bodies, oversized batches and bodies with a clear 4xx", async () => {
    const session = await clientFor(t.server.url, token).sessions.create.mutate({})
    const before = await fingerprint()
    const cases: ReadonlyArray<[string, Kind, unknown, { body?: string; contentType?: string }?]> = [
      ["messages.append", "mutation", undefined, { body: "{not json" }],
      ["messages.append", "mutation", undefined, { body: "\u0000\u0001\u0002" }],
      ["messages.append", "mutation", undefined, { body: "" }],
      ["messages.append", "mutation", undefined, { body: "[]".repeat(10_000) }],
      ["messages.append", "mutation", undefined, { body: `${"[".repeat(100_000)}${"]".repeat(100_000)}` }],
      [
        "messages.append",
        "mutation",
        undefined,
        { body: "x=1", contentType: "application/x-www-form-urlencoded" },
      ],
      ["messages.append", "mutation", { sessionId: session.id, role: "user", content: "a\u0000b" }],
      ["messages.append", "mutation", { sessionId: session.id, role: "user", content: "\uD800" }],
      ["sessions.update", "mutation", { id: session.id, metadata: { "a\u0000": 1 } }],
      [
        "sessions.update",
        "mutation",
        undefined,
        { body: `{"id":"${session.id}","metadata":${'{"a":'.repeat(50_000)}1${"}".repeat(50_000)}}` },
      ],
      [
        "messages.appendMany",
        "mutation",
        {
          sessionId: session.id,
          messages: Array.from({ length: 501 }, () => ({ role: "user", content: "x" })),
        },
      ],
      [
        "messages.append",
        "mutation",
        { sessionId: session.id, role: "user", content: "x".repeat(SMALL_LIMITS.maxBodyBytes + 10) },
      ],
      [
        "files.put",
        "mutation",
        { name: "f", mimeType: "text/plain", contentBase64: "A".repeat(SMALL_LIMITS.maxFileBytes * 2) },
      ],
      ["files.put", "mutation", { name: "f", mimeType: "application/x-msdownload", contentBase64: "" }],
      ["sessions.list", "query", { limit: 10_000 }],
      ["events.readAll", "query", { after: "'; drop table chronicle.events; --" }],
      ["events.readStream", "query", { streamId: "session-1' or '1'='1" }],
    ]
    for (const [path, kind, input, init] of cases) {
      const outcome = await call(path, kind, input, init)
      record(outcome)
      expectClear(outcome, `${path} ${JSON.stringify(input)?.slice(0, 120) ?? init?.body?.slice(0, 40)}`)
      expect(outcome.status, path).toBeGreaterThanOrEqual(400)
    }
    // A query input nested past the limit, in the URL.
    const nested = await fetch(
      `${t.server.url}/trpc/sessions.list?input=${encodeURIComponent(`${"[".repeat(1_000)}${"]".repeat(1_000)}`)}`,
      { headers: { authorization: `Bearer ${token}` } },
    )
    const nestedBody = (await nested.json()) as { error: { message: string } }
    record({ status: nested.status, message: nestedBody.error.message })
    expect([nested.status, nestedBody.error.message]).toEqual([
      400,
      "input: The input nests deeper than 512 levels",
    ])
    // A batched request over the call limit.
    const batch = await fetch(
      `${t.server.url}/trpc/${Array.from({ length: 101 }, () => "sessions.list").join(",")}?batch=1&input=${encodeURIComponent("{}")}`,
      { headers: { authorization: `Bearer ${token}` } },
    )
    record({ status: batch.status, message: "" })
    expect(batch.status).toBeGreaterThanOrEqual(400)
    expect(batch.status).toBeLessThan(500)
    expect(await fingerprint()).toBe(before)
    // The server is still there and still answers.
    expect((await fetch(`${t.server.url}/healthz`)).status).toBe(200)
  })

  it("passes hostile strings through the client into stored data and back unchanged when they are valid", async () => {
    const client = clientFor(t.server.url, token)
    const session = await client.sessions.create.mutate({})
    const survivors: Array<string> = []
    for (const text of [...SQL_FRAGMENTS, "😀", "e\u0301", "\u202Eevil", "a\uFEFFb"]) {
      const result = await client.messages.append.mutate({
        sessionId: session.id,
        role: "user",
        content: text,
      })
      expect(result.content).toBe(text)
      survivors.push(text)
      tally.inputs++
      tally.accepted++
    }
    const listed = await client.messages.list.query({ sessionId: session.id })
    expect(listed.items.map((m) => m.content)).toEqual(survivors)
    // The SQL fragments were data: the log and the tables are intact.
    await sql(t.server, "select 1 from chronicle.events limit 1")
    expect((await client.sessions.get.query({ id: session.id })).counts.messages).toBe(survivors.length)
  })
})
