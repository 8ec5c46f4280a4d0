/**
 * The `graph` projection (LangGraph threads, supabase/schemas/04_graphs.sql) rebuilt by
 * the projection engine reproduces exactly the rows its inline handler wrote: random histories
 * of threads (checkpoints saved and saved again, with parents, channel values shared between
 * checkpoints, writes with special negative indexes that replace, deletions followed by new
 * checkpoints) are appended, the projection is rebuilt through the engine, and the four
 * tables must hold the same rows before and after. Channel values come whole, in the blob
 * store (by SHA-256), or as lists on top of another version (which may be missing, a whole
 * value, or shorter than what the list keeps): every stored value must read, through
 * chronicle.graph_value, as an in-memory fold of the same events says. Pruning threads to
 * their last K checkpoints (chronicle.prune_graph_checkpoints and GraphCheckpointsPruned, as
 * the Purge service does) keeps exactly the K newest of each namespace, each reading as before,
 * and later saves and prunings still rebuild to the same rows.
 */
import { createHash, randomUUID } from "node:crypto"
import type { ChronicleEvent } from "@chronicle/events"
import { Database } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { engineOf } from "./engine-support.ts"
import { appendEffect, env, type Harness, makeHarness } from "./support.ts"

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

/** Two values kept in the blob store, and one whose bytes it does not hold (it reads empty). */
const STORED_BYTES = ["a value in the blob store", "another one"]
const sha256Of = (text: string) => createHash("sha256").update(text).digest("hex")
const BLOB_REFS = [...STORED_BYTES, "never stored"].map((text) => ({
  value: { type: "json", sha256: sha256Of(text), size: Buffer.byteLength(text) },
  reads: STORED_BYTES.includes(text) ? Buffer.from(text).toString("base64") : "",
}))

type StoredValue = { type: string; data: string } | { type: string; sha256: string; size: number }
/** A value as graph_value returns it: its bytes inline. */
const readsAs = (value: StoredValue) =>
  "data" in value
    ? value
    : { type: value.type, data: BLOB_REFS.find((r) => r.value.sha256 === value.sha256)!.reads }

const storedValueArb: fc.Arbitrary<StoredValue> = fc.oneof(
  { weight: 3, arbitrary: textArb.map(serialized) },
  { weight: 1, arbitrary: fc.constantFrom(...BLOB_REFS.map((r) => r.value)) },
)

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
    channels: fc.uniqueArray(
      fc.record({
        channel: channelArb,
        version: versionArb,
        value: fc.oneof(
          {
            weight: 2,
            arbitrary: textArb.map((text) => (text === "" ? { type: "empty", data: "" } : serialized(text))),
          },
          { weight: 1, arbitrary: fc.constantFrom(...BLOB_REFS.map((r) => r.value)) },
          {
            weight: 4,
            arbitrary: fc.record({
              base: fc.option(versionArb, { nil: null, freq: 4 }),
              keep: fc.nat(4),
              items: fc.array(storedValueArb, { minLength: 1, maxLength: 3 }),
            }),
          },
        ),
      }),
      { selector: (c) => c.channel, maxLength: 3 },
    ),
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
        blobs: r.channels
          .slice(0, r.stored)
          .map((c) =>
            "items" in c.value
              ? { channel: c.channel, version: c.version, list: c.value }
              : { channel: c.channel, version: c.version, value: c.value },
          ),
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
      fc.record({ idx: fc.integer({ min: -4, max: 3 }), channel: channelArb, value: storedValueArb }),
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
        writes: r.writes.map((w) => ({ idx: w.idx, channel: w.channel, value: w.value })),
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

/** Histories that between them leave rows of every kind the rebuild test counts (fixed seed). */
const COVERING = fc.sample(historyArb, { numRuns: 8, seed: 20261205 })

const newThreads = () => {
  const ownerId = randomUUID()
  return [0, 1, 2].map(() => ({
    ownerId,
    graphId: randomUUID(),
    threadId: `thread-${randomUUID()}`,
    started: false,
  }))
}

