/**
 * Group commit: appends that arrive while others are being committed share a transaction (one
 * commit, one WAL flush), and each keeps its own version check, its own atomicity and its own
 * error. An append on an idle store runs alone, at once.
 */
import { randomUUID } from "node:crypto"
import { Effect, Exit } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore } from "../src/event-store.ts"
import { makeTestRuntime, type TestRuntime, testDatabases } from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const sessionId = () => `session-${randomUUID()}`

describe.each(testDatabases(env))("group commit on $name", (database) => {
  let runtime: TestRuntime
  const run = <A, E>(effect: Effect.Effect<A, E, EventStore | Database>) => runtime.runPromise(effect)
  // One slot: everything that arrives while an append is in flight waits for the next group.
  beforeAll(async () => {
    runtime = makeTestRuntime(database.layer({ max: 8 }), { groupCommit: { slots: 1, maxGroup: 50 } })
    await run(Effect.void)
  })
  afterAll(() => runtime.dispose())

  const transactionsOf = (streams: ReadonlyArray<string>) =>
    run(
      Effect.flatMap(Database, (db) =>
        db.query<{ n: number }>(
          "select count(distinct transaction_id)::int as n from chronicle.events where stream_id = any ($1::text[]) and type = 'Written'",
          [streams],
        ),
      ),
    ).then((rows) => rows[0]!.n)

  it("concurrent appends share transactions; a conflicting or invalid one fails alone, its neighbours commit", async () => {
    const streams = Array.from({ length: 40 }, sessionId)
    // Every stream exists at version 1.
    for (const s of streams)
      await run(Effect.flatMap(EventStore, (st) => st.append(s, [{ type: "Opened", data: {} }])))
    const exits = await Promise.all(
      streams.map((s, i) =>
        runtime.runPromiseExit(
          Effect.flatMap(EventStore, (st) =>
            st.append(
              s,
              // Every fifth expects a version its stream is not at; the rest expect the right one.
              [
                { type: "Written", data: { i } },
                { type: "Written", data: { i, second: true } },
              ],
              { expectedVersion: i % 5 === 0 ? 7 : 1 },
            ),
          ),
        ),
      ),
    )
    for (const [i, exit] of exits.entries()) {
      if (i % 5 === 0) {
        expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("VersionConflict")
      } else {
        expect(Exit.isSuccess(exit) && exit.value.events.map((e) => e.version)).toEqual([2, 3])
      }
    }
    // The conflicting ones wrote nothing, the others both of their events.
    const [counts] = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ failed: number; written: number }>(
          `select count(*) filter (where s.version = 1)::int as failed, count(*) filter (where s.version = 3)::int as written
             from chronicle.streams s where s.stream_id = any ($1::text[])`,
          [streams],
        ),
      ),
    )
    expect(counts).toEqual({ failed: 8, written: 32 })
    if (database.name === "postgres") {
      // 32 appends in fewer transactions than appends: they were grouped.
      const written = streams.filter((_, i) => i % 5 !== 0)
      const transactions = await transactionsOf(written)
      expect(transactions).toBeLessThan(16)
      console.log(`[group commit] 32 concurrent appends committed in ${transactions} transactions`)
    }
  })

  it("a retried batch inside a group returns its first result and writes nothing", async () => {
    const stream = sessionId()
    const first = await run(
      Effect.flatMap(EventStore, (st) =>
        st.append(stream, [{ type: "Once", data: {} }], { idempotencyKey: "k1" }),
      ),
    )
    const again = await Promise.all(
      Array.from({ length: 10 }, () =>
        run(
          Effect.flatMap(EventStore, (st) =>
            st.append(stream, [{ type: "Once", data: {} }], { idempotencyKey: "k1" }),
          ),
        ),
      ),
    )
    expect(again.every((r) => r.duplicate && r.events[0]!.eventId === first.events[0]!.eventId)).toBe(true)
    const page = await run(Effect.flatMap(EventStore, (st) => st.readStream(stream)))
    expect(page.events).toHaveLength(1)
  })
})
