import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore } from "../src/event-store.ts"
import { makeTestRuntime, postgresTestLayer, type TestRuntime } from "../src/testing.ts"

const postgresUrl = inject("postgresUrl")

// Two transactions open at once are only possible on a server: the embedded database runs
// one transaction at a time, so there a late commit cannot overtake an early one (the
// event-store tests check that it does not skip either).
describe.runIf(postgresUrl !== null)("reading the log under a late commit (Postgres)", () => {
  let runtime: TestRuntime
  beforeAll(async () => {
    runtime = makeTestRuntime(postgresTestLayer(postgresUrl!, { max: 4 }))
    await runtime.runPromise(Effect.void)
  })
  afterAll(() => runtime.dispose())

  it("a naive `global_position > last` reader skips the late event; the store's reader does not", async () => {
    const early = `session-${randomUUID()}`
    const late = `session-${randomUUID()}`
    const start = await runtime.runPromise(Effect.flatMap(EventStore, (s) => s.head()))

    const naive = (after: number) =>
      runtime.runPromise(
        Effect.flatMap(Database, (db) =>
          db.query<{ p: string; stream_id: string }>(
            `select global_position::text as p, stream_id from chronicle.events
              where global_position > $1 and stream_id in ($2, $3) order by global_position`,
            [after, early, late],
          ),
        ),
      )

    let releaseLate!: () => void
    const lateMayCommit = new Promise<void>((resolve) => (releaseLate = resolve))
    let lateInserted!: () => void
    const lateHasInserted = new Promise<void>((resolve) => (lateInserted = resolve))

    // The late writer takes its position first and commits last.
    const lateWriter = runtime.runPromise(
      Effect.gen(function* () {
        const db = yield* Database
        const store = yield* EventStore
        yield* db.transaction(
          Effect.gen(function* () {
            yield* store.append(late, [{ type: "Late", data: {} }])
            yield* Effect.sync(() => lateInserted())
            yield* Effect.promise(() => lateMayCommit)
          }),
        )
      }),
    )
    await lateHasInserted
    await runtime.runPromise(
      Effect.flatMap(EventStore, (s) => s.append(early, [{ type: "Early", data: {} }])),
    )

    // Both readers look now: the early event is committed, the late one is not.
    const naiveFirst = await naive(start.globalPosition)
    expect(naiveFirst.map((r) => r.stream_id)).toEqual([early])
    const storeFirst = await runtime.runPromise(
      Effect.flatMap(EventStore, (s) => s.readAll({ after: start.cursor, streamIds: [early, late] })),
    )
    // The store holds back everything behind the open transaction rather than skip it.
    expect(storeFirst.events).toEqual([])

    releaseLate()
    await lateWriter

    const naiveSecond = await naive(Number(naiveFirst.at(-1)!.p))
    expect(naiveSecond).toEqual([]) // the late event is lost to this reader for good
    const storeSecond = await runtime.runPromise(
      Effect.flatMap(EventStore, (s) => s.readAll({ after: storeFirst.cursor, streamIds: [early, late] })),
    )
    expect(storeSecond.events.map((e) => e.streamId)).toEqual([late, early])
  })
})