/** Appends a history: each thread is a stream started by GraphThreadStarted (new ones by default). */
const play = async (h: Harness, ops: ReadonlyArray<Op>, threads = newThreads()) => {
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
        ownerId: thread.ownerId,
        threadId: thread.threadId,
      })
      thread.started = true
    }
    batch.events.push(event)
  }
  await flush()
  return threads.map((t) => t.graphId)
}

type Read = { value: { type: string; data: string } } | { items: Array<{ type: string; data: string }> }

/**
 * What graph_value reads for each stored (graph, namespace, channel, version), folded in
 * memory: the first value stored under a version stays; a list is the first `keep` items of
 * its base when the thread held the base as a list before the event, then its own items.
 */
const expectedValues = (ops: ReadonlyArray<Op>, graphIds: ReadonlyArray<string>) => {
  const threads = graphIds.map(() => new Map<string, Read>())
  for (const op of ops) {
    const thread = threads[op.thread]!
    if (op.kind === "delete") thread.clear()
    if (op.kind !== "checkpoint" || op.event.type !== "GraphCheckpointSaved") continue
    const ns = op.event.checkpointNs
    const before = new Map(thread)
    for (const blob of op.event.blobs) {
      const key = JSON.stringify([ns, blob.channel, blob.version])
      if (thread.has(key)) continue
      if ("value" in blob) {
        thread.set(key, { value: readsAs(blob.value) })
        continue
      }
      const base =
        blob.list.base === null ? undefined : before.get(JSON.stringify([ns, blob.channel, blob.list.base]))
      const kept = base !== undefined && "items" in base ? base.items.slice(0, blob.list.keep) : []
      thread.set(key, { items: [...kept, ...blob.list.items.map(readsAs)] })
    }
  }
  return Object.fromEntries(
    threads.flatMap((values, i) =>
      [...values].map(([key, read]) => [JSON.stringify([graphIds[i], ...JSON.parse(key)]), read]),
    ),
  )
}

/** What graph_value reads for every stored value of these threads. */
const storedValues = async (h: Harness, graphIds: ReadonlyArray<string>) => {
  const rows = await h.query<{
    graph_id: string
    checkpoint_ns: string
    channel: string
    version: string
    value: Read
  }>(
    `select b.graph_id::text, b.checkpoint_ns, b.channel, b.version,
            chronicle.graph_value(b.graph_id, b.checkpoint_ns, b.channel, b.version) as value
       from chronicle.graph_blobs b where b.graph_id = any($1::uuid[])`,
    [`{${graphIds.join(",")}}`],
  )
  return Object.fromEntries(
    rows.map((r) => [JSON.stringify([r.graph_id, r.checkpoint_ns, r.channel, r.version]), r.value]),
  )
}

/**
 * Prunes a thread to its last `keep` checkpoints per namespace as the Purge service does, in
 * one transaction: the SQL function redacts the older checkpoints' events, and the
 * GraphCheckpointsPruned events appended after it remove them from the read model.
 */
const prune = (h: Harness, graphId: string, keep: number) =>
  h.run(
    Effect.gen(function* () {
      const db = yield* Database
      yield* db.transaction(
        Effect.gen(function* () {
          const rows = yield* db.query<{ checkpoint_ns: string; through: string; n: number }>(
            `select x.checkpoint_ns, max(x.checkpoint_id) as through, count(*)::int as n
               from (select checkpoint_ns, checkpoint_id,
                            row_number() over (partition by checkpoint_ns order by checkpoint_id desc) as rank
                       from chronicle.graph_checkpoints where graph_id = $1::uuid) x
              where x.rank > $2 group by x.checkpoint_ns order by x.checkpoint_ns`,
            [graphId, keep],
          )
          if (rows.length === 0) return
          for (const r of rows)
            yield* db.query("select chronicle.prune_graph_checkpoints($1::uuid, $2, $3)", [
              graphId,
              r.checkpoint_ns,
              r.through,
            ])
          yield* appendEffect(
            `graph-${graphId}`,
            rows.map((r) => ({
              type: "GraphCheckpointsPruned" as const,
              checkpointNs: r.checkpoint_ns,
              keep,
              throughCheckpointId: r.through,
              count: r.n,
            })),
          )
        }),
      )
    }).pipe(Effect.orDie),
  )

