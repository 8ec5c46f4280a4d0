/**
 * The log's order (chronicle.event_seq, assigned after commit by the sequencer): every reader
 * of the whole log sees each stream in version order, never skips an event that commits late,
 * is not held back by transactions in other databases, and resumes from any cursor it was
 * given with exactly what follows it.
 */
import { randomUUID } from "node:crypto"
import { Effect, Fiber, Stream } from "effect"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore, type RecordedEvent } from "../src/event-store.ts"
import {
  createPostgresDatabase,
  makeTestRuntime,
  postgresTestLayer,
  type TestRuntime,
  testDatabases,
} from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const postgresUrl = env.postgresUrl

const sessionId = () => `session-${randomUUID()}`
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Every event after `after`, paging with readAll (`limit` a page), in the order given. */
const readEverything = async (
  runtime: TestRuntime,
  after: string,
  streamIds?: ReadonlyArray<string>,
  limit = 97,
) => {
  const all: Array<RecordedEvent> = []
  let cursor = after
  for (;;) {
    const page = await runtime.runPromise(
      Effect.flatMap(EventStore, (s) => s.readAll({ after: cursor, limit, streamIds })),
    )
    all.push(...page.events)
    cursor = page.cursor
    if (page.caughtUp) return { events: all, cursor }
  }
}

/** Per stream, the versions in the order they were seen: strictly 1, 2, 3 … with no gap. */
const expectVersionOrder = (
  events: ReadonlyArray<RecordedEvent>,
  from: (stream: string) => number = () => 1,
) => {
  const byStream = new Map<string, Array<number>>()
  for (const e of events) byStream.set(e.streamId, [...(byStream.get(e.streamId) ?? []), e.version])
  for (const [stream, versions] of byStream) {
    const first = from(stream)
    expect(versions, stream).toEqual(versions.map((_, i) => first + i))
  }
}

