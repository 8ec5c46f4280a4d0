/**
 * The `graph` projection (LangGraph threads, supabase/schemas/04_graphs.sql) rebuilt by
 * the projection engine reproduces exactly the rows its inline handler wrote: random histories
 * of threads (checkpoints saved and saved again, with parents, channel values shared between
 * checkpoints, writes with special negative indexes that replace, deletions followed by new
 * checkpoints) are appended, the projection is rebuilt through the engine, and the four
 * tables must hold the same rows before and after.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleEvent } from "@chronicle/events"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { engineOf } from "./engine-support.ts"
import { env, type Harness, makeHarness } from "./support.ts"

/** The graph tables with the columns that order their rows (their keys). */
const GRAPH_TABLES = {
  graph_threads: ["id"],
  graph_checkpoints: ["graph_id", "checkpoint_ns", "checkpoint_id"],
  graph_blobs: ["graph_id", "checkpoint_ns", "channel", "version"],
  graph_writes: ["graph_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"],
} as const

/** Every row of the graph tables, ordered by key, as JSON. */
const dumpGraph = async (h: Harness) => {
  const dump: Record<string, unknown> = {}
  for (const [table, key] of Object.entries(GRAPH_TABLES)) {
    const order = key.map((c) => `t.${c}::text collate "C"`).join(", ")
    const [row] = await h.query<{ rows: unknown }>(
      `select coalesce(jsonb_agg(to_jsonb(t) order by ${order}), '[]'::jsonb) as rows from chronicle.${table} t`,
    )
    dump[table] = row?.rows
  }
  return dump
}

const serialized = (text: string) => ({ type: "json", data: Buffer.from(text).toString("base64") })

// Small pools, so that ids, channels and versions collide often: saving a checkpoint again,
// a channel value another checkpoint already stored, a write to an index already written.
const checkpointIdArb = fc.constantFrom("cp-1", "cp-2", "cp-3", "cp-4")
const nsArb = fc.constantFrom("", "child:1")
const channelArb = fc.constantFrom("messages", "topic", "__pregel_tasks")
const versionArb = fc.constantFrom("1.1", "2.3", "3.2")
const textArb = fc.string({ maxLength: 12 })

type Op =
  | { readonly kind: "checkpoint"; readonly thread: number; readonly event: ChronicleEvent }
  | { readonly kind: "writes"; readonly thread: number; readonly event: ChronicleEvent }
  | { readonly kind: "delete"; readonly thread: number }

const checkpointOp = fc
  .record({
    thread: fc.nat(2),
    ns: nsArb,
    id: checkpointIdArb,
    parent: fc.option(checkpointIdArb, { nil: null }),
    content: textArb,
    step: fc.integer({ min: -1, max: 5 }),
    channels: fc.uniqueArray(fc.record({ channel: channelArb, version: versionArb, value: textArb }), {
      selector: (c) => c.channel,
      maxLength: 3,
    }),
    stored: fc.nat(3),
  })
  .map(
    (r): Op => ({
      kind: "checkpoint",
      thread: r.thread,
      event: {
        type: "GraphCheckpointSaved",
        checkpointNs: r.ns,
        checkpointId: r.id,
        parentCheckpointId: r.parent,
        checkpoint: serialized(r.content),
        metadata: { source: "loop", step: r.step },
        channelVersions: Object.fromEntries(r.channels.map((c) => [c.channel, c.version])),
        // The values of some of the channels: those that changed in this checkpoint.
        blobs: r.channels.slice(0, r.stored).map((c) => ({
          channel: c.channel,
          version: c.version,
          value: c.value === "" ? { type: "empty", data: "" } : serialized(c.value),
        })),
      },
    }),
  )

const writesOp = fc
  .record({
    thread: fc.nat(2),
    ns: nsArb,
    id: checkpointIdArb,
    task: fc.constantFrom("task-a", "task-b"),
    path: fc.constantFrom("", "~__pregel_pull, agent"),
    // Special writes (error, interrupt, scheduled, resume) have negative indexes.
    writes: fc.uniqueArray(
      fc.record({ idx: fc.integer({ min: -4, max: 3 }), channel: channelArb, value: textArb }),
      { selector: (w) => w.idx, minLength: 1, maxLength: 4 },
    ),
  })
  .map(
    (r): Op => ({
      kind: "writes",
      thread: r.thread,
      event: {
        type: "GraphWritesSaved",
        checkpointNs: r.ns,
        checkpointId: r.id,
        taskId: r.task,
        taskPath: r.path,
        writes: r.writes.map((w) => ({ idx: w.idx, channel: w.channel, value: serialized(w.value) })),
      },
    }),
  )