/** Every checkpoint of these threads as a read returns it: its row, its channels' values, its writes. */
const checkpointReads = async (h: Harness, graphIds: ReadonlyArray<string>) => {
  const rows = await h.query<{ key: string; read: unknown }>(
    `select jsonb_build_array(c.graph_id, c.checkpoint_ns, c.checkpoint_id)::text as key,
            jsonb_build_object(
              'checkpoint', c.checkpoint, 'metadata', c.metadata, 'parent', c.parent_checkpoint_id,
              'values', (select coalesce(jsonb_object_agg(v.key,
                                  chronicle.graph_value(c.graph_id, c.checkpoint_ns, v.key, v.value)), '{}'::jsonb)
                           from jsonb_each_text(c.channel_versions) v),
              'writes', (select coalesce(jsonb_agg(to_jsonb(w) - 'version' order by w.task_id, w.idx), '[]'::jsonb)
                           from chronicle.graph_writes w
                          where w.graph_id = c.graph_id and w.checkpoint_ns = c.checkpoint_ns
                            and w.checkpoint_id = c.checkpoint_id)) as read
       from chronicle.graph_checkpoints c where c.graph_id = any($1::uuid[])`,
    [`{${graphIds.join(",")}}`],
  )
  return Object.fromEntries(rows.map((r) => [r.key, r.read]))
}

/** The reads of the `keep` newest checkpoint ids (by code point) of each thread and namespace. */
const newest = (reads: Record<string, unknown>, keep: number) => {
  const groups = new Map<string, Array<string>>()
  for (const key of Object.keys(reads)) {
    const [graph, ns] = JSON.parse(key) as [string, string, string]
    const group = JSON.stringify([graph, ns])
    groups.set(group, [...(groups.get(group) ?? []), key])
  }
  const id = (key: string) => (JSON.parse(key) as [string, string, string])[2]
  return Object.fromEntries(
    [...groups.values()].flatMap((keys) =>
      keys
        .sort((a, b) => (id(a) < id(b) ? 1 : id(a) > id(b) ? -1 : 0))
        .slice(0, keep)
        .map((key) => [key, reads[key]]),
    ),
  )
}

/**
 * A thread as an agent writes it, in two namespaces: each turn a checkpoint with a newer id
 * whose messages list grows on the previous version (sometimes dropping items first), whose
 * topic changes now and then (otherwise it names the version an older checkpoint stored), and
 * writes against it; between turns, prunings to the last 1–3 checkpoints.
 */
const turnsArb = fc.array(
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant("turn" as const),
        ns: fc.constantFrom("", "child:1"),
        add: fc.integer({ min: 1, max: 2 }),
        drop: fc.oneof(
          { weight: 4, arbitrary: fc.constant(0) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
        ),
        topic: fc.boolean(),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("prune" as const), keep: fc.integer({ min: 1, max: 3 }) }),
    },
  ),
  { minLength: 4, maxLength: 30 },
)