describe.each(testDatabases(env))("the log's order on $name", (database) => {
  let runtime: TestRuntime
  const run = <A, E>(effect: Effect.Effect<A, E, EventStore | Database>) => runtime.runPromise(effect)

  beforeAll(async () => {
    runtime = makeTestRuntime(database.layer({ max: 24 }))
    await run(Effect.void)
  })
  afterAll(() => runtime.dispose())

  it("N writers on one stream (any, stream_exists, exact versions, inside caller transactions that wrote first) are seen in version order by every subscriber and reader", async () => {
    const target = sessionId()
    const start = await run(Effect.flatMap(EventStore, (s) => s.head()))
    await run(Effect.flatMap(EventStore, (s) => s.append(target, [{ type: "Opened", data: {} }])))
    const writers = 12
    const perWriter = database.name === "postgres" ? 25 : 10
    const expected = 1 + writers * perWriter
    const sides: Array<string> = Array.from({ length: writers }, sessionId)

    const subscriber = () =>
      runtime.runFork(
        Effect.flatMap(EventStore, (s) =>
          s
            .subscribe({ after: start.cursor, streamIds: [target] })
            .pipe(Stream.take(expected), Stream.runCollect),
        ),
      )
    const followers = [subscriber(), subscriber()]

    const writer = (w: number) =>
      run(
        Effect.gen(function* () {
          const store = yield* EventStore
          const db = yield* Database
          for (let i = 0; i < perWriter; i++) {
            const event = { type: "Written", data: { w, i } }
            switch (w % 4) {
              case 0:
                yield* store.append(target, [event], { expectedVersion: "any" })
                break
              case 1:
                yield* store.append(target, [event], { expectedVersion: "stream_exists" })
                break
              case 2: {
                // Exact versions: read, then append expecting it; a lost race is decided again.
                for (;;) {
                  const info = yield* store.streamInfo(target)
                  const version = info._tag === "Some" ? info.value.version : 0
                  const done = yield* store.append(target, [event], { expectedVersion: version }).pipe(
                    Effect.as(true),
                    Effect.catchTag("VersionConflict", () => Effect.succeed(false)),
                  )
                  if (done) break
                }
                break
              }
              default:
                // A caller's transaction that wrote first: its transaction id is older than
                // the appends that take the stream's lock while it waits.
                yield* db.transaction(
                  Effect.gen(function* () {
                    yield* store.append(sides[w]!, [{ type: "Side", data: { w, i } }])
                    yield* Effect.sleep("3 millis")
                    yield* store.append(target, [event])
                  }),
                )
            }
          }
        }),
      )
    await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)))

    for (const follower of followers) {
      const seen = Array.from(await runtime.runPromise(Fiber.join(follower)))
      expect(seen.map((e) => e.version)).toEqual(Array.from({ length: expected }, (_, i) => i + 1))
    }
    const paged = await readEverything(runtime, start.cursor)
    const ids = paged.events.map((e) => e.eventId)
    expect(new Set(ids).size).toBe(ids.length)
    expect(paged.events.filter((e) => e.streamId === target)).toHaveLength(expected)
    expectVersionOrder(paged.events)

    if (database.name === "postgres") {
      // The workload is the one that broke the old order: ordered by (transaction id, global
      // position), the target stream's versions go backwards.
      const [inverted] = await run(
        Effect.flatMap(Database, (db) =>
          db.query<{ n: number }>(
            `select count(*)::int as n from (
               select stream_version < lag(stream_version) over (order by transaction_id, global_position) as back
                 from chronicle.events where stream_id = $1) x
              where back`,
            [target],
          ),
        ),
      )
      expect(inverted!.n).toBeGreaterThan(0)
    }
  }, 120_000)

  it("late commits and aborted transactions: a reader resuming from any cursor gets exactly what follows it", async () => {
    const start = await run(Effect.flatMap(EventStore, (s) => s.head()))
    const streams = Array.from({ length: 6 }, sessionId)
    const writers = streams.map((stream, w) =>
      run(
        Effect.gen(function* () {
          const store = yield* EventStore
          const db = yield* Database
          for (let i = 0; i < 12; i++) {
            if (i % 4 === 3) {
              // An aborted transaction: its events never exist.
              yield* db
                .transaction(
                  Effect.gen(function* () {
                    yield* store.append(stream, [{ type: "Aborted", data: { w, i } }])
                    return yield* Effect.fail("abort" as const)
                  }),
                )
                .pipe(Effect.ignore)
            } else if (i % 4 === 1) {
              // A late commit: its position is taken now, its commit comes later.
              yield* db.transaction(
                Effect.gen(function* () {
                  yield* store.append(stream, [{ type: "Late", data: { w, i } }])
                  yield* Effect.sleep("40 millis")
                }),
              )
            } else {
              yield* store.append(stream, [{ type: "Plain", data: { w, i } }])
            }
          }
        }),
      ),
    )
    // A follower that reads as the writers write.
    const live: Array<RecordedEvent> = []
    const follower = runtime.runFork(
      Effect.flatMap(EventStore, (s) =>
        s.subscribe({ after: start.cursor, streamIds: streams }).pipe(
          Stream.take(6 * 9),
          Stream.runForEach((e) => Effect.sync(() => live.push(e))),
        ),
      ),
    )
    await Promise.all(writers)
    await runtime.runPromise(Fiber.join(follower))

    const all = await readEverything(runtime, start.cursor, streams)
    expect(all.events.map((e) => e.eventId)).toEqual(live.map((e) => e.eventId))
    expect(all.events.filter((e) => e.type === "Aborted")).toEqual([])
    expect(all.events).toHaveLength(6 * 9)
    expectVersionOrder(all.events)
    // From every cursor handed out, the rest is exactly the suffix after that event.
    for (const [i, event] of all.events.entries()) {
      if (i % 5 !== 0) continue
      const rest = await readEverything(runtime, event.cursor!, streams, 11)
      expect(rest.events.map((e) => e.eventId)).toEqual(all.events.slice(i + 1).map((e) => e.eventId))
    }
  }, 120_000)

  it("refuses a cursor from before the log had its own order, saying why", async () => {
    const exit = await runtime.runPromiseExit(
      Effect.flatMap(EventStore, (s) => s.readAll({ after: "812:1044" })),
    )
    expect(JSON.stringify(exit)).toContain("before the log had its own order")
  })
})

