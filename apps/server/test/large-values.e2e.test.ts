/**
 * Large values over HTTP with the real client, on both databases: a 10 MB tool output and a
 * message carrying a 5 MB attachment are recorded once in the content-addressed blob table,
 * the event keeping a reference (digest, size, media type); every reader gets the content
 * back (messages.list, toolRuns.list, events.readStream, events.readAll, sessions.timeline,
 * sessions.export), or, with `largeContent: "omit"`, the reference with its size instead; a
 * rebuild after large writes reads the same as the inline read models; `chronicle export` carries
 * the referenced bytes and `chronicle import` brings them into another database.
 */
import { randomUUID } from "node:crypto"
import { PassThrough, Readable } from "node:stream"
import type { ChronicleClient } from "@chronicle/client"
import { Database } from "@chronicle/store"
import type {} from "@chronicle/store/vitest-global-setup"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { exportLog, importEvents } from "../src/transfer.ts"
import {
  allPages,
  callers,
  clientFor,
  refusal,
  runEnded,
  startTestServer,
  type TestServer,
  testDatabases,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const MB = 1000 * 1000

/** Text of `bytes` bytes that does not compress to nothing and escapes in JSON here and there. */
const text = (bytes: number, seed: string) => {
  const unit = `${seed} line "quoted" \\ tab\there ünïcødé ${randomUUID()}\n`
  return unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit))).slice(0, bytes)
}

/** The whole log as `chronicle export` writes it. */
const exported = async (server: TestServer) => {
  const out = new PassThrough()
  const chunks: Array<Buffer> = []
  out.on("data", (chunk: Buffer) => chunks.push(chunk))
  await server.server.runtime.runPromise(exportLog(out))
  out.end()
  return Buffer.concat(chunks).toString("utf8")
}

const imported = (server: TestServer, text: string) =>
  server.server.runtime.runPromise(importEvents(Readable.from([text]), () => {}))

