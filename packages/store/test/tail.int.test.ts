/**
 * The live tail: every subscription of a process is served by one reader of the head, so idle
 * subscriptions cost the database nothing more than one does, and filtered ones never re-scan
 * the log; a subscription behind what the tail keeps reads its own pages until it catches up.
 */
import { randomUUID } from "node:crypto"
import { Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore, type RecordedEvent, type SubscribeOptions } from "../src/event-store.ts"
import { makeTestRuntime, type TestRuntime, testDatabases } from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const HOUR = 60 * 60 * 1000
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

/**
 * Live subscribers under writes: however many a process holds, each appended event costs the
 * database one read of the log, and an event reaches them on the wake-up its sequencing sends,
 * never on a poll. The polls (the tail's and the sequencer's) are an hour here: a delivery that
 * waited for one would time the test out.
 */
describe.each(testDatabases(env))("live subscribers under writes on $name", (database) => {
  let runtime: TestRuntime
  let logReads = 0
  beforeAll(async () => {
    // The real database; the statements that read the log (`chronicle.event_seq`) are counted.
    const counted = Layer.effect(
      Database,
      Effect.map(Database, (db) => ({
        ...db,
        query: <Row>(text: string, params?: ReadonlyArray<unknown>) =>
          Effect.suspend(() => {
            if (text.includes("chronicle.event_seq")) logReads++
            return db.query<Row>(text, params)
          }),
      })),
    ).pipe(Layer.provide(database.layer({ max: 8 })))
    runtime = makeTestRuntime(counted, {
      pollIntervalMs: HOUR,
      sequencer: { pollIntervalMs: HOUR },
      tail: { maxEvents: 50 },
    })
    await runtime.runPromise(Effect.void)
  })
  afterAll(() => runtime.dispose())

  const store = <A, E>(f: (s: EventStore["Service"]) => Effect.Effect<A, E>) =>
    runtime.runPromise(Effect.flatMap(EventStore, f))

  /** Subscribers that count what they receive; `until(n)` resolves once each has had n. */
  const subscribers = (count: number, options: SubscribeOptions) => {
    const received: Array<Array<RecordedEvent>> = Array.from({ length: count }, () => [])
    const waiters: Array<{ n: number; resolve: () => void }> = []
    const check = () => {
      for (const w of [...waiters]) {
        if (received.every((r) => r.length >= w.n)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve()
        }
      }
    }
    const fibers = received.map((mine) =>
      runtime.runFork(
        Effect.flatMap(EventStore, (s) =>
          s.subscribe(options).pipe(
            Stream.runForEach((event) =>
              Effect.sync(() => {
                mine.push(event)
                check()
              }),
            ),
          ),
        ),
      ),
    )
    return {
      received,
      until: (n: number) =>
        new Promise<void>((resolve) => {
          waiters.push({ n, resolve })
          check()
        }),
      stop: () => Promise.all(fibers.map((f) => runtime.runPromise(Fiber.interrupt(f)))),
    }
  }

  it("a hundred live subscribers cost one read of the log per appended event", async () => {
    const mine = `session-${randomUUID()}`
    const start = await store((s) => s.head())
    const all = subscribers(50, { after: start.cursor })
    const byStream = subscribers(25, { after: start.cursor, streamIds: [mine] })
    const byType = subscribers(25, { after: start.cursor, types: ["Counted"] })
    // A first event every subscriber receives: from here on all of them follow the tail.
    await store((s) => s.append(mine, [{ type: "Counted", data: { i: 0 } }]))
    await Promise.all([all.until(1), byStream.until(1), byType.until(1)])

    const before = logReads
    const appended = 20
    for (let i = 1; i <= appended; i++) {
      await store((s) => s.append(mine, [{ type: i % 2 === 0 ? "Counted" : "Other", data: { i } }]))
      await Promise.all([all.until(i + 1), byStream.until(i + 1), byType.until(1 + Math.floor(i / 2))])
    }
    const reads = logReads - before
    await Promise.all([all.stop(), byStream.stop(), byType.stop()])

    console.log(`[tail] ${reads} reads of the log for ${appended} events and 100 live subscribers`)
    expect(reads).toBe(appended)
    const versions = (r: ReadonlyArray<RecordedEvent>) => r.map((e) => e.version)
    for (const r of [...all.received, ...byStream.received]) {
      expect(versions(r)).toEqual(Array.from({ length: appended + 1 }, (_, i) => i + 1))
    }
    for (const r of byType.received) {
      expect(r.every((e) => e.type === "Counted")).toBe(true)
      expect(versions(r)).toEqual(Array.from({ length: 1 + appended / 2 }, (_, i) => 1 + 2 * i))
    }
  }, 60_000)

  it("a subscriber that stops reading delays nobody, holds one page, and resumes where it stopped", async () => {
    const mine = `session-${randomUUID()}`
    const start = await store((s) => s.head())
    const others = subscribers(10, { after: start.cursor, streamIds: [mine] })
    const stopped = await runtime.runPromise(Deferred.make<ReadonlyArray<RecordedEvent>>())
    const resume = await runtime.runPromise(Deferred.make<void>())
    const pulls: Array<number> = []
    // The slow subscriber pulls by hand: once, then not until told, then to the end.
    const slow = runtime.runFork(
      Effect.scoped(
        Effect.gen(function* () {
          const s = yield* EventStore
          const pull = yield* Stream.toPull(s.subscribe({ after: start.cursor, streamIds: [mine] }))
          const got: Array<RecordedEvent> = [...(yield* pull)]
          pulls.push(got.length)
          yield* Deferred.succeed(stopped, got)
          yield* Deferred.await(resume)
          while (got.length < 150) {
            const page = yield* pull
            pulls.push(page.length)
            got.push(...page)
          }
          return got
        }),
      ),
    )
    await store((s) => s.append(mine, [{ type: "First", data: {} }]))
    expect((await runtime.runPromise(Deferred.await(stopped))).map((e) => e.version)).toEqual([1])
    // 149 more while it reads nothing: three times what the tail keeps.
    for (let i = 2; i <= 150; i++) await store((s) => s.append(mine, [{ type: "Next", data: { i } }]))
    await others.until(150)
    await others.stop()
    for (const r of others.received) {
      expect(r.map((e) => e.version)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1))
    }
    await runtime.runPromise(Deferred.succeed(resume, undefined))
    const got = await runtime.runPromise(Fiber.join(slow))
    expect(got.map((e) => e.version)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1))
    expect(Math.max(...pulls)).toBeLessThanOrEqual(100)
  }, 60_000)

  // The embedded database runs one transaction at a time: no other can commit while one is open,
  // so this case exists on Postgres only (defined there, not skipped here).
  if (database.name === "postgres")
    it("an event committed while another transaction is open is delivered at once, and that transaction's events after it once it commits", async () => {
      const held = `session-${randomUUID()}`
      const mine = `session-${randomUUID()}`
      const start = await store((s) => s.head())
      const subs = subscribers(3, { after: start.cursor })
      const release = await runtime.runPromise(Deferred.make<void>())
      const opened = await runtime.runPromise(Deferred.make<void>())
      // Another writer's transaction: its event has its transaction id, and it stays open.
      const holder = runtime.runFork(
        Effect.gen(function* () {
          const db = yield* Database
          const s = yield* EventStore
          yield* db.transaction(
            Effect.gen(function* () {
              yield* s.append(held, [{ type: "Held", data: {} }])
              yield* Deferred.succeed(opened, undefined)
              yield* Deferred.await(release)
            }),
          )
        }),
      )
      await runtime.runPromise(Deferred.await(opened))

      await store((s) => s.append(mine, [{ type: "Committed", data: {} }]))
      await subs.until(1)
      const open = await runtime.runPromise(
        Effect.flatMap(Database, (db) =>
          db.query<{ n: number }>(
            "select count(*)::int as n from pg_stat_activity where state like 'idle in transaction%' and datname = current_database()",
          ),
        ),
      )
      // The other transaction was still open when the event arrived.
      expect(open[0]?.n).toBeGreaterThanOrEqual(1)

      await runtime.runPromise(Deferred.succeed(release, undefined))
      await runtime.runPromise(Fiber.join(holder))
      await subs.until(2)
      await subs.stop()
      for (const r of subs.received) {
        expect(r.map((e) => e.streamId)).toEqual([mine, held])
        expect(r.map((e) => e.cursor)).toEqual([
          String(BigInt(start.cursor) + 1n),
          String(BigInt(start.cursor) + 2n),
        ])
      }
    }, 60_000)
})