describe.runIf(postgresUrl !== null)("the log's order on Postgres, across processes and databases", () => {
  let runtime: TestRuntime
  let second: TestRuntime
  let url: string
  let drop: () => Promise<void>
  beforeAll(async () => {
    const created = await createPostgresDatabase(postgresUrl!)
    url = created.url
    drop = created.drop
    const { Layer } = await import("effect")
    const { migrate } = await import("../src/migrations.ts")
    const layer = () =>
      Layer.effectDiscard(migrate().pipe(Effect.orDie)).pipe(
        Layer.provideMerge(Database.layerPostgres({ url, max: 8 }).pipe(Layer.orDie)),
      )
    runtime = makeTestRuntime(layer())
    await runtime.runPromise(Effect.void)
    second = makeTestRuntime(layer())
    await second.runPromise(Effect.void)
  })
  afterAll(async () => {
    await second?.dispose()
    await runtime?.dispose()
    await drop?.()
  })

  it("a long writing transaction in another database does not hold back a follower", async () => {
    const elsewhere = await createPostgresDatabase(postgresUrl!)
    const sql = postgres(elsewhere.url, { max: 1, onnotice: () => {} })
    try {
      const start = await runtime.runPromise(Effect.flatMap(EventStore, (s) => s.head()))
      const stream = sessionId()
      let release!: () => void
      const released = new Promise<void>((resolve) => (release = resolve))
      let opened!: () => void
      const isOpen = new Promise<void>((resolve) => (opened = resolve))
      // A bulk load elsewhere on the server: it has written, and it stays open.
      const longTransaction = sql.begin(async (tx) => {
        await tx`create table bulk (n int)`
        await tx`insert into bulk select generate_series(1, 1000)`
        opened()
        await released
      })
      await isOpen
      let deliveredWhileOpen = false
      const follower = runtime.runFork(
        Effect.flatMap(EventStore, (s) =>
          s.subscribe({ after: start.cursor, streamIds: [stream] }).pipe(Stream.take(1), Stream.runCollect),
        ),
      )
      const before = performance.now()
      // Appended by the other process: the sequencing one finds it by its poll.
      await second.runPromise(
        Effect.flatMap(EventStore, (s) => s.append(stream, [{ type: "Here", data: {} }])),
      )
      const seen = await runtime.runPromise(Fiber.join(follower))
      const delay = performance.now() - before
      deliveredWhileOpen = true
      release()
      await longTransaction
      expect(Array.from(seen).map((e) => e.streamId)).toEqual([stream])
      expect(deliveredWhileOpen).toBe(true)
      console.log(
        `[log order] delivered in ${delay.toFixed(1)} ms while another database's transaction stayed open`,
      )
    } finally {
      await sql.end({ timeout: 1 })
      await elsewhere.drop()
    }
  })

  it("a long transaction in this database holds back only its own events, and they are never skipped", async () => {
    const start = await runtime.runPromise(Effect.flatMap(EventStore, (s) => s.head()))
    const held = sessionId()
    const others = Array.from({ length: 4 }, sessionId)
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    let inserted!: () => void
    const hasInserted = new Promise<void>((resolve) => (inserted = resolve))
    const long = runtime.runPromise(
      Effect.gen(function* () {
        const db = yield* Database
        const store = yield* EventStore
        yield* db.transaction(
          Effect.gen(function* () {
            yield* store.append(held, [{ type: "Held", data: {} }])
            yield* Effect.sync(() => inserted())
            yield* Effect.promise(() => released)
          }),
        )
      }),
    )
    await hasInserted
    for (const stream of others) {
      await second.runPromise(
        Effect.flatMap(EventStore, (s) => s.append(stream, [{ type: "Meanwhile", data: {} }])),
      )
    }
    const meanwhile = await readEverything(second, start.cursor, [held, ...others])
    expect(meanwhile.events.map((e) => e.type)).toEqual(others.map(() => "Meanwhile"))
    release()
    await long
    const after = await readEverything(runtime, meanwhile.cursor, [held, ...others])
    expect(after.events.map((e) => [e.streamId, e.type])).toEqual([[held, "Held"]])
  })

  it("sequences once, in global position order, events restored from another server (foreign transaction ids)", async () => {
    const restored = sessionId()
    const result = await runtime.runPromise(
      Effect.gen(function* () {
        const db = yield* Database
        const store = yield* EventStore
        const before = yield* store.head()
        // What pg_restore of another server's dump leaves: events whose transaction ids belong
        // to that server, and a sequencer row whose horizon is that server's.
        yield* db.query(
          `insert into chronicle.streams (stream_id, stream_type, version) values ($1, 'session', 2)`,
          [restored],
        )
        yield* db.query(
          `insert into chronicle.events (transaction_id, stream_id, stream_version, event_id, type, data)
           select '9000000000'::xid8, $1, v, gen_random_uuid(), 'Restored', '{}'::jsonb from generate_series(1, 2) v`,
          [restored],
        )
        yield* db.query(
          "update chronicle.sequencer set system_id = 1, horizon_xmax = '9999999999'::xid8, horizon_xip = '{}'",
        )
        // A new append on this server is ordered after them.
        yield* store.append(restored, [{ type: "New", data: {} }], { expectedVersion: 2 })
        const page = yield* store.readAll({ after: before.cursor, streamIds: [restored] })
        const [state] = yield* db.query<{ system_id: string | null }>(
          "select system_id::text from chronicle.sequencer",
        )
        return { page, state }
      }),
    )
    expect(result.page.events.map((e) => [e.type, e.version])).toEqual([
      ["Restored", 1],
      ["Restored", 2],
      ["New", 3],
    ])
    expect(result.state?.system_id).not.toBe("1")
  })
})

