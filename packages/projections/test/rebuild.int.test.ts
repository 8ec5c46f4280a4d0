import { randomUUID } from "node:crypto"
import { Database } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels, Projections, readModelTables, rebuildReadModels } from "../src/index.ts"
import { appendEffect, env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"
import { fillLog } from "./workload.ts"

describe.each(testDatabases(env))("rebuilding the read models on $name", (database) => {
  let h: Harness
  beforeAll(async () => {
    h = await makeHarness(database)
    await fillLog(h)
  })
  afterAll(() => h.dispose())

  const eventCount = () =>
    h.one<{ n: number }>("select count(*)::int as n from chronicle.events").then((r) => r.n)

  it("reproduces every row the inline projections wrote", async () => {
    const inline = await h.run(dumpReadModels())
    for (const table of readModelTables) expect(inline[table]!.length, table).toBeGreaterThan(0)
    const projected = await h.run(rebuildReadModels())
    expect(projected).toBe(await eventCount())
    expect(await h.run(dumpReadModels())).toEqual(inline)
  })

  it("repairs read models that drifted from the log and leaves the blobs alone", async () => {
    const inline = await h.run(dumpReadModels())
    const content = Buffer.from("hello, blob")
    const digest = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    await h.query(
      "insert into chronicle.blobs (sha256, size, content) values ($1, $2, $3) on conflict do nothing",
      [digest, content.length, content],
    )
    await h.query("update chronicle.sessions set title = 'drifted', message_count = message_count + 7")
    await h.query("delete from chronicle.messages where seq = 1")
    await h.query("update chronicle.jobs set state = 'queued'")
    await h.query("delete from chronicle.sandboxes")
    expect(await h.run(dumpReadModels())).not.toEqual(inline)

    await h.run(rebuildReadModels())
    expect(await h.run(dumpReadModels())).toEqual(inline)
    expect(
      await h.query("select sha256, size::int, convert_from(content, 'UTF8') as text from chronicle.blobs"),
    ).toEqual([{ sha256: digest, size: content.length, text: "hello, blob" }])
  })

  it("is all or nothing: a rebuild whose transaction fails leaves the read models as they were", async () => {
    const before = await h.run(dumpReadModels())
    const failure = await h.failure(
      Effect.gen(function* () {
        const db = yield* Database
        yield* db.transaction(
          Effect.gen(function* () {
            yield* db.query("update chronicle.sessions set title = 'drifted'")
            yield* rebuildReadModels()
            return yield* Effect.fail("stop")
          }),
        )
      }),
    )
    expect(failure).toBe("stop")
    expect(await h.run(dumpReadModels())).toEqual(before)
  })
})

/**
 * Fills the log with every kind of event: random session histories (several at once), forks
 * of them, jobs with tasks and artifacts, files, sandboxes, and events the projections ignore.
 */

// Only a server runs two transactions at once; the embedded database serialises them.
describe.each(testDatabases(env).filter((d) => d.name === "postgres"))(
  "rebuild order under concurrent writers on $name",
  (database) => {
    let h: Harness
    beforeAll(async () => {
      h = await makeHarness(database)
    })
    afterAll(() => h.dispose())

    it("replays in insert order: a stream's later version can carry an older transaction id", async () => {
      const other = randomUUID()
      const shared = randomUUID()
      const owner = randomUUID()
      let xWrote!: () => void
      const xHasTransactionId = new Promise<void>((resolve) => {
        xWrote = resolve
      })
      let yLocked!: () => void
      const yHoldsStream = new Promise<void>((resolve) => {
        yLocked = resolve
      })
      // X takes its transaction id first (by writing another stream), then appends to the
      // shared stream, where it waits for Y, which started that stream after X began.
      const x = h.run(
        Effect.gen(function* () {
          const db = yield* Database
          yield* db.transaction(
            Effect.gen(function* () {
              yield* appendEffect(sessionStream(other), [ev.started(other, owner)])
              xWrote()
              yield* Effect.promise(() => yHoldsStream)
              yield* appendEffect(sessionStream(shared), [ev.message(1, "from x")])
            }),
          )
        }),
      )
      const y = (async () => {
        await xHasTransactionId
        await h.run(
          Effect.gen(function* () {
            const db = yield* Database
            yield* db.transaction(
              Effect.gen(function* () {
                yield* appendEffect(sessionStream(shared), [ev.started(shared, owner)])
                yLocked()
                yield* db.query("select pg_sleep(0.3)")
              }),
            )
          }),
        )
      })()
      await Promise.all([x, y])

      const order = await h.query<{ stream_version: number; tx_first: boolean }>(
        `select stream_version, transaction_id < (select min(transaction_id) from chronicle.events
                                                    where stream_id = $1 and stream_version = 1) as tx_first
           from chronicle.events where stream_id = $1 order by global_position`,
        [sessionStream(shared)],
      )
      // Version 2 was written by the transaction with the older id.
      expect(order).toEqual([
        { stream_version: 1, tx_first: false },
        { stream_version: 2, tx_first: true },
      ])
      const inline = await h.run(dumpReadModels(["sessions", "messages"]))
      expect(
        (inline.messages ?? []).filter((m) => m.session_id === shared).map((m) => [m.version, m.content]),
      ).toEqual([[2, "from x"]])
      await h.run(rebuildReadModels())
      expect(await h.run(dumpReadModels(["sessions", "messages"]))).toEqual(inline)
    })
  },
)

describe.each(testDatabases(env))("the Projections service on $name", (database) => {
  let h: Harness
  beforeAll(async () => {
    h = await makeHarness(database)
    await fillLog(h)
  })
  afterAll(() => h.dispose())

  it("reports every projection's tables, counts and head, and rebuilds with a report", async () => {
    const service = Effect.provide(Projections, Projections.layer)
    const status = await h.run(Effect.flatMap(service, (p) => p.status()))
    const builtIn = status.projections.filter((p) => p.mode === "inline")
    expect(builtIn.flatMap((p) => p.tables.map((t) => t.name)).sort()).toEqual(
      expect.arrayContaining([...readModelTables].sort()),
    )
    const sessions = await h.one<{ n: number }>("select count(*)::int as n from chronicle.sessions")
    expect(
      status.projections.find((p) => p.name === "sessions")?.tables.find((t) => t.name === "sessions")?.rows,
    ).toBe(sessions.n)
    expect(status.head.globalPosition).toBeGreaterThan(0)
    const run = await h.run(
      Effect.flatMap(service, (p) => Effect.flatMap(p.startRebuild(), (r) => p.execute(r.id))),
    )
    const events = await h.one<{ n: number }>("select count(*)::int as n from chronicle.events")
    expect(run).toMatchObject({
      state: "completed",
      phase: "done",
      eventsDone: events.n,
      eventsTotal: events.n,
    })
    const after = await h.run(Effect.flatMap(service, (p) => p.status()))
    // The inline read models come back the same; the async one is built for the first time
    // (no daemon runs in this test), from every event.
    const inline = (s: typeof status) =>
      s.projections.filter((p) => p.mode === "inline").map((p) => [p.name, p.state, p.tables])
    expect(inline(after)).toEqual(inline(status))
    expect(after.projections.find((p) => p.name === "activity")).toMatchObject({
      state: "live",
      lagEvents: 0,
    })
  })

  it("counts tables exactly below 100,000 rows and reads larger ones from the planner's statistics", async () => {
    const service = Effect.provide(Projections, Projections.layer)
    const status = await h.run(Effect.flatMap(service, (p) => p.status()))
    expect(status.projections.flatMap((p) => p.tables).filter((t) => t.estimated)).toEqual([])
    // The threshold lowered to one row: a table ANALYZE has seen is then reported from
    // pg_class.reltuples, which for a table this small is its exact size.
    await h.query("analyze chronicle.messages")
    const { n } = await h.one<{ n: number }>("select count(*)::int as n from chronicle.messages")
    expect(n).toBeGreaterThan(1)
    const counted = (threshold: number) =>
      h.query<{ name: string; rows: string; estimated: boolean }>(
        "select name, rows::text, estimated from chronicle.projection_table_rows(array['messages', 'no_such_table'], $1)",
        [threshold],
      )
    expect(await counted(1)).toEqual([
      { name: "messages", rows: String(n), estimated: true },
      { name: "no_such_table", rows: null, estimated: false },
    ])
    expect(await counted(n + 1)).toEqual([
      { name: "messages", rows: String(n), estimated: false },
      { name: "no_such_table", rows: null, estimated: false },
    ])
  })
})
