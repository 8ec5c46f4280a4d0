/**
 * Retention for LangGraph threads, against the real server (embedded database and Postgres):
 * pruning keeps the last K checkpoints of each thread and namespace. Every kept checkpoint
 * reads back through ChronicleSaver exactly as before (its messages list included, although
 * the versions it grew from are gone), the graph goes on from the latest one, the pruned
 * checkpoints' events keep their place in the log (payloads redacted) and a
 * `GraphCheckpointsPruned` event records the pruning, and a rebuild of the graph projection
 * from the log gives back the same tables. The retention sweep prunes when
 * CHRONICLE_GRAPH_KEEP_CHECKPOINTS is set. A 200-turn thread is measured before and after.
 */
import { createHash, randomUUID } from "node:crypto"
import { graphIdForThread, graphStreamId, Purge, serviceActor, userActor } from "@chronicle/domain"
import { callers, runEnded, sweepLater, testDatabases } from "@chronicle/server/testing"
import { Database } from "@chronicle/store"
import { type BaseMessage, HumanMessage } from "@langchain/core/messages"
import type { CheckpointTuple } from "@langchain/langgraph-checkpoint"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { ChronicleSaver } from "../src/index.ts"
import { chatGraph, env, serverUser } from "./support.ts"

/** About `bytes` of prose, different for every `seed`. */
const prose = (seed: string, bytes: number) => {
  let text = `${seed}:`
  for (let i = 0; text.length < bytes; i++) text += ` word${(i * 7 + seed.length) % 97}`
  return text
}

/** A chat graph whose node answers with about `replyBytes` of prose. */
const proseGraph = (checkpointer: ChronicleSaver, replyBytes = 200) =>
  chatGraph(checkpointer, (n) => prose(`reply ${n}`, replyBytes))

const GRAPH_TABLES = {
  graph_threads: "id",
  graph_checkpoints: "graph_id",
  graph_blobs: "graph_id",
  graph_writes: "graph_id",
} as const

