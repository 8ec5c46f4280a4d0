/**
 * A build's tables fill without their secondary indexes, which are built once the run has
 * caught up: a rebuild's shadow tables hold only their primary keys while they fill, every
 * index of the live tables before the swap, and after it the live tables have the same
 * indexes under the same names. A worker that dies before or after the indexes were built
 * leaves a run that the worker resuming it ends with every index; a snapshot has them too.
 */
import { randomUUID } from "node:crypto"
import { EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels, Projections, type Run } from "../src/index.ts"
import { engineOf, scratchFold } from "./engine-support.ts"
import { env, type Harness, makeHarness } from "./support.ts"
import { fillLog } from "./workload.ts"

interface IndexRow {
  readonly table: string
  readonly name: string
  readonly primary: boolean
  /** The definition without its name and table, as the swap compares them. */
  readonly definition: string
}

describe.each(testDatabases(env))("a build's deferred indexes on $name", (database) => {
  let h: Harness
  beforeAll(async () => {
    h = await makeHarness(database)
    await fillLog(h)
  })
  afterAll(() => h.dispose())

  /** The indexes of the read-model tables (every projection's tables) in a schema. */
  const indexesIn = (schema: string) =>
    h.query<IndexRow>(
      `select c.relname as "table", i.relname as name, x.indisprimary as "primary",
              regexp_replace(pg_get_indexdef(x.indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', '\\1')
                as definition
         from pg_index x
         join pg_class c on c.oid = x.indrelid
         join pg_class i on i.oid = x.indexrelid
        where c.relnamespace = (select oid from pg_namespace where nspname = $1)
          and c.relname in (select unnest(p.tables) from chronicle.projections p)
        order by 1, 2`,
      [schema],
    )

  /** Puts every committed event in the log's order, so that a run has batches to fill. */
  const sequenceAll = async () => {
    while ((await h.one<{ pending: boolean }>("select chronicle.sequencer_pending() as pending")).pending)
      await h.query("select chronicle.sequence_events(null)")
  }

  /** Marks a run's worker as gone long ago, so that another daemon takes it over. */
  const resumeElsewhere = async (runId: string) => {
    await h.query(
      "update chronicle.projection_runs set heartbeat_at = now() - interval '1 minute' where id = $1",
      [runId],
    )
    const second = await engineOf(h)
    try {
      await second.run((p) => p.tick())
      for (let i = 0; i < 2_000; i++) {
        const run = await second.run((p) => p.run(runId))
        if (run.state !== "running") return run
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
      throw new Error("timed out waiting for the resumed run")
    } finally {
      await second.dispose()
    }
  }

  it("fills the shadow tables with only their primary keys, builds every index once caught up, and swaps them in under the live names", async () => {
    const live = await indexesIn("chronicle")
    expect(live.filter((i) => !i.primary).length).toBeGreaterThan(10)
    await sequenceAll()
    const engine = await engineOf(h)
    const whileFilling: Array<ReadonlyArray<IndexRow>> = []
    let beforeSwap: ReadonlyArray<IndexRow> = []
    const run = await engine.run((p) =>
      Effect.flatMap(p.startRebuild(), (r) =>
        p.execute(r.id, {
          batchSize: 40,
          onProgress: async (progress: Run) => {
            const shadow = await indexesIn(progress.schema)
            if (progress.phase === "done") return
            if (shadow.some((i) => !i.primary)) beforeSwap = shadow
            else {
              expect(beforeSwap).toEqual([])
              whileFilling.push(shadow)
            }
          },
        }),
      ),
    )
    await engine.dispose()
    expect(run.state).toBe("completed")

    // Reports of batches applied before the indexes were built: several (the log is longer
    // than a batch), each with the primary keys only.
    expect(whileFilling.length).toBeGreaterThan(1)
    for (const shadow of whileFilling) {
      expect(shadow.filter((i) => !i.primary)).toEqual([])
      expect(shadow.map((i) => i.table)).toEqual(live.filter((i) => i.primary).map((i) => i.table))
    }
    // Built in the shadow schema before the swap, under the live indexes' names.
    const strip = (rows: ReadonlyArray<IndexRow>) =>
      rows.map(({ table, name, definition }) => ({ table, name, definition }))
    expect(strip(beforeSwap)).toEqual(strip(live))
    // After the swap: the same indexes, the same names, and the rows of a fold of the log.
    expect(await indexesIn("chronicle")).toEqual(live)
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
  })

  it("ends with every index a run whose worker died before the indexes were built, or right after", async () => {
    const live = await indexesIn("chronicle")
    for (const when of ["filling", "indexed"] as const) {
      await sequenceAll()
      const first = await engineOf(h)
      const started = await first.run((p) =>
        p.startRebuild({ projections: ["sessions", "jobs", "activity"] }),
      )
      let batches = 0
      const died = await first.runtime.runPromiseExit(
        Effect.flatMap(Projections, (p) =>
          p.execute(started.id, {
            batchSize: 30,
            onProgress: async (progress) => {
              batches++
              const shadow = await indexesIn(progress.schema)
              const indexed = shadow.some((i) => !i.primary)
              if (when === "filling" && batches === 2) throw new Error("the worker died")
              if (when === "indexed" && indexed) throw new Error("the worker died")
            },
          }),
        ),
      )
      await first.dispose()
      expect(died._tag).toBe("Failure")
      const halfway = await h.one<{ state: string; schema: string }>(
        "select state, target_schema as schema from chronicle.projection_runs where id = $1",
        [started.id],
      )
      expect(halfway.state).toBe("running")
      const shadow = await indexesIn(halfway.schema)
      const tables = new Set(shadow.map((i) => i.table))
      const expected = live.filter((i) => tables.has(i.table))
      if (when === "filling") {
        expect(shadow.filter((i) => !i.primary)).toEqual([])
        // As a worker leaves it that dies while it builds the indexes: the phase says so, and
        // none of them was committed.
        await h.query("update chronicle.projection_runs set phase = 'indexing' where id = $1", [started.id])
      }
      // The indexes a dead worker built are committed, and stay with the run.
      else expect(shadow.map((i) => i.definition)).toEqual(expected.map((i) => i.definition))

      const done = await resumeElsewhere(started.id)
      expect(done.state).toBe("completed")
      expect(await indexesIn("chronicle")).toEqual(live)
      expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    }
  })

  it("gives a snapshot every index of the live tables", async () => {
    const live = await indexesIn("chronicle")
    const engine = await engineOf(h)
    const head = await h.run(Effect.flatMap(EventStore, (s) => s.head()))
    const label = `ix_${randomUUID().slice(0, 8)}`
    const run = await engine.run((p) =>
      Effect.flatMap(p.startSnapshot({ label, asOf: { cursor: head.cursor } }), (r) =>
        p.execute(r.id, { batchSize: 40 }),
      ),
    )
    expect(run.state).toBe("completed")
    const snapshot = await indexesIn(`analytics_asof_${label}`)
    expect(snapshot.map(({ table, name, definition }) => ({ table, name, definition }))).toEqual(
      live.map(({ table, name, definition }) => ({ table, name, definition })),
    )
    await engine.run((p) => p.dropSnapshot(label))
    await engine.dispose()
  })
})