describe.runIf(postgresUrl !== null)("the log's order: events another writer left unsequenced (Postgres)", () => {
  // Two processes that only sequence when poked or asked (their idle poll is an hour away), and
  // a third writer that appends through SQL alone, as `chronicle import` does: nobody pokes.
  let holder: TestRuntime
  let reader: TestRuntime
  let sql: postgres.Sql
  let drop: () => Promise<void>
  beforeAll(async () => {
    const created = await createPostgresDatabase(postgresUrl!)
    drop = created.drop
    const { Layer } = await import("effect")
    const { migrate } = await import("../src/migrations.ts")
    const layer = () =>
      Layer.effectDiscard(migrate().pipe(Effect.orDie)).pipe(
        Layer.provideMerge(Database.layerPostgres({ url: created.url, max: 4 }).pipe(Layer.orDie)),
      )
    const options = { sequencer: { pollIntervalMs: 3_600_000 } }
    holder = makeTestRuntime(layer(), options)
    await holder.runPromise(Effect.void)
    reader = makeTestRuntime(layer(), options)
    await reader.runPromise(Effect.void)
    sql = postgres(created.url, { max: 1, onnotice: () => {} })
  })
  afterAll(async () => {
    await sql?.end({ timeout: 1 })
    await reader?.dispose()
    await holder?.dispose()
    await drop?.()
  })

  it("sequenceAll() puts every event committed before it in the order, whoever wrote it and whoever holds the lease", async () => {
    const start = await reader.runPromise(Effect.flatMap(EventStore, (s) => s.head()))
    const streams = Array.from({ length: 3 }, sessionId)
    for (const stream of streams)
      await sql`select * from chronicle.append_events(${stream}, 'session', null,
        ${JSON.stringify(["A", "B"].map((type) => ({ event_id: randomUUID(), type, data: {} })))}::text::jsonb)`
    // Without being asked, neither process has ordered them: a reader of the log sees nothing.
    const unasked = await readEverything(reader, start.cursor, streams)
    expect(unasked.events).toEqual([])
    // The process without the lease is asked for the whole log as it stands.
    await reader.runPromise(Effect.flatMap(EventStore, (s) => s.sequenceAll()))
    const all = await readEverything(reader, start.cursor, streams)
    expect(all.events.map((e) => `${e.streamId}:${e.version}`)).toEqual(
      streams.flatMap((s) => [`${s}:1`, `${s}:2`]),
    )
    // And once more from the lease holder: nothing new, nothing twice.
    await holder.runPromise(Effect.flatMap(EventStore, (s) => s.sequenceAll()))
    expect((await readEverything(holder, start.cursor, streams)).events).toHaveLength(6)
  })
})

describe.runIf(postgresUrl !== null)("the log's order: the old order key, for comparison (Postgres)", () => {
  let runtime: TestRuntime
  beforeAll(async () => {
    runtime = makeTestRuntime(postgresTestLayer(postgresUrl!, { max: 4 }))
    await runtime.runPromise(Effect.void)
  })
  afterAll(() => runtime.dispose())

  it("a naive `global_position > last` reader skips the late event; the store's reader gives the early one at once and the late one when it commits", async () => {
    const early = sessionId()
    const late = sessionId()
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
    // The log's order has the early event: an open transaction holds back only its own.
    expect(storeFirst.events.map((e) => e.streamId)).toEqual([early])

    releaseLate()
    await lateWriter
    await sleep(0)

    const naiveSecond = await naive(Number(naiveFirst.at(-1)!.p))
    expect(naiveSecond).toEqual([]) // the late event is lost to this reader for good
    const storeSecond = await runtime.runPromise(
      Effect.flatMap(EventStore, (s) => s.readAll({ after: storeFirst.cursor, streamIds: [early, late] })),
    )
    expect(storeSecond.events.map((e) => e.streamId)).toEqual([late])
  })
})
