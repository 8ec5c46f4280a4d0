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
  const OWNER = "00000000-0000-4000-8000-0000000000c1"
  const started = (stream: string) => ({
    type: "SessionStarted",
    data: {
      sessionId: stream.slice("session-".length),
      ownerId: OWNER,
      title: null,
      metadata: {},
      externalKey: null,
    },
  })
  const message = (messageId: string, seq: number) => ({
    type: "MessageAppended",
    data: { messageId, seq, role: "user", content: `m${seq}`, metadata: {}, createdAt: null },
  })

  it("a group's appends to existing streams are written together, in one subtransaction (one xmin per group)", async () => {
    const streams = Array.from({ length: 24 }, sessionId)
    for (const s of streams) await run(Effect.flatMap(EventStore, (st) => st.append(s, [started(s)])))
    await Promise.all(
      streams.map((s, i) =>
        run(
          Effect.flatMap(EventStore, (st) =>
            st.append(s, [message(randomUUID(), i)], { expectedVersion: 1 }),
          ),
        ),
      ),
    )
    const groups = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ appends: number; xmins: number }>(
          `select count(*)::int as appends, count(distinct xmin::text)::int as xmins
             from chronicle.events where stream_id = any ($1::text[]) and type = 'MessageAppended'
            group by transaction_id`,
          [streams],
        ),
      ),
    )
    // Some transaction holds several appends (a group formed), and every group's rows were
    // inserted by one statement: one subtransaction, not one per append.
    expect(Math.max(...groups.map((g) => g.appends))).toBeGreaterThan(1)
    expect(groups.map((g) => g.xmins)).toEqual(groups.map(() => 1))
    // And projected: every session holds its message, at version 2.
    const [sessions] = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ n: number; messages: number }>(
          `select count(*)::int as n, sum(message_count)::int as messages from chronicle.sessions
            where id = any ($1::uuid[]) and version = 2 and effective = '{[1,3)}'::int4multirange`,
          [streams.map((s) => s.slice("session-".length))],
        ),
      ),
    )
    expect(sessions).toEqual({ n: 24, messages: 24 })
  })

  it("an append its projection refuses fails alone in a group; its neighbours commit and are projected", async () => {
    const streams = Array.from({ length: 12 }, sessionId)
    for (const s of streams) await run(Effect.flatMap(EventStore, (st) => st.append(s, [started(s)])))
    const taken = randomUUID()
    await run(Effect.flatMap(EventStore, (st) => st.append(streams[0]!, [message(taken, 1)])))
    const exits = await Promise.all(
      streams.map((s, i) =>
        runtime.runPromiseExit(
          Effect.flatMap(EventStore, (st) =>
            // The first re-uses a message id its session holds: the messages table refuses it.
            st.append(s, [message(i === 0 ? taken : randomUUID(), 10 + i)]),
          ),
        ),
      ),
    )
    expect(Exit.isFailure(exits[0]!)).toBe(true)
    expect(exits.slice(1).every(Exit.isSuccess)).toBe(true)
    const rows = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ id: string; version: number; messages: number; rows: number }>(
          `select s.id::text, s.version, s.message_count as messages,
                  (select count(*)::int from chronicle.messages m where m.session_id = s.id) as rows
             from chronicle.sessions s where s.id = any ($1::uuid[]) order by s.id`,
          [streams.map((s) => s.slice("session-".length))],
        ),
      ),
    )
    // The refused append wrote nothing: the first session holds only its earlier message, every
    // other session the one message appended in the group.
    expect(rows.map((r) => [r.version, r.messages, r.rows])).toEqual(streams.map(() => [2, 1, 1]))
    const [log] = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ n: number }>(
          "select count(*)::int as n from chronicle.events where stream_id = any ($1::text[]) and type = 'MessageAppended'",
          [streams],
        ),
      ),
    )
    expect(log!.n).toBe(12)
  })
})
