/**
 * The live tail: every subscription of a process is served by one reader of the head, so idle
 * subscriptions cost the database nothing more than one does, and filtered ones never re-scan
 * the log; a subscription behind what the tail keeps reads its own pages until it catches up.
 */
import { randomUUID } from "node:crypto"
import { Effect, Fiber, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore } from "../src/event-store.ts"
import { makeTestRuntime, type TestRuntime, testDatabases } from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

describe.each(testDatabases(env))("the live tail on $name", (database) => {
  let runtime: TestRuntime
  let statements = 0
  beforeAll(async () => {
    // The real database, with every statement the store sends counted.
    const counted = Layer.effect(
      Database,
      Effect.map(Database, (db) => ({
        ...db,
        query: <Row>(text: string, params?: ReadonlyArray<unknown>) =>
          Effect.suspend(() => {
            statements++
            return db.query<Row>(text, params)
          }),
      })),
    ).pipe(Layer.provide(database.layer({ max: 8 })))
    runtime = makeTestRuntime(counted, { pollIntervalMs: 200, tail: { maxEvents: 50 } })
    await runtime.runPromise(Effect.void)
  })
  afterAll(() => runtime.dispose())

  const idle = async (subscribers: number, ms: number) => {
    const fibers = Array.from({ length: subscribers }, () =>
      runtime.runFork(
        Effect.flatMap(EventStore, (s) =>
          s.subscribe({ streamIds: [`session-${randomUUID()}`] }).pipe(Stream.runDrain),
        ),
      ),
    )
    await sleep(300)
    const before = statements
    await sleep(ms)
    const sent = statements - before
    await Promise.all(fibers.map((f) => runtime.runPromise(Fiber.interrupt(f))))
    return sent
  }

  it("a thousand idle subscriptions cost the database what one does", async () => {
    await runtime.runPromise(Effect.flatMap(EventStore, (s) => s.head()))
    const one = await idle(1, 2000)
    const many = await idle(1000, 2000)
    console.log(`[tail] statements in 2 s: ${one} with 1 idle subscription, ${many} with 1,000`)
    expect(many).toBeLessThanOrEqual(Math.ceil(one * 1.5) + 10)
  }, 60_000)

  it("serves filtered and unfiltered subscribers from one read, and one behind the tail from the log", async () => {
    const mine = `session-${randomUUID()}`
    const start = await runtime.runPromise(Effect.flatMap(EventStore, (s) => s.head()))
    const collect = (options: { streamIds?: Array<string> }, n: number, after = start.cursor) =>
      runtime.runFork(
        Effect.flatMap(EventStore, (s) =>
          s.subscribe({ after, ...options }).pipe(Stream.take(n), Stream.runCollect),
        ),
      )
    const all = collect({}, 120)
    const filtered = collect({ streamIds: [mine] }, 20)
    await sleep(200)
    for (let i = 0; i < 100; i++) {
      await runtime.runPromise(
        Effect.flatMap(EventStore, (s) =>
          s.append(`session-${randomUUID()}`, [{ type: "Other", data: { i } }]),
        ),
      )
    }
    for (let i = 0; i < 20; i++) {
      await runtime.runPromise(
        Effect.flatMap(EventStore, (s) => s.append(mine, [{ type: "Mine", data: { i } }])),
      )
    }
    const everything = Array.from(await runtime.runPromise(Fiber.join(all)))
    const onlyMine = Array.from(await runtime.runPromise(Fiber.join(filtered)))
    expect(everything.map((e) => Number(e.cursor))).toEqual(
      everything.map((_, i) => Number(start.cursor) + i + 1),
    )
    expect(onlyMine.map((e) => e.version)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    // The tail keeps 50 events: a subscriber from the start reads the log, then joins the tail.
    const late = Array.from(await runtime.runPromise(Fiber.join(collect({}, 120))))
    expect(late.map((e) => e.eventId)).toEqual(everything.map((e) => e.eventId))
  }, 60_000)
})