describe.each(testDatabases(env))("large values, on $name", (database) => {
  let t: TestServer
  let me: ChronicleClient
  let service: ChronicleClient
  const query = (text: string, params: ReadonlyArray<unknown> = []) =>
    t.server.runtime.runPromise(Effect.flatMap(Database, (db) => db.query(text, params)).pipe(Effect.orDie))

  beforeAll(async () => {
    t = await startTestServer(database)
    const c = await callers(t)
    me = c.asAlice
    service = c.asService
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  it("round-trips a 10 MB tool output through the blob store, the event holding a reference", async () => {
    const session = await me.sessions.create.mutate({ title: "large tool output" })
    const output = text(10 * MB, "output")
    const input = { query: text(200 * 1000, "input") }

    await me.toolRuns.record.mutate({
      sessionId: session.id,
      tool: "t",
      input: {},
      output: "ok",
      status: "succeeded",
    })
    const run = await me.toolRuns.record.mutate({
      sessionId: session.id,
      tool: "fetch",
      input,
      output,
      status: "succeeded",
    })
    expect(run.output).toBe(output)
    expect(run.input).toEqual(input)

    // The page's byte budget counts the values read back: the large run comes on a page of its own.
    const listed = await allPages((cursor) => me.toolRuns.list.query({ sessionId: session.id, cursor }))
    expect(listed.pages).toBe(2)
    expect(listed.items.map((r) => r.output)).toEqual(["ok", output])
    expect(listed.items[1]!.input).toEqual(input)
    expect(listed.items[1]!.large).toEqual({
      input: {
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        size: expect.any(Number),
        mediaType: "application/json",
      },
      output: {
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        size: Buffer.byteLength(JSON.stringify(output)),
        mediaType: "application/json",
      },
    })
    expect(listed.items[0]!.large).toBeUndefined()

    // Left out on request: the values are null, the references say what and how large.
    const omitted = await me.toolRuns.list.query({ sessionId: session.id, largeContent: "omit" })
    expect(omitted.nextCursor).toBeNull()
    expect(omitted.items[1]).toMatchObject({ input: null, output: null, large: listed.items[1]!.large })
    expect(omitted.items[0]!.output).toBe("ok")

    // The event is small; the bytes are in the blob table once.
    const [row] = await query(
      `select octet_length(e.data::text) + octet_length(e.metadata::text) as bytes
         from chronicle.events e where e.stream_id = $1 and e.type = 'ToolRunRecorded' order by e.stream_version desc limit 1`,
      [`session-${session.id}`],
    )
    expect(Number(row!.bytes)).toBeLessThan(4096)
    const [blob] = await query("select size from chronicle.blobs where sha256 = $1", [
      listed.items[1]!.large!.output!.sha256,
    ])
    expect(Number(blob!.size)).toBe(Buffer.byteLength(JSON.stringify(output)))
  }, 120_000)

  it("measures a 10 MB tool output against a small one in the same run (printed, not asserted)", async () => {
    const session = await me.sessions.create.mutate({ title: "measured" })
    const timed = async <A>(work: () => Promise<A>) => {
      const start = performance.now()
      const result = await work()
      return { ms: performance.now() - start, result }
    }
    const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    /** The cursor of the page just before a run (pages of one, values left out). */
    const cursorBefore = async (id: string) => {
      let cursor: string | undefined
      for (;;) {
        const next = await me.toolRuns.list.query({
          sessionId: session.id,
          limit: 1,
          cursor,
          largeContent: "omit",
        })
        if (next.items[0]?.id === id) return cursor
        if (next.nextCursor === null) throw new Error(`run ${id} not found`)
        cursor = next.nextCursor
      }
    }
    const writes = { small: [] as Array<number>, large: [] as Array<number> }
    const reads = { small: [] as Array<number>, large: [] as Array<number> }
    for (let round = 0; round < 3; round++) {
      const small = await timed(() =>
        me.toolRuns.record.mutate({
          sessionId: session.id,
          tool: "t",
          input: {},
          output: "ok",
          status: "succeeded",
        }),
      )
      writes.small.push(small.ms)
      const output = text(10 * MB, `round ${round}`)
      const large = await timed(() =>
        me.toolRuns.record.mutate({
          sessionId: session.id,
          tool: "t",
          input: {},
          output,
          status: "succeeded",
        }),
      )
      writes.large.push(large.ms)
      // Each run read alone, on a page of one: the same request but for the run's size.
      const smallRead = await timed(async () =>
        me.toolRuns.list.query({
          sessionId: session.id,
          limit: 1,
          cursor: await cursorBefore(small.result.id),
        }),
      )
      reads.small.push(smallRead.ms)
      const cursor = await cursorBefore(large.result.id)
      const largeRead = await timed(() => me.toolRuns.list.query({ sessionId: session.id, limit: 1, cursor }))
      expect(largeRead.result.items[0]?.output).toBe(output)
      reads.large.push(largeRead.ms)
    }
    const [events] = await query(
      `select max(octet_length(e.data::text) + octet_length(e.metadata::text))::bigint as bytes, count(*)::int as n
         from chronicle.events e where e.stream_id = $1 and e.type = 'ToolRunRecorded'`,
      [`session-${session.id}`],
    )
    const [blobs] = await query(
      "select sum(b.size)::bigint as bytes from chronicle.blobs b where b.sha256 = any($1::text[])",
      [
        (
          await allPages((cursor) =>
            me.toolRuns.list.query({ sessionId: session.id, largeContent: "omit", cursor }),
          )
        ).items.flatMap((r) => (r.large?.output === undefined ? [] : [r.large.output.sha256])),
      ],
    )
    expect(Number(events!.n)).toBe(6)
    expect(Number(blobs!.bytes)).toBeGreaterThan(30 * MB)
    const ratio = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => (median(a) / median(b)).toFixed(0)
    console.log(
      `[large-values ${database.name}] 3 × 10 MB tool outputs: ${Number(events!.bytes)} bytes (data and metadata) in the events table for each one's event, ${Number(blobs!.bytes) / 3} bytes per blob in the blob table; ` +
        `record: median ${median(writes.large).toFixed(0)} ms vs ${median(writes.small).toFixed(1)} ms for a small one (${ratio(writes.large, writes.small)}×); ` +
        `read back (a page of one): median ${median(reads.large).toFixed(0)} ms vs ${median(reads.small).toFixed(1)} ms for a page of a small one (${ratio(reads.large, reads.small)}×)`,
    )
  }, 180_000)

  it("round-trips a message with a 5 MB attachment in its metadata and 2 MB of text", async () => {
    const session = await me.sessions.create.mutate({ title: "large message" })
    const attachment = Buffer.from(text(5 * MB, "image")).toString("base64")
    const content = text(2 * MB, "content")
    const metadata = {
      uiMessage: {
        parts: [{ type: "file", mediaType: "image/png", url: `data:image/png;base64,${attachment}` }],
      },
    }
    const appended = await me.messages.append.mutate({
      sessionId: session.id,
      role: "user",
      content,
      metadata,
    })
    expect(appended.content).toBe(content)
    expect(appended.metadata).toEqual(metadata)
    await me.messages.append.mutate({
      sessionId: session.id,
      role: "assistant",
      content: "small",
      metadata: { a: 1 },
    })

    const listed = await allPages((cursor) => me.messages.list.query({ sessionId: session.id, cursor }))
    expect(listed.items.map((m) => m.content)).toEqual([content, "small"])
    expect(listed.items[0]!.metadata).toEqual(metadata)
    expect(listed.items[0]!.large).toEqual({
      content: {
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        size: Buffer.byteLength(content),
        mediaType: "text/plain; charset=utf-8",
      },
      metadata: {
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        size: Buffer.byteLength(JSON.stringify(metadata)),
        mediaType: "application/json",
      },
    })
    const desc = await allPages((cursor) =>
      me.messages.list.query({ sessionId: session.id, order: "desc", cursor }),
    )
    expect(desc.items.map((m) => m.content)).toEqual(["small", content])

    const omitted = await me.messages.list.query({ sessionId: session.id, largeContent: "omit" })
    expect(omitted.nextCursor).toBeNull()
    expect(omitted.items[0]).toMatchObject({ content: "", metadata: {}, large: listed.items[0]!.large })
    expect(omitted.items[1]).toMatchObject({ content: "small", metadata: { a: 1 } })

    // The log's readers get the values back, or the references when asked to leave them out.
    const stream = await allPages((cursor) =>
      me.events.readStream.query({ streamId: `session-${session.id}`, cursor }),
    )
    const event = stream.items.find((e) => e.type === "MessageAppended")!
    expect(event.data).toMatchObject({ content, metadata })
    const streamOmitted = await me.events.readStream.query({
      streamId: `session-${session.id}`,
      largeContent: "omit",
    })
    const small = streamOmitted.items.find((e) => e.type === "MessageAppended")!
    expect(small.data).toMatchObject({
      content: "",
      metadata: { "$chronicle.large": listed.items[0]!.large },
    })
    const all = await allPages(async (cursor) => {
      const page = await me.events.readAll.query({ types: ["MessageAppended"], limit: 500, after: cursor })
      return { items: page.items, nextCursor: page.nextCursor }
    })
    expect(all.items.find((e) => e.eventId === event.eventId)?.data).toMatchObject({ content, metadata })
    const archive = await allPages(async (cursor) => {
      const page = await me.sessions.export.query({ id: session.id, cursor })
      return { items: page.events, nextCursor: page.nextCursor }
    })
    expect(archive.items.find((e) => e.eventId === event.eventId)?.data).toMatchObject({ content, metadata })
    const timeline = await me.sessions.timeline.query({ id: session.id })
    expect(timeline.items.find((e) => e.eventId === event.eventId)?.data).toMatchObject({ content })

    // Half as many rows: one message, stored once.
    const [row] = await query(
      `select octet_length(e.data::text) as bytes from chronicle.events e
        where e.stream_id = $1 and e.type = 'MessageAppended' order by e.stream_version limit 1`,
      [`session-${session.id}`],
    )
    expect(Number(row!.bytes)).toBeLessThan(4096)
  }, 120_000)

  it("delivers large values to a live subscriber, or their references when it asks to leave them out", async () => {
    const session = await me.sessions.create.mutate({ title: "live" })
    const content = text(300 * 1000, "live")
    const gather = (largeContent: "include" | "omit") => {
      const received: Array<{ type: string; data: unknown }> = []
      let done!: () => void
      let failed!: (error: unknown) => void
      const arrived = new Promise<void>((resolve, reject) => {
        done = resolve
        failed = reject
      })
      const subscription = me.events.subscribe.subscribe(
        { sessionId: session.id, types: ["MessageAppended"], largeContent },
        {
          onData: (event) => {
            received.push(event.data)
            done()
          },
          onError: (error) => failed(error),
        },
      )
      return { received, arrived, stop: () => subscription.unsubscribe() }
    }
    const included = gather("include")
    const omitted = gather("omit")
    try {
      await me.messages.append.mutate({ sessionId: session.id, role: "user", content })
      await Promise.all([included.arrived, omitted.arrived])
      expect(included.received[0]!.data).toMatchObject({ content })
      expect(omitted.received[0]!.data).toMatchObject({
        content: "",
        metadata: { "$chronicle.large": { content: { size: Buffer.byteLength(content) } } },
      })
    } finally {
      included.stop()
      omitted.stop()
    }
  }, 60_000)

  it("refuses metadata or a tool value that claims to be a reference, naming the field", async () => {
    const session = await me.sessions.create.mutate({ title: "refused" })
    await refusal(
      me.messages.append.mutate({
        sessionId: session.id,
        role: "user",
        content: "x",
        metadata: {
          "$chronicle.large": { content: { sha256: "0".repeat(64), size: 1, mediaType: "text/plain" } },
        },
      }),
      { code: "BAD_REQUEST", message: /metadata\.\$chronicle\.large: is reserved/ },
    )
    await refusal(
      me.toolRuns.record.mutate({
        sessionId: session.id,
        tool: "t",
        input: {},
        output: { "$chronicle.large": { sha256: "0".repeat(64), size: 1, mediaType: "application/json" } },
        status: "succeeded",
      }),
      { code: "BAD_REQUEST", message: /^output\.\$chronicle\.large: is reserved/ },
    )
    // Nothing was recorded.
    expect((await me.sessions.get.query({ id: session.id })).counts).toMatchObject({
      messages: 0,
      toolRuns: 0,
    })
  })

  it("rebuilds the read models after large writes to the same reads; forks, rollbacks and as-of reads keep them", async () => {
    const session = await me.sessions.create.mutate({ title: "rebuild" })
    const content = text(300 * 1000, "rebuild")
    await me.messages.append.mutate({ sessionId: session.id, role: "user", content })
    await me.toolRuns.record.mutate({
      sessionId: session.id,
      tool: "t",
      input: { big: content },
      output: { big: content },
      status: "succeeded",
    })
    const messages = await allPages((cursor) => me.messages.list.query({ sessionId: session.id, cursor }))
    const runs = await allPages((cursor) => me.toolRuns.list.query({ sessionId: session.id, cursor }))
    const { runId } = await service.projections.rebuild.mutate()
    const run = await runEnded(service, runId)
    expect(run.state).toBe("completed")
    expect(await allPages((cursor) => me.messages.list.query({ sessionId: session.id, cursor }))).toEqual(
      messages,
    )
    expect(await allPages((cursor) => me.toolRuns.list.query({ sessionId: session.id, cursor }))).toEqual(
      runs,
    )
    expect(messages.items[0]!.content).toBe(content)
    expect(messages.items[0]!.large?.content?.size).toBe(Buffer.byteLength(content))
    expect(runs.items[0]!.output).toEqual({ big: content })
    expect(runs.items[0]!.large?.output).toBeDefined()

    // Forks, rollbacks and as-of reads work on the references too.
    const { version } = await me.sessions.get.query({ id: session.id })
    await me.messages.append.mutate({ sessionId: session.id, role: "assistant", content: "after" })
    const child = await me.sessions.fork.mutate({ id: session.id, atVersion: version })
    expect((await me.messages.list.query({ sessionId: child.id })).items.map((m) => m.content)).toEqual([
      content,
    ])
    await me.sessions.rollback.mutate({ id: session.id, toVersion: version })
    expect((await me.messages.list.query({ sessionId: session.id })).items.map((m) => m.content)).toEqual([
      content,
    ])
    const asOf = await me.messages.list.query({ sessionId: session.id, asOf: { version: version + 1 } })
    expect(asOf.items.map((m) => m.content)).toEqual([content, "after"])
  }, 120_000)

  it("exports the referenced bytes and imports them into another database, which reads the same", async () => {
    const owner = randomUUID()
    const mine = (await callers(t)).asServiceFor(owner)
    const session = await mine.sessions.create.mutate({ title: "moved" })
    const content = text(400 * 1000, "moved")
    await mine.messages.append.mutate({
      sessionId: session.id,
      role: "user",
      content,
      metadata: { m: content },
    })
    await mine.toolRuns.record.mutate({
      sessionId: session.id,
      tool: "t",
      input: content,
      output: { out: content },
      status: "succeeded",
    })
    const log = await exported(t)
    const messages = await allPages((cursor) => mine.messages.list.query({ sessionId: session.id, cursor }))
    const runs = await allPages((cursor) => mine.toolRuns.list.query({ sessionId: session.id, cursor }))

    // Without the blob lines, the events refer to bytes the other database does not have.
    const other = await startTestServer(database)
    try {
      const withoutBlobs = log
        .split("\n")
        .filter((line) => !line.startsWith('{"blob":'))
        .join("\n")
      await expect(imported(other, withoutBlobs)).rejects.toThrow(
        /refers to a large value \(sha256 [0-9a-f]{64}, \d+ bytes\) whose bytes are neither in the input before it nor in the database/,
      )
    } finally {
      await other.close()
    }

    const copy = await startTestServer(database)
    try {
      await imported(copy, log)
      const there = clientFor(copy.server.url, copy.authority.serviceKey, owner)
      expect(
        await allPages((cursor) => there.messages.list.query({ sessionId: session.id, cursor })),
      ).toEqual(messages)
      expect(
        await allPages((cursor) => there.toolRuns.list.query({ sessionId: session.id, cursor })),
      ).toEqual(runs)
      expect(messages.items[0]!.content).toBe(content)
      expect(messages.items[0]!.large?.metadata).toBeDefined()
      expect(await exported(copy)).toBe(log)
    } finally {
      await copy.close()
    }
  }, 180_000)
})