const deleteOp = fc.nat(2).map((thread): Op => ({ kind: "delete", thread }))

/** A history of up to three threads; consecutive events of one thread go in one append. */
const historyArb = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: checkpointOp },
    { weight: 4, arbitrary: writesOp },
    { weight: 1, arbitrary: deleteOp },
  ),
  { minLength: 1, maxLength: 30 },
)

/** Appends a history: each thread is a new stream started by GraphThreadStarted. */
const play = async (h: Harness, ops: ReadonlyArray<Op>) => {
  const ownerId = randomUUID()
  const threads = [0, 1, 2].map(() => ({
    graphId: randomUUID(),
    threadId: `thread-${randomUUID()}`,
    started: false,
  }))
  let batch: { thread: number; events: Array<ChronicleEvent> } | undefined
  const flush = async () => {
    if (batch === undefined) return
    const thread = threads[batch.thread]!
    await h.append(`graph-${thread.graphId}`, batch.events)
    batch = undefined
  }
  for (const op of ops) {
    const thread = threads[op.thread]!
    const event: ChronicleEvent = op.kind === "delete" ? { type: "GraphThreadDeleted" } : op.event
    if (batch?.thread !== op.thread) {
      await flush()
      batch = { thread: op.thread, events: [] }
    }
    if (!thread.started) {
      batch.events.push({
        type: "GraphThreadStarted",
        graphId: thread.graphId,
        ownerId,
        threadId: thread.threadId,
      })
      thread.started = true
    }
    batch.events.push(event)
  }
  await flush()
}

describe.each(testDatabases(env))("rebuilding the graph projection on $name", (database) => {
  let h: Harness
  let engine: Awaited<ReturnType<typeof engineOf>>
  beforeAll(async () => {
    h = await makeHarness(database)
    engine = await engineOf(h)
  })
  afterAll(async () => {
    await engine?.dispose()
    await h?.dispose()
  })

  it("reproduces the rows the inline projection wrote, for random thread histories", async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, async (ops) => {
        await play(h, ops)
        const inline = await dumpGraph(h)
        const run = await engine.run((p) =>
          Effect.flatMap(p.startRebuild({ projections: ["graph"] }), (r) => p.execute(r.id)),
        )
        expect(run).toMatchObject({ state: "completed", kind: "rebuild" })
        expect(await dumpGraph(h)).toEqual(inline)
      }),
      { numRuns: 20 },
    )
    // The histories exercised every table and both kinds of write.
    const [counts] = await h.query<Record<string, number>>(
      `select (select count(*)::int from chronicle.graph_threads where deletions > 0) as deleted_threads,
              (select count(*)::int from chronicle.graph_checkpoints where parent_checkpoint_id is not null) as with_parent,
              (select count(*)::int from chronicle.graph_blobs) as blobs,
              (select count(*)::int from chronicle.graph_writes where idx < 0) as special,
              (select count(*)::int from chronicle.graph_writes where idx >= 0) as regular`,
    )
    for (const [what, n] of Object.entries(counts!)) expect(n, what).toBeGreaterThan(0)
  })

  it("rebuilds from the log, not from the tables: rows that drifted are put back", async () => {
    await play(h, fc.sample(historyArb, { numRuns: 1, seed: 42 })[0]!)
    const inline = await dumpGraph(h)
    await h.query("update chronicle.graph_checkpoints set metadata = '{\"drifted\": true}'")
    await h.query("delete from chronicle.graph_writes where idx < 0")
    await h.query("insert into chronicle.graph_blobs values ($1, '', 'stray', '9', 'json', '')", [
      randomUUID(),
    ])
    expect(await dumpGraph(h)).not.toEqual(inline)
    await engine.run((p) =>
      Effect.flatMap(p.startRebuild({ projections: ["graph"] }), (r) => p.execute(r.id)),
    )
    expect(await dumpGraph(h)).toEqual(inline)
  })
})