describe.each(testDatabases(env))("rebuilding the graph projection on $name", (database) => {
  let h: Harness
  let engine: Awaited<ReturnType<typeof engineOf>>
  beforeAll(async () => {
    h = await makeHarness(database)
    engine = await engineOf(h)
    for (const text of STORED_BYTES) {
      await h.query(
        "insert into chronicle.blobs (sha256, size, content) values ($1, $2, $3::bytea) on conflict do nothing",
        [sha256Of(text), Buffer.byteLength(text), new Uint8Array(Buffer.from(text))],
      )
    }
  })
  afterAll(async () => {
    await engine?.dispose()
    await h?.dispose()
  })

  it("reproduces the rows the inline projection wrote, for random thread histories", async () => {
    // A fixed sample first, which leaves a row of every kind counted below; every rebuild below
    // rebuilds its threads too. Random histories alone once left none in the blob store.
    for (const ops of COVERING) await play(h, ops)
    await fc.assert(
      fc.asyncProperty(historyArb, async (ops) => {
        const graphIds = await play(h, ops)
        expect(await storedValues(h, graphIds)).toEqual(expectedValues(ops, graphIds))
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
              (select count(*)::int from chronicle.graph_blobs where items is null) as whole,
              (select count(*)::int from chronicle.graph_blobs where sha256 is not null) as in_blob_store,
              (select count(*)::int from chronicle.graph_blobs where items is not null and base_version is null) as lists_alone,
              (select count(*)::int from chronicle.graph_writes where sha256 is not null) as writes_in_blob_store,
              (select count(*)::int from chronicle.graph_writes where idx < 0) as special,
              (select count(*)::int from chronicle.graph_writes where idx >= 0) as regular`,
    )
    for (const [what, n] of Object.entries(counts!)) expect(n, what).toBeGreaterThan(0)
  })

  it("prunes to the last K checkpoints: the kept ones read as before, later saves go on, a rebuild gives the same rows", async () => {
    let pruned = 0
    await fc.assert(
      fc.asyncProperty(
        historyArb,
        historyArb,
        fc.integer({ min: 1, max: 3 }),
        async (first, second, keep) => {
          const threads = newThreads()
          const graphIds = threads.map((t) => t.graphId)
          for (const ops of [first, second]) {
            await play(h, ops, threads)
            const before = await checkpointReads(h, graphIds)
            for (const graphId of graphIds) await prune(h, graphId, keep)
            const after = await checkpointReads(h, graphIds)
            expect(after).toEqual(newest(before, keep))
            pruned += Object.keys(before).length - Object.keys(after).length
          }
          const inline = await dumpGraph(h)
          const run = await engine.run((p) =>
            Effect.flatMap(p.startRebuild({ projections: ["graph"] }), (r) => p.execute(r.id)),
          )
          expect(run).toMatchObject({ state: "completed", kind: "rebuild" })
          expect(await dumpGraph(h)).toEqual(inline)
        },
      ),
      { numRuns: 20 },
    )
    // The histories pruned checkpoints, and stored lists whole because their base went.
    expect(pruned).toBeGreaterThan(0)
    const [events] = await h.query<{ n: number }>(
      "select count(*)::int as n from chronicle.events where type = 'GraphCheckpointsPruned'",
    )
    expect(events!.n).toBeGreaterThan(0)
  })

  it("prunes agent-like threads again and again: kept checkpoints read as before, a rebuild gives the same rows", async () => {
    let materialized = 0
    await fc.assert(
      fc.asyncProperty(turnsArb, async (turns) => {
        const threads = newThreads().slice(0, 1)
        const graphId = threads[0]!.graphId
        const state = new Map<string, { version: number; length: number; topic: number }>()
        for (const [i, turn] of turns.entries()) {
          if (turn.kind === "prune") {
            const before = await checkpointReads(h, [graphId])
            await prune(h, graphId, turn.keep)
            expect(await checkpointReads(h, [graphId])).toEqual(newest(before, turn.keep))
            continue
          }
          const at = state.get(turn.ns) ?? { version: 0, length: 0, topic: 0 }
          const keep = Math.max(0, at.length - turn.drop)
          const next = {
            version: at.version + 1,
            length: keep + turn.add,
            topic: turn.topic ? at.version + 1 : at.topic,
          }
          state.set(turn.ns, next)
          const id = `cp-${String(i).padStart(3, "0")}`
          const items = Array.from({ length: turn.add }, (_, k) => serialized(`${turn.ns} item ${i}.${k}`))
          await play(
            h,
            [
              {
                kind: "checkpoint",
                thread: 0,
                event: {
                  type: "GraphCheckpointSaved",
                  checkpointNs: turn.ns,
                  checkpointId: id,
                  parentCheckpointId: null,
                  checkpoint: serialized(`checkpoint ${i}`),
                  metadata: { step: i },
                  channelVersions: {
                    messages: String(next.version),
                    ...(next.topic > 0 ? { topic: `t${next.topic}` } : {}),
                  },
                  blobs: [
                    {
                      channel: "messages",
                      version: String(next.version),
                      list: {
                        base: at.version > 0 ? String(at.version) : null,
                        keep: at.version > 0 ? keep : 0,
                        items,
                      },
                    },
                    ...(turn.topic
                      ? [{ channel: "topic", version: `t${next.topic}`, value: serialized(`topic ${i}`) }]
                      : []),
                  ],
                },
              },
              {
                kind: "writes",
                thread: 0,
                event: {
                  type: "GraphWritesSaved",
                  checkpointNs: turn.ns,
                  checkpointId: id,
                  taskId: "agent",
                  taskPath: "",
                  writes: [{ idx: 0, channel: "messages", value: serialized(`write ${i}`) }],
                },
              },
            ],
            threads,
          )
        }
        const [row] = await h.query<{ n: number }>(
          `select count(*)::int as n from chronicle.graph_blobs
            where graph_id = $1::uuid and channel = 'messages' and base_version is null and version <> '1'`,
          [graphId],
        )
        materialized += row!.n
        const inline = await dumpGraph(h)
        const run = await engine.run((p) =>
          Effect.flatMap(p.startRebuild({ projections: ["graph"] }), (r) => p.execute(r.id)),
        )
        expect(run).toMatchObject({ state: "completed", kind: "rebuild" })
        expect(await dumpGraph(h)).toEqual(inline)
      }),
      { numRuns: 25 },
    )
    // Prunings stored lists whole because the versions they grew from went.
    expect(materialized).toBeGreaterThan(0)
  })

  it("reads a list from the chain of versions it grew from, before and after a rebuild", async () => {
    const ops: Array<Op> = []
    const list = (version: string, base: string | null, keep: number, items: Array<string>): Op => ({
      kind: "checkpoint",
      thread: 0,
      event: {
        type: "GraphCheckpointSaved",
        checkpointNs: "",
        checkpointId: `cp-${version}`,
        parentCheckpointId: null,
        checkpoint: serialized(version),
        metadata: {},
        channelVersions: { messages: version },
        blobs: [{ channel: "messages", version, list: { base, keep, items: items.map(serialized) } }],
      },
    })
    ops.push(list("1", null, 0, ["a", "b"]))
    ops.push(list("2", "1", 2, ["c"]))
    ops.push(list("3", "2", 3, ["d", "e"]))
    // A branch from version 2 that dropped its last item, and one whose base is unknown.
    ops.push(list("4", "2", 2, ["x"]))
    ops.push(list("5", "9", 2, ["y"]))
    const graphIds = await play(h, ops)
    const read = async () => Object.values(await storedValues(h, graphIds))
    const letters = (r: Read) =>
      "items" in r ? r.items.map((i) => Buffer.from(i.data, "base64").toString()) : []
    const expected = [["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d", "e"], ["a", "b", "x"], ["y"]]
    expect((await read()).map(letters).sort()).toEqual(expected.sort())
    expect(await storedValues(h, graphIds)).toEqual(expectedValues(ops, graphIds))
    const [stored] = await h.query<{ n: number }>(
      "select count(*)::int as n from chronicle.graph_blobs where graph_id = $1::uuid and base_version is not null",
      [graphIds[0]],
    )
    expect(stored!.n).toBe(3)
    await engine.run((p) =>
      Effect.flatMap(p.startRebuild({ projections: ["graph"] }), (r) => p.execute(r.id)),
    )
    expect((await read()).map(letters).sort()).toEqual(expected.sort())
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