describe.each(testDatabases(env))("pruning a thread's checkpoints ($name)", (database) => {
  const served = serverUser(database, { CHRONICLE_GRAPH_KEEP_CHECKPOINTS: "5" })
  const user = served.user
  const saver = () => served.saver()
  const run = <A, E>(effect: Effect.Effect<A, E, Purge | Database>) =>
    served.server.server.runtime.runPromise(effect as Effect.Effect<A, E, never>)
  const query = <T extends Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
    run(Effect.flatMap(Database, (db) => db.query<T>(text, params)).pipe(Effect.orDie))
  const graphId = (threadId: string) => graphIdForThread(user, threadId)

  /** The thread's rows in the graph tables, ordered, as JSON. */
  const dumpThread = async (threadId: string) => {
    const dump: Record<string, unknown> = {}
    for (const [table, key] of Object.entries(GRAPH_TABLES)) {
      const [row] = await query<{ rows: unknown }>(
        `select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text collate "C"), '[]'::jsonb) as rows
           from chronicle.${table} t where t.${key} = $1::uuid`,
        [graphId(threadId)],
      )
      dump[table] = row!.rows
    }
    return dump
  }

  /** Bytes the thread takes: its events' payloads in the log, its rows in the read model. */
  const sizes = async (threadId: string) => {
    const [log] = await query<{ bytes: number }>(
      `select coalesce(sum(octet_length(data::text)), 0)::int as bytes from chronicle.events where stream_id = $1`,
      [graphStreamId(graphId(threadId))],
    )
    let readModel = 0
    for (const [table, key] of Object.entries(GRAPH_TABLES)) {
      const [row] = await query<{ bytes: number }>(
        `select coalesce(sum(octet_length(t::text)), 0)::int as bytes from chronicle.${table} t where t.${key} = $1::uuid`,
        [graphId(threadId)],
      )
      readModel += row!.bytes
    }
    return { log: log!.bytes, readModel }
  }

  const history = async (threadId: string) => {
    const tuples: Array<CheckpointTuple> = []
    for await (const tuple of saver().list({ configurable: { thread_id: threadId } })) tuples.push(tuple)
    return tuples
  }

  const chat = async (threadId: string, turns: number, bytes = 200) => {
    const graph = proseGraph(saver(), bytes)
    for (let turn = 1; turn <= turns; turn++)
      await graph.invoke(
        { messages: [new HumanMessage(prose(`question ${turn}`, bytes))] },
        { configurable: { thread_id: threadId } },
      )
  }

  it("keeps the last K checkpoints: each reads back identically, the graph goes on, a rebuild gives the same tables", async () => {
    const threadId = `chat-${randomUUID()}`
    const other = `other-${randomUUID()}`
    await chat(threadId, 12)
    await chat(other, 3)
    const all = await history(threadId)
    expect(all.length).toBeGreaterThan(20)
    const kept = all.slice(0, 5)
    const config = (id: string) => ({
      configurable: { thread_id: threadId, checkpoint_ns: "", checkpoint_id: id },
    })
    const before = await Promise.all(
      kept.map((t) => saver().getTuple(config(t.config.configurable!.checkpoint_id))),
    )
    const latest = await saver().getTuple({ configurable: { thread_id: threadId } })
    const otherBefore = await dumpThread(other)
    const events = await query<{ n: number }>(
      "select count(*)::int as n from chronicle.events where stream_id = $1",
      [graphStreamId(graphId(threadId))],
    )

    // A user may not prune; a dry run says what would go and writes nothing.
    const refused = await served.server.server.runtime.runPromiseExit(
      Effect.flatMap(Purge, (p) => p.pruneGraphCheckpoints(userActor(user), { keep: 5, threadId })),
    )
    expect(String(refused)).toMatch(/Only the service role/)
    const dry = await run(
      Effect.flatMap(Purge, (p) =>
        p.pruneGraphCheckpoints(serviceActor(), { keep: 5, threadId }, { dryRun: true }),
      ),
    )
    expect(dry).toMatchObject({ dryRun: true, checkpoints: all.length - 5 })
    expect(dry.threads).toEqual([
      expect.objectContaining({ threadId, ownerId: user, checkpoints: all.length - 5 }),
    ])
    expect(await history(threadId)).toHaveLength(all.length)

    const progress: Array<[number, number]> = []
    const report = await run(
      Effect.flatMap(Purge, (p) =>
        p.pruneGraphCheckpoints(
          serviceActor(),
          { keep: 5, threadId },
          { onProgress: (done, total) => progress.push([done, total]) },
        ),
      ),
    )
    expect(report).toMatchObject({ dryRun: false, checkpoints: all.length - 5 })
    expect(progress.at(-1)).toEqual([1, 1])

    // The last five are there, each exactly as before; the pruned ones are gone.
    const after = await history(threadId)
    expect(after.map((t) => t.config.configurable!.checkpoint_id)).toEqual(
      kept.map((t) => t.config.configurable!.checkpoint_id),
    )
    for (const [i, t] of kept.entries())
      expect(await saver().getTuple(config(t.config.configurable!.checkpoint_id))).toEqual(before[i])
    expect(await saver().getTuple({ configurable: { thread_id: threadId } })).toEqual(latest)
    expect(await saver().getTuple(config(all[5]!.config.configurable!.checkpoint_id))).toBeUndefined()
    // The oldest messages list a kept checkpoint reads is stored whole: it rests on nothing gone.
    const lists = await query<{ version: string; base_version: string | null; length: number }>(
      `select version, base_version, length from chronicle.graph_blobs
        where graph_id = $1::uuid and channel = 'messages' order by length`,
      [graphId(threadId)],
    )
    expect(lists[0]).toMatchObject({ base_version: null })
    expect(lists[0]!.length).toBeGreaterThan(10)
    expect(lists.slice(1).every((l) => lists.some((b) => b.version === l.base_version))).toBe(true)
    // Another thread is untouched.
    expect(await dumpThread(other)).toEqual(otherBefore)

    // The log keeps every event (redacted) and records the pruning.
    const log = await query<{ type: string; data: Record<string, unknown> }>(
      "select type, data from chronicle.events where stream_id = $1 order by stream_version",
      [graphStreamId(graphId(threadId))],
    )
    expect(log).toHaveLength(events[0]!.n + 1)
    expect(log.at(-1)).toEqual({
      type: "GraphCheckpointsPruned",
      data: {
        checkpointNs: "",
        keep: 5,
        throughCheckpointId: all[5]!.config.configurable!.checkpoint_id,
        count: all.length - 5,
      },
    })
    const pruned = log.filter(
      (e) =>
        e.type === "GraphCheckpointSaved" &&
        e.data.checkpointId === all.at(-1)!.config.configurable!.checkpoint_id,
    )
    expect(pruned[0]!.data).toMatchObject({ metadata: {}, checkpoint: { data: "" } })

    // A rebuild of the graph projection from the log gives the same rows.
    const inline = await dumpThread(threadId)
    const c = await callers(served.server)
    const { runId } = await c.asService.projections.rebuild.mutate({ projections: ["graph"] })
    expect(await runEnded(c.asService, runId)).toMatchObject({ state: "completed" })
    expect(await dumpThread(threadId)).toEqual(inline)
    expect(await dumpThread(other)).toEqual(otherBefore)

    // The graph goes on from the latest checkpoint, with every message.
    const graph = proseGraph(saver())
    await graph.invoke(
      { messages: [new HumanMessage("one more")] },
      { configurable: { thread_id: threadId } },
    )
    const messages = (await graph.getState({ configurable: { thread_id: threadId } })).values
      .messages as Array<BaseMessage>
    expect(messages).toHaveLength(26)
    expect(messages[0]!.content).toBe(prose("question 1", 200))
    expect(messages[25]!.content).toBe(prose("reply 25", 200))
    // Pruning again (after more checkpoints) keeps the last five once more, and rebuilds still agree.
    await run(Effect.flatMap(Purge, (p) => p.pruneGraphCheckpoints(serviceActor(), { keep: 5, threadId })))
    expect(await history(threadId)).toHaveLength(5)
    const again = await dumpThread(threadId)
    const second = await c.asService.projections.rebuild.mutate({ projections: ["graph"] })
    expect(await runEnded(c.asService, second.runId)).toMatchObject({ state: "completed" })
    expect(await dumpThread(threadId)).toEqual(again)
    const resumed = (await proseGraph(saver()).getState({ configurable: { thread_id: threadId } })).values
      .messages as Array<BaseMessage>
    expect(resumed.map((m) => m.content)).toEqual(messages.map((m) => m.content))
  })

  it("deletes the large values only pruned checkpoints named; those the kept ones rest on stay", async () => {
    const client = served.client()
    const threadId = `large-${randomUUID()}`
    // Over 64 KiB of base64 each: kept in the blob store, the events carry their SHA-256.
    const large = (seed: string) => ({
      type: "json",
      data: Buffer.from(prose(seed, 70_000)).toString("base64"),
    })
    const gone = large(`gone ${threadId}`)
    const stays = large(`stays ${threadId}`)
    const save = (id: string, topic: string, blobs: Array<Record<string, unknown>>) =>
      client.graphs.putCheckpoint.mutate({
        threadId,
        checkpointNs: "",
        checkpointId: id,
        parentCheckpointId: null,
        checkpoint: { type: "json", data: Buffer.from(id).toString("base64") },
        metadata: {},
        channelVersions: { topic, messages: id === "cp-1" ? "1" : "2" },
        blobs: blobs as never,
      })
    // cp-1: a large topic only it names, and a list whose large item cp-2's list keeps.
    await save("cp-1", "1", [
      { channel: "topic", version: "1", value: gone },
      { channel: "messages", version: "1", list: { base: null, keep: 0, items: [stays] } },
    ])
    await save("cp-2", "2", [
      { channel: "topic", version: "2", value: { type: "json", data: "" } },
      {
        channel: "messages",
        version: "2",
        list: { base: "1", keep: 1, items: [{ type: "json", data: "" }] },
      },
    ])
    const sha = (value: { data: string }) =>
      createHash("sha256").update(Buffer.from(value.data, "base64")).digest("hex")
    const stored = async () =>
      (
        await query<{ sha256: string }>(
          "select sha256 from chronicle.blobs where sha256 = any ($1::text[])",
          [[sha(gone), sha(stays)]],
        )
      )
        .map((r) => r.sha256)
        .sort()
    expect(await stored()).toEqual([sha(gone), sha(stays)].sort())
    const before = await client.graphs.getTuple.query({ threadId, checkpointNs: "", checkpointId: "cp-2" })
    const report = await run(
      Effect.flatMap(Purge, (p) => p.pruneGraphCheckpoints(serviceActor(), { keep: 1, threadId })),
    )
    expect(report).toMatchObject({ checkpoints: 1, blobs: 1 })
    expect(await stored()).toEqual([sha(stays)])
    expect(await client.graphs.getTuple.query({ threadId, checkpointNs: "", checkpointId: "cp-2" })).toEqual(
      before,
    )
  })

  it("prunes in the retention sweep, with CHRONICLE_GRAPH_KEEP_CHECKPOINTS", async () => {
    const threadId = `swept-${randomUUID()}`
    await chat(threadId, 4)
    expect((await history(threadId)).length).toBeGreaterThan(5)
    await sweepLater(served.server, 0)
    expect(await history(threadId)).toHaveLength(5)
  })

  it("measures a 200-turn thread before and after pruning to K=5", { timeout: 600_000 }, async () => {
    const threadId = `long-${randomUUID()}`
    await chat(threadId, 200, 2_000)
    const before = await sizes(threadId)
    await run(Effect.flatMap(Purge, (p) => p.pruneGraphCheckpoints(serviceActor(), { keep: 5, threadId })))
    const after = await sizes(threadId)
    console.info(
      `bytes of a 200-turn thread before and after pruning to 5 checkpoints: ${JSON.stringify({ before, after })}`,
    )
    expect(after.log).toBeLessThan(before.log)
    expect(after.readModel).toBeLessThan(before.readModel)
    const messages = (await proseGraph(saver()).getState({ configurable: { thread_id: threadId } })).values
      .messages as Array<BaseMessage>
    expect(messages).toHaveLength(400)
    expect(messages[399]!.content).toBe(prose("reply 399", 2_000))
  })
})
