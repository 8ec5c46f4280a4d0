/**
 * The sequencer's passes are spaced (`minPassIntervalMs`): appends that commit back to back
 * share a pass instead of each paying one (a round trip and a commit), and a reader waiting for
 * its own appends (`flush`, as every read of the log does) is served at once, whatever the
 * spacing. Passes are counted by what they wrote: each is one transaction, so the event_seq rows
 * of one pass share their xmin.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore } from "../src/event-store.ts"
import { makeTestRuntime, type TestRuntime, testDatabases } from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const HOUR = 3_600_000
const APPENDS = 30

describe.each(testDatabases(env))("the sequencer's spacing of passes, on $name", (database) => {
  let runtime: TestRuntime
  const run = <A, E>(effect: Effect.Effect<A, E, EventStore | Database>) => runtime.runPromise(effect)
  // No poll, and passes an hour apart unless a reader waits: only the first append's pass and
  // the reads' own passes can sequence anything.
  beforeAll(async () => {
    runtime = makeTestRuntime(database.layer({ max: 4 }), {
      sequencer: { pollIntervalMs: HOUR, minPassIntervalMs: HOUR },
    })
    await run(Effect.void)
  })
  afterAll(() => runtime.dispose())

  const passesOver = (streamId: string) =>
    run(
      Effect.flatMap(Database, (db) =>
        db.query<{ events: number; passes: number }>(
          `select count(*)::int as events, count(distinct q.xmin::text)::int as passes
             from chronicle.event_seq q join chronicle.events e on e.global_position = q.global_position
            where e.stream_id = $1`,
          [streamId],
        ),
      ),
    ).then((rows) => rows[0]!)

  it("lets appends made back to back share passes, and serves a reader of its own appends at once", async () => {
    const streamId = "spacing-0b8c0f36-2a55-4d7e-9d3e-6f1c2a9b7e41"
    for (let i = 0; i < APPENDS; i++) {
      await run(
        Effect.flatMap(EventStore, (store) =>
          store.append(streamId, [{ type: "Appended", data: { i } }], { expectedVersion: i }),
        ),
      )
    }
    // Reading the log waits for this process's own appends to be sequenced: the pass it needs
    // runs now, not an hour after the last one.
    const page = await run(
      Effect.flatMap(EventStore, (store) => store.readAll({ streamIds: [streamId], limit: 100 })),
    )
    expect(page.events.map((e) => e.data)).toEqual(Array.from({ length: APPENDS }, (_, i) => ({ i })))
    const { events, passes } = await passesOver(streamId)
    expect(events).toBe(APPENDS)
    // The first append's pass runs at once (none ran before it); the rest wait for the read's.
    expect(passes).toBeLessThanOrEqual(2)
  })
})
