/**
 * The sequencer's idle check (chronicle.sequencer_pending, which it runs on every poll) does not
 * grow with the log: it finds its candidates through the (transaction_id, global_position)
 * index and reads no row of chronicle.events when nothing is pending. Checked by what the
 * statement reads (the backend's counters in pg_stat_xact_user_tables), not by timing.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore } from "../src/event-store.ts"
import { makeTestRuntime, type TestRuntime, testDatabases } from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const STREAMS = 100
const PER_STREAM = 1_000

describe.each(testDatabases(env))("the sequencer's cost on a large log, on $name", (database) => {
  let runtime: TestRuntime
  const run = <A, E>(effect: Effect.Effect<A, E, EventStore | Database>) => runtime.runPromise(effect)
  // Polls an hour apart: only the calls this test makes sequence anything.
  beforeAll(async () => {
    runtime = makeTestRuntime(database.layer({ max: 2 }), { sequencer: { pollIntervalMs: 3_600_000 } })
    // 100,000 events of about half a kilobyte (a log whose pages outnumber what one pass reads),
    // written by plain SQL (the store's append path is not under test here).
    await run(
      Effect.flatMap(Database, (db) =>
        db.query(
          `select count(*) from generate_series(1, ${STREAMS}) s,
             lateral chronicle.append_events(
               'bench-' || gen_random_uuid()::text, 'bench', 0,
               (select jsonb_agg(jsonb_build_object('event_id', gen_random_uuid(), 'type', 'Filled',
                                                    'data', jsonb_build_object('stream', s, 'i', i, 'text', repeat('x', 400))))
                  from generate_series(1, ${PER_STREAM}) i))`,
        ),
      ),
    )
    const [filled] = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ n: number }>("select count(*)::int as n from chronicle.events"),
      ),
    )
    expect(filled!.n).toBe(STREAMS * PER_STREAM)
    await run(Effect.flatMap(EventStore, (s) => s.sequenceAll()))
    await run(Effect.flatMap(Database, (db) => db.query("analyze chronicle.events")))
  }, 240_000)
  afterAll(() => runtime.dispose())

  /**
   * Runs `statement` in a transaction and returns how chronicle.events was read meanwhile: the
   * difference of the backend's counters read just before and just after it, in the same
   * transaction (they may still hold earlier transactions' counts not yet reported).
   */
  const reads = (statement: string) =>
    run(
      Effect.flatMap(Database, (db) =>
        db.transaction(
          Effect.gen(function* () {
            const counters = db
              .query<{ seq_scan: number; rows: number }>(
                `select seq_scan::int, (seq_tup_read + coalesce(idx_tup_fetch, 0))::int as rows
                   from pg_stat_xact_user_tables where schemaname = 'chronicle' and relname = 'events'`,
              )
              .pipe(Effect.map((rows) => rows[0]!))
            const before = yield* counters
            yield* db.query(statement)
            const after = yield* counters
            return { seq_scan: after.seq_scan - before.seq_scan, rows: after.rows - before.rows }
          }),
        ),
      ),
    )

  it("the idle check reads no row of the log when nothing is pending", async () => {
    for (let i = 0; i < 8; i++) {
      // Repeated: a cached generic plan must probe the index too.
      expect(await reads("select chronicle.sequencer_pending()")).toEqual({ seq_scan: 0, rows: 0 })
    }
  })
})
