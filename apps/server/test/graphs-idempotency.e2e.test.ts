/**
 * `graphs.putCheckpoint` and `graphs.putWrites` are safe to repeat, through the real server
 * and client on both databases: an identical put records nothing and answers as the first;
 * an idempotency key names the request; puts racing each other are recorded once. The log is
 * read back with `events.readStream`.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { graphIdForThread, graphStreamId } from "@chronicle/domain"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { clientFor, refusal, startTestServer, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const value = (text: string) => ({ type: "json", data: Buffer.from(JSON.stringify(text)).toString("base64") })

const checkpoint = (threadId: string, checkpointId: string, step: number) => ({
  threadId,
  checkpointNs: "",
  checkpointId,
  parentCheckpointId: null,
  checkpoint: value(`checkpoint ${checkpointId} at step ${step}`),
  metadata: { source: "loop", step },
  channelVersions: { messages: `${step}.25`, topic: "1.5" },
  blobs: [
    { channel: "messages", version: `${step}.25`, value: value(`messages at step ${step}`) },
    { channel: "topic", version: "1.5", value: value("weather") },
  ],
})

const writes = (threadId: string, checkpointId: string, error: string) => ({
  threadId,
  checkpointNs: "",
  checkpointId,
  taskId: "task-1",
  taskPath: "~__pregel_pull, agent",
  writes: [
    { idx: 0, channel: "messages", value: value("hello") },
    { idx: 1, channel: "topic", value: value("rain") },
    { idx: -1, channel: "__error__", value: value(error) },
  ],
})

describe.each(testDatabases(env))("graphs puts on retry ($name)", (database) => {
  let server: TestServer
  let owner: string
  let client: ChronicleClient
  beforeAll(async () => {
    server = await startTestServer(database)
    owner = randomUUID()
    client = clientFor(server.server.url, await server.authority.hs256Token({ sub: owner }))
  })
  afterAll(async () => {
    await server?.close()
  })

  /** The thread's whole log: each event's id and type. */
  const log = async (threadId: string) => {
    const page = await client.events.readStream.query({
      streamId: graphStreamId(graphIdForThread(owner, threadId)),
      limit: 500,
    })
    return page.items.map((e) => ({ eventId: e.eventId, type: e.type }))
  }

  it("records an identical putCheckpoint once and answers the repeat as the first", async () => {
    const threadId = `thread-${randomUUID()}`
    const put = checkpoint(threadId, "cp-1", 1)
    const first = await client.graphs.putCheckpoint.mutate(put)
    const recorded = await log(threadId)
    expect(recorded.map((e) => e.type)).toEqual(["GraphThreadStarted", "GraphCheckpointSaved"])

    // The same put with its keys in another order is the same put.
    const reordered = { ...put, metadata: { step: 1, source: "loop" } }
    expect(await client.graphs.putCheckpoint.mutate(put)).toEqual(first)
    expect(await client.graphs.putCheckpoint.mutate(reordered)).toEqual(first)
    expect(await log(threadId)).toEqual(recorded)
    const tuple = await client.graphs.getTuple.query({ threadId, checkpointNs: "", checkpointId: "cp-1" })
    expect(tuple).toMatchObject({ checkpoint: put.checkpoint, metadata: put.metadata, version: 2 })
  })

  it("records a list on a base, or a value in the blob store, once when put again without a key", async () => {
    const threadId = `thread-${randomUUID()}`
    const large = value("x".repeat(100_000))
    const base = {
      ...checkpoint(threadId, "cp-1", 1),
      channelVersions: { messages: "1.25" },
      blobs: [
        { channel: "messages", version: "1.25", list: { base: null, keep: 0, items: [value("a"), large] } },
      ],
    }
    const grown = {
      ...checkpoint(threadId, "cp-2", 2),
      channelVersions: { messages: "2.25" },
      blobs: [{ channel: "messages", version: "2.25", list: { base: "1.25", keep: 2, items: [value("b")] } }],
    }
    for (const put of [base, base, grown, grown]) await client.graphs.putCheckpoint.mutate(put)
    expect((await log(threadId)).map((e) => e.type)).toEqual([
      "GraphThreadStarted",
      "GraphCheckpointSaved",
      "GraphCheckpointSaved",
    ])
    const tuple = await client.graphs.getTuple.query({ threadId, checkpointNs: "" })
    expect(tuple?.blobs).toEqual([
      { channel: "messages", version: "2.25", items: [value("a"), large, value("b")] },
    ])
  })

  it("records a checkpoint put again with other content, and the first content put after it", async () => {
    const threadId = `thread-${randomUUID()}`
    const a = checkpoint(threadId, "cp-1", 1)
    const b = { ...a, metadata: { source: "update", step: 1 }, checkpoint: value("replaced") }
    await client.graphs.putCheckpoint.mutate(a)
    await client.graphs.putCheckpoint.mutate(b)
    // A, B, A: the thread holds B when A comes again, so A is recorded and read.
    await client.graphs.putCheckpoint.mutate(a)
    expect((await log(threadId)).map((e) => e.type)).toEqual([
      "GraphThreadStarted",
      "GraphCheckpointSaved",
      "GraphCheckpointSaved",
      "GraphCheckpointSaved",
    ])
    const tuple = await client.graphs.getTuple.query({ threadId, checkpointNs: "" })
    expect(tuple).toMatchObject({ checkpoint: a.checkpoint, metadata: a.metadata, version: 4 })
  })

  it("records a put again after the thread was deleted", async () => {
    const threadId = `thread-${randomUUID()}`
    const put = checkpoint(threadId, "cp-1", 1)
    await client.graphs.putCheckpoint.mutate(put)
    await client.graphs.putWrites.mutate(writes(threadId, "cp-1", "boom"))
    expect(await client.graphs.deleteThread.mutate({ threadId })).toEqual({ deleted: true })
    await client.graphs.putCheckpoint.mutate(put)
    await client.graphs.putWrites.mutate(writes(threadId, "cp-1", "boom"))
    expect((await log(threadId)).map((e) => e.type)).toEqual([
      "GraphThreadStarted",
      "GraphCheckpointSaved",
      "GraphWritesSaved",
      "GraphThreadDeleted",
      "GraphCheckpointSaved",
      "GraphWritesSaved",
    ])
    const tuple = await client.graphs.getTuple.query({ threadId, checkpointNs: "" })
    expect(tuple?.blobs.map((b) => b.channel)).toEqual(["messages", "topic"])
    expect(tuple?.writes.map((w) => w.idx)).toEqual([-1, 0, 1])
  })

  it("records identical putWrites once, special writes included, and a changed special write again", async () => {
    const threadId = `thread-${randomUUID()}`
    await client.graphs.putCheckpoint.mutate(checkpoint(threadId, "cp-1", 1))
    const first = await client.graphs.putWrites.mutate(writes(threadId, "cp-1", "boom"))
    expect(first).toEqual({ version: 3 })
    const recorded = await log(threadId)
    expect(await client.graphs.putWrites.mutate(writes(threadId, "cp-1", "boom"))).toEqual(first)
    expect(await log(threadId)).toEqual(recorded)

    // Another error replaces the special write: recorded.
    expect(await client.graphs.putWrites.mutate(writes(threadId, "cp-1", "bang"))).toEqual({ version: 4 })
    const tuple = await client.graphs.getTuple.query({ threadId, checkpointNs: "" })
    expect(tuple?.writes.find((w) => w.idx === -1)?.value).toEqual(value("bang"))
    expect((await log(threadId)).length).toBe(4)
  })

  it("answers a retry under an idempotency key with the first answer, whatever its payload", async () => {
    const threadId = `thread-${randomUUID()}`
    const key = randomUUID()
    const put = checkpoint(threadId, "cp-1", 1)
    const first = await client.graphs.putCheckpoint.mutate({ ...put, idempotencyKey: key })
    const recorded = await log(threadId)
    expect(recorded.map((e) => e.type)).toEqual(["GraphThreadStarted", "GraphCheckpointSaved"])
    expect(await client.graphs.putCheckpoint.mutate({ ...put, idempotencyKey: key })).toEqual(first)
    // The key names the request: another checkpoint under it gets the first answer, and is not saved.
    const other = checkpoint(threadId, "cp-2", 2)
    expect(await client.graphs.putCheckpoint.mutate({ ...other, idempotencyKey: key })).toEqual(first)
    expect(await log(threadId)).toEqual(recorded)
    expect(
      await client.graphs.getTuple.query({ threadId, checkpointNs: "", checkpointId: "cp-2" }),
    ).toBeNull()
    const metadata = await client.events.readStream.query({
      streamId: graphStreamId(graphIdForThread(owner, threadId)),
      fromVersion: 2,
    })
    expect(metadata.items[0]?.metadata).toMatchObject({ idempotencyKey: key })

    // The same key on the other kind of put is a conflict.
    await refusal(
      client.graphs.putWrites.mutate({ ...writes(threadId, "cp-1", "boom"), idempotencyKey: key }),
      {
        code: "CONFLICT",
        tag: "IdempotencyConflict",
      },
    )

    const writesKey = randomUUID()
    const wrote = await client.graphs.putWrites.mutate({
      ...writes(threadId, "cp-1", "boom"),
      idempotencyKey: writesKey,
    })
    expect(wrote).toEqual({ version: 3 })
    expect(
      await client.graphs.putWrites.mutate({
        ...writes(threadId, "cp-1", "bang"),
        idempotencyKey: writesKey,
      }),
    ).toEqual(wrote)
    expect((await log(threadId)).map((e) => e.type)).toEqual([
      "GraphThreadStarted",
      "GraphCheckpointSaved",
      "GraphWritesSaved",
    ])
    const tuple = await client.graphs.getTuple.query({ threadId, checkpointNs: "" })
    expect(tuple?.writes.find((w) => w.idx === -1)?.value).toEqual(value("boom"))
  })

  it("refuses an empty or overlong idempotency key, naming the field", async () => {
    const threadId = `thread-${randomUUID()}`
    for (const idempotencyKey of ["", "k".repeat(201)]) {
      const error = await refusal(
        client.graphs.putCheckpoint.mutate({ ...checkpoint(threadId, "cp-1", 1), idempotencyKey }),
        { code: "BAD_REQUEST" },
      )
      expect(JSON.stringify(error.data?.fields ?? error.message)).toContain("idempotencyKey")
    }
  })

  it("records identical puts sent at once a single time, on a new thread and on a started one", async () => {
    const threadId = `thread-${randomUUID()}`
    const put = checkpoint(threadId, "cp-1", 1)
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => client.graphs.putCheckpoint.mutate(put)),
    )
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1)
    expect((await log(threadId)).map((e) => e.type)).toEqual(["GraphThreadStarted", "GraphCheckpointSaved"])

    const key = randomUUID()
    const keyed = await Promise.all(
      Array.from({ length: 6 }, () =>
        client.graphs.putWrites.mutate({ ...writes(threadId, "cp-1", "boom"), idempotencyKey: key }),
      ),
    )
    expect(keyed).toEqual(Array.from({ length: 6 }, () => ({ version: 3 })))
    const unkeyed = await Promise.all(
      Array.from({ length: 6 }, () => client.graphs.putWrites.mutate(writes(threadId, "cp-1", "bang"))),
    )
    expect(unkeyed).toEqual(Array.from({ length: 6 }, () => ({ version: 4 })))
    expect((await log(threadId)).map((e) => e.type)).toEqual([
      "GraphThreadStarted",
      "GraphCheckpointSaved",
      "GraphWritesSaved",
      "GraphWritesSaved",
    ])
  })
})
