import { randomUUID } from "node:crypto"
import { Cause, Effect, Exit, Fiber, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { BATCH_SIZE_KEY, EventStore, type NewEvent, type RecordedEvent } from "../src/event-store.ts"
import { makeTestRuntime, type TestRuntime, testDatabases } from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const sessionId = () => `session-${randomUUID()}`
const events = (n: number, type = "MessageAppended"): Array<NewEvent> =>
  Array.from({ length: n }, (_, i) => ({ type, data: { n: i, text: `message ${i}` } }))

/** The failure of an effect that must fail, or a test failure when it succeeded. */
const failureOf = async <E>(
  runtime: TestRuntime,
  effect: Effect.Effect<unknown, E, EventStore | Database>,
) => {
  const exit = await runtime.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return error.value
}

const countEvents = (runtime: TestRuntime) =>
  runtime.runPromise(
    Effect.flatMap(Database, (db) =>
      db.query<{ n: number }>("select count(*)::int as n from chronicle.events"),
    ).pipe(Effect.map((rows) => rows[0]!.n)),
  )

describe.each(testDatabases(env))("EventStore on $name", (database) => {
  let runtime: TestRuntime
  const run = <A, E>(effect: Effect.Effect<A, E, EventStore | Database>) => runtime.runPromise(effect)
  const store = EventStore

  beforeAll(async () => {
    runtime = makeTestRuntime(database.layer({ max: 20 }), { maxBatchSize: 50 })
    await run(Effect.void)
  })
  afterAll(() => runtime.dispose())

  it("appends a batch and reads it back in order, with versions 1..n", async () => {
    const id = sessionId()
    const ownerId = randomUUID()
    const result = await run(
      Effect.flatMap(store, (s) => s.append(id, events(3), { expectedVersion: "no_stream", ownerId })),
    )
    expect(result.version).toBe(3)
    expect(result.duplicate).toBe(false)
    expect(result.events.map((e) => e.version)).toEqual([1, 2, 3])

    const page = await run(Effect.flatMap(store, (s) => s.readStream(id)))
    expect(page.version).toBe(3)
    expect(page.nextVersion).toBeUndefined()
    expect(page.events.map((e) => [e.version, e.type, e.data])).toEqual([
      [1, "MessageAppended", { n: 0, text: "message 0" }],
      [2, "MessageAppended", { n: 1, text: "message 1" }],
      [3, "MessageAppended", { n: 2, text: "message 2" }],
    ])
    expect(page.events.map((e) => e.eventId)).toEqual(result.events.map((e) => e.eventId))
    expect(page.events[0]!.recordedAt).toBeInstanceOf(Date)

    const info = await run(Effect.flatMap(store, (s) => s.streamInfo(id)))
    expect(info._tag).toBe("Some")
    if (info._tag === "Some") {
      expect(info.value).toMatchObject({ streamType: "session", version: 3, ownerId })
    }
  })

  it("pages through a stream with fromVersion and limit", async () => {
    const id = sessionId()
    await run(Effect.flatMap(store, (s) => s.append(id, events(7))))
    const first = await run(Effect.flatMap(store, (s) => s.readStream(id, { limit: 3 })))
    expect(first.events.map((e) => e.version)).toEqual([1, 2, 3])
    expect(first.nextVersion).toBe(4)
    const last = await run(Effect.flatMap(store, (s) => s.readStream(id, { fromVersion: 7, limit: 3 })))
    expect(last.events.map((e) => e.version)).toEqual([7])
    expect(last.nextVersion).toBeUndefined()
    const none = await run(Effect.flatMap(store, (s) => s.readStream(sessionId())))
    expect(none).toEqual({ events: [], version: 0, nextVersion: undefined })
  })

  it("reads a stream up to toVersion, and ends a page early at maxBytes with the next version", async () => {
    const id = sessionId()
    const big = "x".repeat(2000)
    await run(
      Effect.flatMap(store, (s) =>
        s.append(
          id,
          Array.from({ length: 6 }, (_, i) => ({ type: "MessageAppended", data: { n: i, text: big } })),
        ),
      ),
    )
    const upTo = await run(Effect.flatMap(store, (s) => s.readStream(id, { fromVersion: 2, toVersion: 4 })))
    expect(upTo.events.map((e) => e.version)).toEqual([2, 3, 4])
    expect(upTo.version).toBe(6)
    expect(upTo.nextVersion).toBeUndefined()
    const limited = await run(
      Effect.flatMap(store, (s) => s.readStream(id, { fromVersion: 2, toVersion: 4, limit: 2 })),
    )
    expect(limited.events.map((e) => e.version)).toEqual([2, 3])
    expect(limited.nextVersion).toBe(4)
    // Each event is over 2,000 bytes: a budget of 5,000 holds two of them.
    const budgeted = await run(Effect.flatMap(store, (s) => s.readStream(id, { maxBytes: 5000 })))
    expect(budgeted.events.map((e) => e.version)).toEqual([1, 2])
    expect(budgeted.nextVersion).toBe(3)
    expect(budgeted.events[0]!.data).toEqual({ n: 0, text: big })
    // The first event comes whatever the budget.
    const tiny = await run(Effect.flatMap(store, (s) => s.readStream(id, { fromVersion: 6, maxBytes: 1 })))
    expect(tiny.events.map((e) => e.version)).toEqual([6])
    expect(tiny.nextVersion).toBeUndefined()
    expect(
      (
        await failureOf(
          runtime,
          Effect.flatMap(store, (s) => s.readStream(id, { toVersion: -1 })),
        )
      )._tag,
    ).toBe("InvalidRead")
    expect(
      (
        await failureOf(
          runtime,
          Effect.flatMap(store, (s) => s.readStream(id, { maxBytes: 0 })),
        )
      )._tag,
    ).toBe("InvalidRead")
  })

  it("finds an event of a stream by its id, and only in that stream", async () => {
    const id = sessionId()
    const eventId = randomUUID()
    await run(Effect.flatMap(store, (s) => s.append(id, events(2))))
    await run(
      Effect.flatMap(store, (s) => s.append(id, [{ type: "DraftRecorded", data: { ok: true }, eventId }])),
    )
    const found = await run(Effect.flatMap(store, (s) => s.findEventById(id, eventId.toUpperCase())))
    expect(found._tag).toBe("Some")
    if (found._tag === "Some") {
      expect(found.value).toMatchObject({
        eventId,
        streamId: id,
        version: 3,
        type: "DraftRecorded",
        data: { ok: true },
      })
      expect(found.value.recordedAt).toBeInstanceOf(Date)
    }
    expect((await run(Effect.flatMap(store, (s) => s.findEventById(sessionId(), eventId))))._tag).toBe("None")
    expect((await run(Effect.flatMap(store, (s) => s.findEventById(id, randomUUID()))))._tag).toBe("None")
    expect(
      (
        await failureOf(
          runtime,
          Effect.flatMap(store, (s) => s.findEventById(id, "nope")),
        )
      )._tag,
    ).toBe("InvalidRead")
  })

  it("tells when events were recorded, to the microsecond, and their streams' owners", async () => {
    const owned = sessionId()
    const ownerId = randomUUID()
    const unowned = sessionId()
    const [first] = (await run(Effect.flatMap(store, (s) => s.append(owned, events(1), { ownerId })))).events
    const [second] = (await run(Effect.flatMap(store, (s) => s.append(unowned, events(1))))).events
    const [exact] = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ at: string }>(
          `select to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at
             from chronicle.events where event_id = $1::uuid`,
          [first!.eventId],
        ),
      ),
    )
    const details = await run(
      Effect.flatMap(store, (s) =>
        s.eventDetails([first!.eventId.toUpperCase(), second!.eventId, randomUUID()]),
      ),
    )
    expect([...details.keys()].sort()).toEqual([first!.eventId, second!.eventId].sort())
    expect(details.get(first!.eventId)).toEqual({ recordedAt: exact!.at, ownerId })
    expect(details.get(second!.eventId)?.ownerId).toBeNull()
    expect(details.get(second!.eventId)?.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    expect((await run(Effect.flatMap(store, (s) => s.eventDetails([])))).size).toBe(0)
    expect(
      (
        await failureOf(
          runtime,
          Effect.flatMap(store, (s) => s.eventDetails(["nope"])),
        )
      )._tag,
    ).toBe("InvalidRead")
  })

  it("finds the batch an event began, by its batchSize, with the stream's current version", async () => {
    const id = sessionId()
    const ids = [randomUUID(), randomUUID(), randomUUID()]
    await run(Effect.flatMap(store, (s) => s.append(id, events(1))))
    await run(
      Effect.flatMap(store, (s) =>
        s.append(
          id,
          ids.map((eventId, i) => ({
            type: "MessageAppended",
            data: { i },
            eventId,
            metadata: { [BATCH_SIZE_KEY]: 3, operation: "AppendMessages" },
          })),
        ),
      ),
    )
    const plain = [randomUUID(), randomUUID()]
    await run(
      Effect.flatMap(store, (s) =>
        s.append(
          id,
          events(2).map((e, i) => ({ ...e, eventId: plain[i]! })),
        ),
      ),
    )
    const batch = await run(Effect.flatMap(store, (s) => s.findBatchByEventId(id, ids[0]!)))
    expect(batch._tag).toBe("Some")
    if (batch._tag === "Some") {
      expect(batch.value.streamVersion).toBe(6)
      expect(batch.value.events.map((e) => [e.eventId, e.version, e.data])).toEqual([
        [ids[0], 2, { i: 0 }],
        [ids[1], 3, { i: 1 }],
        [ids[2], 4, { i: 2 }],
      ])
      expect(batch.value.events[0]!.metadata).toMatchObject({ operation: "AppendMessages" })
    }
    // An event with no batch size is a batch of one.
    const single = await run(Effect.flatMap(store, (s) => s.findBatchByEventId(id, plain[0]!)))
    expect(single._tag === "Some" && single.value.events.map((e) => e.version)).toEqual([5])
    expect((await run(Effect.flatMap(store, (s) => s.findBatchByEventId(sessionId(), ids[0]!))))._tag).toBe(
      "None",
    )
  })

  it("lets exactly one of several concurrent appends with the same expected version win", async () => {
    const id = sessionId()
    await run(Effect.flatMap(store, (s) => s.append(id, events(2))))
    const attempts = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        runtime.runPromiseExit(
          Effect.flatMap(store, (s) =>
            s.append(id, [{ type: "MessageAppended", data: { writer: i } }, ...events(2)], {
              expectedVersion: 2,
            }),
          ),
        ),
      ),
    )
    const winners = attempts.filter(Exit.isSuccess)
    const losers = attempts.filter(Exit.isFailure)
    expect(winners).toHaveLength(1)
    expect(losers).toHaveLength(7)
    for (const loser of losers) {
      const error = Cause.findErrorOption(loser.cause)
      expect(error._tag === "Some" && error.value._tag).toBe("VersionConflict")
      if (error._tag === "Some" && error.value._tag === "VersionConflict") {
        expect(error.value).toMatchObject({ streamId: id, expected: 2, actual: 5 })
        expect(error.value.message).toContain("is at version 5")
      }
    }
    const page = await run(Effect.flatMap(store, (s) => s.readStream(id)))
    expect(page.version).toBe(5)
    expect(page.events).toHaveLength(5)
    const winner = winners[0]!.value
    expect(page.events.slice(2).map((e) => e.eventId)).toEqual(winner.events.map((e) => e.eventId))
  })

  it("checks no_stream and stream_exists", async () => {
    const id = sessionId()
    const missing = await failureOf(
      runtime,
      Effect.flatMap(store, (s) => s.append(id, events(1), { expectedVersion: "stream_exists" })),
    )
    expect(missing).toMatchObject({ _tag: "VersionConflict", expected: "stream_exists", actual: 0 })
    await run(Effect.flatMap(store, (s) => s.append(id, events(1), { expectedVersion: "no_stream" })))
    const exists = await failureOf(
      runtime,
      Effect.flatMap(store, (s) => s.append(id, events(1), { expectedVersion: "no_stream" })),
    )
    expect(exists).toMatchObject({ _tag: "VersionConflict", expected: "no_stream", actual: 1 })
    await run(Effect.flatMap(store, (s) => s.append(id, events(1), { expectedVersion: "stream_exists" })))
    // A rejected append to a new stream leaves no stream behind.
    const info = await run(Effect.flatMap(store, (s) => s.streamInfo(sessionId())))
    expect(info._tag).toBe("None")
  })

  it("writes a batch all or nothing: a failure in its last event leaves the stream as it was", async () => {
    const id = sessionId()
    await run(Effect.flatMap(store, (s) => s.append(id, events(2))))
    const before = await countEvents(runtime)
    // Bypass the store's own validation so the database itself rejects the third event.
    const batch = [...events(2), { type: "not a valid type", data: {} }].map((e) => ({
      event_id: randomUUID(),
      type: e.type,
      data: e.data,
    }))
    const exit = await runtime.runPromiseExit(
      Effect.flatMap(Database, (db) =>
        db.query("select * from chronicle.append_events($1, 'session', -1, $2::text::jsonb)", [
          id,
          JSON.stringify(batch),
        ]),
      ),
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(await countEvents(runtime)).toBe(before)
    const page = await run(Effect.flatMap(store, (s) => s.readStream(id)))
    expect(page.version).toBe(2)
    expect(page.events).toHaveLength(2)
  })

  it("returns the original result for a retried append and writes nothing new", async () => {
    const id = sessionId()
    const batch = events(3).map((e) => ({ ...e, eventId: randomUUID() }))
    const first = await run(
      Effect.flatMap(store, (s) => s.append(id, batch, { expectedVersion: "no_stream" })),
    )
    await run(Effect.flatMap(store, (s) => s.append(id, events(2))))
    const before = await countEvents(runtime)
    // The retry carries the original (now stale) expected version: still a success.
    const retry = await run(
      Effect.flatMap(store, (s) => s.append(id, batch, { expectedVersion: "no_stream" })),
    )
    expect(retry.duplicate).toBe(true)
    expect(retry.events).toEqual(first.events)
    expect(await countEvents(runtime)).toBe(before)

    // Same ids, different content: refused, nothing written.
    const changed = batch.map((e, i) => (i === 1 ? { ...e, data: { changed: true } } : e))
    const clash = await failureOf(
      runtime,
      Effect.flatMap(store, (s) => s.append(id, changed)),
    )
    expect(clash._tag).toBe("IdempotencyConflict")
    // Some of the ids, with a new one: refused too.
    const partial = [batch[0]!, { type: "MessageAppended", data: {}, eventId: randomUUID() }]
    expect(
      (
        await failureOf(
          runtime,
          Effect.flatMap(store, (s) => s.append(id, partial)),
        )
      )._tag,
    ).toBe("IdempotencyConflict")
    // The same ids sent to another stream: refused.
    const elsewhere = await failureOf(
      runtime,
      Effect.flatMap(store, (s) => s.append(sessionId(), batch)),
    )
    expect(elsewhere._tag).toBe("IdempotencyConflict")
    expect(await countEvents(runtime)).toBe(before)
  })

  it("derives event ids from an idempotency key so retries are no-ops", async () => {
    const id = sessionId()
    const first = await run(
      Effect.flatMap(store, (s) => s.append(id, events(2), { idempotencyKey: "req-42" })),
    )
    const again = await run(
      Effect.flatMap(store, (s) => s.append(id, events(2), { idempotencyKey: "req-42" })),
    )
    expect(again.duplicate).toBe(true)
    expect(again.events).toEqual(first.events)
    const next = await run(
      Effect.flatMap(store, (s) => s.append(id, events(2), { idempotencyKey: "req-43" })),
    )
    expect(next.events.map((e) => e.version)).toEqual([3, 4])
    // Concurrent retries of one request write it once.
    const id2 = sessionId()
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        run(Effect.flatMap(store, (s) => s.append(id2, events(3), { idempotencyKey: "k" }))),
      ),
    )
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1)
    expect(new Set(results.map((r) => JSON.stringify(r.events))).size).toBe(1)
    expect((await run(Effect.flatMap(store, (s) => s.readStream(id2)))).version).toBe(3)
  })

  it("refuses UPDATE, DELETE and TRUNCATE on the events table", async () => {
    const id = sessionId()
    await run(Effect.flatMap(store, (s) => s.append(id, events(1))))
    const before = await countEvents(runtime)
    for (const statement of [
      `update chronicle.events set data = '{}' where stream_id = '${id}'`,
      `delete from chronicle.events where stream_id = '${id}'`,
      "truncate chronicle.events cascade",
    ]) {
      const error = await failureOf(
        runtime,
        Effect.flatMap(Database, (db) => db.query(statement)),
      )
      expect(error).toMatchObject({ _tag: "SqlError", code: "CH001" })
      expect(error.message).toContain("append-only")
    }
    expect(await countEvents(runtime)).toBe(before)
    const page = await run(Effect.flatMap(store, (s) => s.readStream(id)))
    expect(page.events[0]!.data).toEqual({ n: 0, text: "message 0" })
  })

  describe("rejects bad input with a typed error and leaves the database unchanged", () => {
    const cases: Array<
      [string, (s: EventStore["Service"]) => Effect.Effect<unknown, unknown>, string, string]
    > = [
      [
        "a stream id of an unknown format",
        (s) => s.append("Session/42", events(1)),
        "InvalidAppend",
        "streamId",
      ],
      ["a stream id with no uuid", (s) => s.append("session-42", events(1)), "InvalidAppend", "streamId"],
      ["an empty batch", (s) => s.append(sessionId(), []), "InvalidAppend", "events"],
      ["a batch over the limit", (s) => s.append(sessionId(), events(51)), "BatchTooLarge", "50"],
      [
        "an expected version below 0",
        (s) => s.append(sessionId(), events(1), { expectedVersion: -1 }),
        "InvalidAppend",
        "expectedVersion",
      ],
      [
        "a fractional expected version",
        (s) => s.append(sessionId(), events(1), { expectedVersion: 1.5 }),
        "InvalidAppend",
        "expectedVersion",
      ],
      [
        "a bigint in the data",
        (s) => s.append(sessionId(), [{ type: "A", data: { n: 1n } }]),
        "InvalidAppend",
        "events[0].data.n",
      ],
      [
        "undefined in the data",
        (s) => s.append(sessionId(), [{ type: "A", data: { a: [1, undefined] } }]),
        "InvalidAppend",
        "events[0].data.a[1]",
      ],
      [
        "a function in the data",
        (s) => s.append(sessionId(), [{ type: "A", data: { f: () => 1 } }]),
        "InvalidAppend",
        "events[0].data.f",
      ],
      [
        "NaN in the data",
        (s) => s.append(sessionId(), [{ type: "A", data: Number.NaN }]),
        "InvalidAppend",
        "events[0].data",
      ],
      [
        "a Date in the data",
        (s) => s.append(sessionId(), [{ type: "A", data: { at: new Date() } }]),
        "InvalidAppend",
        "events[0].data.at",
      ],
      [
        "a NUL character in the data",
        (s) => s.append(sessionId(), [{ type: "A", data: "a\u0000b" }]),
        "InvalidAppend",
        "NUL",
      ],
      [
        "missing data",
        (s) => s.append(sessionId(), [{ type: "A", data: undefined }]),
        "InvalidAppend",
        "events[0].data",
      ],
      [
        "a type that is not PascalCase",
        (s) => s.append(sessionId(), [{ type: "message appended", data: {} }]),
        "InvalidAppend",
        "events[0].type",
      ],
      [
        "metadata that is an array",
        (s) => s.append(sessionId(), [{ type: "A", data: {}, metadata: [] as never }]),
        "InvalidAppend",
        "events[0].metadata",
      ],
      [
        "an event id that is not a UUID",
        (s) => s.append(sessionId(), [{ type: "A", data: {}, eventId: "x" }]),
        "InvalidAppend",
        "events[0].eventId",
      ],
      [
        "an owner that is not a UUID",
        (s) => s.append(sessionId(), events(1), { ownerId: "bob" }),
        "InvalidAppend",
        "ownerId",
      ],
      ["an invalid cursor", (s) => s.readAll({ after: "bogus" }), "InvalidCursor", "bogus"],
      ["a read limit of 0", (s) => s.readAll({ limit: 0 }), "InvalidRead", "limit"],
      [
        "a negative fromVersion",
        (s) => s.readStream(sessionId(), { fromVersion: -2 }),
        "InvalidRead",
        "fromVersion",
      ],
    ]
    it.each(cases)("%s", async (_, call, tag, mentioned) => {
      const before = await countEvents(runtime)
      const error = (await failureOf(runtime, Effect.flatMap(store, call))) as {
        _tag: string
        message: string
      }
      expect(error._tag).toBe(tag)
      expect(error.message).toContain(mentioned)
      expect(await countEvents(runtime)).toBe(before)
    })

    it("a duplicated event id within one batch", async () => {
      const eventId = randomUUID()
      const error = await failureOf(
        runtime,
        Effect.flatMap(store, (s) =>
          s.append(sessionId(), [
            { type: "A", data: 1, eventId },
            { type: "B", data: 2, eventId },
          ]),
        ),
      )
      expect(error).toMatchObject({ _tag: "InvalidAppend", path: "events[1].eventId" })
    })

    it("an event over the size limit", async () => {
      const before = await countEvents(runtime)
      const error = await failureOf(
        runtime,
        Effect.flatMap(store, (s) =>
          s.append(sessionId(), [{ type: "A", data: "x".repeat(1024 * 1024 + 1) }]),
        ),
      )
      expect(error).toMatchObject({ _tag: "EventTooLarge", limit: 1024 * 1024 })
      expect(await countEvents(runtime)).toBe(before)
    })
  })

  it("reads the whole log in pages by cursor, filtered by type and stream", async () => {
    const a = sessionId()
    const b = sessionId()
    await run(Effect.flatMap(store, (s) => s.append(a, [...events(2, "Alpha"), ...events(1, "Beta")])))
    await run(Effect.flatMap(store, (s) => s.append(b, events(2, "Alpha"))))
    const alphas = await run(Effect.flatMap(store, (s) => s.readAll({ types: ["Alpha"], streamIds: [a, b] })))
    expect(alphas.events.map((e) => [e.streamId, e.version])).toEqual([
      [a, 1],
      [a, 2],
      [b, 1],
      [b, 2],
    ])
    expect(alphas.caughtUp).toBe(true)
    const first = await run(Effect.flatMap(store, (s) => s.readAll({ streamIds: [a, b], limit: 2 })))
    expect(first.caughtUp).toBe(false)
    const rest = await run(
      Effect.flatMap(store, (s) => s.readAll({ streamIds: [a, b], after: first.cursor })),
    )
    expect([...first.events, ...rest.events].map((e) => e.type)).toEqual([
      "Alpha",
      "Alpha",
      "Beta",
      "Alpha",
      "Alpha",
    ])
    const head = await run(Effect.flatMap(store, (s) => s.head()))
    expect(head.cursor).toBe(rest.events.at(-1)!.cursor)
    expect(head.globalPosition).toBe(rest.events.at(-1)!.globalPosition)
  })

  it("reads and follows only one owner's streams when given ownerId", async () => {
    const alice = randomUUID()
    const bob = randomUUID()
    const start = await run(Effect.flatMap(store, (s) => s.head()))
    const a1 = sessionId()
    const a2 = sessionId()
    const b1 = sessionId()
    const unowned = sessionId()
    await run(Effect.flatMap(store, (s) => s.append(a1, events(2, "Alpha"), { ownerId: alice })))
    await run(Effect.flatMap(store, (s) => s.append(b1, events(1, "Alpha"), { ownerId: bob })))
    await run(Effect.flatMap(store, (s) => s.append(unowned, events(1, "Alpha"))))
    await run(Effect.flatMap(store, (s) => s.append(a2, events(1, "Beta"), { ownerId: alice })))
    // Later appends to an owned stream keep its owner even without ownerId.
    await run(Effect.flatMap(store, (s) => s.append(a1, events(1, "Beta"))))

    const page = await run(Effect.flatMap(store, (s) => s.readAll({ after: start.cursor, ownerId: alice })))
    expect(page.events.map((e) => [e.streamId, e.version])).toEqual([
      [a1, 1],
      [a1, 2],
      [a2, 1],
      [a1, 3],
    ])
    const betas = await run(
      Effect.flatMap(store, (s) =>
        s.readAll({ after: start.cursor, ownerId: alice.toUpperCase(), types: ["Beta"] }),
      ),
    )
    expect(betas.events.map((e) => [e.streamId, e.version])).toEqual([
      [a2, 1],
      [a1, 3],
    ])
    const bobs = await run(Effect.flatMap(store, (s) => s.readAll({ after: start.cursor, ownerId: bob })))
    expect(bobs.events.map((e) => e.streamId)).toEqual([b1])

    const followed = runtime.runPromise(
      Effect.flatMap(store, (s) =>
        Stream.runCollect(Stream.take(s.subscribe({ after: start.cursor, ownerId: bob }), 2)),
      ),
    )
    await run(Effect.flatMap(store, (s) => s.append(a2, events(1, "Gamma"))))
    await run(Effect.flatMap(store, (s) => s.append(b1, events(1, "Gamma"))))
    expect((await followed).map((e) => [e.streamId, e.version, e.type])).toEqual([
      [b1, 1, "Alpha"],
      [b1, 2, "Gamma"],
    ])

    const bad = await failureOf(
      runtime,
      Effect.flatMap(store, (s) => s.readAll({ ownerId: "not-a-uuid" })),
    )
    expect(bad).toMatchObject({ _tag: "InvalidRead", path: "ownerId" })
  })

  it("subscribes: back-fills, then follows new appends, and resumes after a cursor with no duplicate", async () => {
    const id = sessionId()
    await run(Effect.flatMap(store, (s) => s.append(id, events(3))))
    const collect = (after: string | undefined, n: number) =>
      runtime.runPromise(
        Effect.flatMap(store, (s) =>
          Stream.runCollect(Stream.take(s.subscribe({ after, streamIds: [id] }), n)),
        ),
      )
    const live = collect(undefined, 5)
    await new Promise((r) => setTimeout(r, 100))
    await run(Effect.flatMap(store, (s) => s.append(id, events(2, "Later"))))
    const seen = await live
    expect(seen.map((e) => [e.version, e.type])).toEqual([
      [1, "MessageAppended"],
      [2, "MessageAppended"],
      [3, "MessageAppended"],
      [4, "Later"],
      [5, "Later"],
    ])
    await run(Effect.flatMap(store, (s) => s.append(id, events(1, "Last"))))
    const resumed = await collect(seen[2]!.cursor ?? undefined, 3)
    expect(resumed.map((e) => e.version)).toEqual([4, 5, 6])
  })

  it("never skips an event that commits late under concurrent writers (8 writers x 500 events)", async () => {
    const writers = 8
    const perWriter = 500
    const streams = Array.from({ length: writers + 1 }, sessionId)
    const start = await run(Effect.flatMap(store, (s) => s.head()))
    const expected = writers * perWriter + 1

    const seen: Array<RecordedEvent> = []
    const follower = runtime.runFork(
      Effect.flatMap(store, (s) =>
        s.subscribe({ after: start.cursor, streamIds: streams }).pipe(
          Stream.take(expected),
          Stream.runForEach((e) => Effect.sync(() => seen.push(e))),
        ),
      ),
    )
    // A writer whose transaction takes its global position early but commits last.
    const slow = run(
      Effect.gen(function* () {
        const db = yield* Database
        const s = yield* EventStore
        yield* db.transaction(
          Effect.gen(function* () {
            yield* s.append(streams[writers]!, [{ type: "Slow", data: { late: true } }])
            yield* db.query("select pg_sleep(0.5)")
          }),
        )
      }),
    )
    const fast = Array.from({ length: writers }, (_, w) =>
      run(
        Effect.flatMap(store, (s) =>
          Effect.forEach(
            Array.from({ length: perWriter / 10 }, (_, i) => i),
            (i) =>
              s.append(
                streams[w]!,
                Array.from({ length: 10 }, (_, j) => ({ type: "Fast", data: { w, i, j } })),
              ),
          ),
        ),
      ),
    )
    await Promise.all([slow, ...fast])
    await runtime.runPromise(Fiber.join(follower))

    const ids = seen.map((e) => e.eventId)
    expect(ids).toHaveLength(expected)
    expect(new Set(ids).size).toBe(expected)
    expect(seen.filter((e) => e.type === "Slow")).toHaveLength(1)
    // Per stream, versions arrive in order and without gaps.
    for (const stream of streams) {
      const versions = seen.filter((e) => e.streamId === stream).map((e) => e.version)
      expect(versions).toEqual(versions.map((_, i) => i + 1))
    }
    // Paging with readAll from the same start sees the same events in the same order.
    const paged: Array<string> = []
    let cursor = start.cursor
    for (;;) {
      const page = await run(
        Effect.flatMap(store, (s) => s.readAll({ after: cursor, streamIds: streams, limit: 700 })),
      )
      paged.push(...page.events.map((e) => e.eventId))
      cursor = page.cursor
      if (page.caughtUp) break
    }
    expect(paged).toEqual(ids)
  })
})
