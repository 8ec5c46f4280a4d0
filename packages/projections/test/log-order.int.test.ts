/**
 * The projections under the log's order: concurrent writers on one session — plain appends,
 * and appends inside callers' transactions that wrote elsewhere first, so that a later version
 * holds an older transaction id — while the async daemon follows. The `activity` projection
 * (which learns a session's owner from its first event) counts exactly what the log holds, and
 * a rebuild equals the inline read models and a from-scratch fold. Ordered by transaction id,
 * a session's messages came before the event that started it, and went uncounted.
 */
import { randomUUID } from "node:crypto"
import { Database, EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels } from "../src/index.ts"
import { activityFromLog, activityTable, engineOf, scratchFold } from "./engine-support.ts"
import { appendEffect, env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"

describe.each(testDatabases(env))("projections following the log's order on $name", (database) => {
  let h: Harness
  beforeAll(async () => {
    h = await makeHarness(database, { max: 16 })
  })
  afterAll(() => h.dispose())

  it("the async daemon and a rebuild see every session's events in version order, whatever the transaction ids", async () => {
    const engine = await engineOf(h)
    const owner = randomUUID()
    const sessions = Array.from({ length: 6 }, () => randomUUID())
    let following = true
    // The daemon, following as the writers write.
    const daemon = (async () => {
      while (following) {
        await engine.run((p) => p.tick())
        await new Promise((r) => setTimeout(r, 5))
      }
    })()

    // The embedded database runs one transaction at a time: there the two run one after the other.
    const concurrent = database.name === "postgres"
    const inverted = async (id: string) => {
      // B writes elsewhere first (its transaction id is now older than A's will be), then
      // appends a message to the session A is starting: it waits for A's lock, and commits after.
      let bWrote!: () => void
      const bHasWritten = new Promise<void>((r) => (bWrote = r))
      let aStarted!: () => void
      const aHasStarted = new Promise<void>((r) => (aStarted = r))
      const runB = () =>
        h.run(
          Effect.gen(function* () {
            const db = yield* Database
            yield* db.transaction(
              Effect.gen(function* () {
                const side = randomUUID()
                yield* appendEffect(sessionStream(side), [ev.started(side, owner)])
                yield* Effect.sync(() => bWrote())
                if (concurrent) yield* Effect.promise(() => aHasStarted)
                yield* appendEffect(sessionStream(id), [ev.message(1, "first")], {
                  expectedVersion: "stream_exists",
                })
              }),
            )
          }),
        )
      const runA = () =>
        h.run(
          Effect.gen(function* () {
            const db = yield* Database
            yield* db.transaction(
              Effect.gen(function* () {
                yield* appendEffect(sessionStream(id), [ev.started(id, owner)], {
                  expectedVersion: "no_stream",
                })
                yield* Effect.sync(() => aStarted())
                yield* Effect.sleep("30 millis")
              }),
            )
          }),
        )
      if (concurrent) {
        const b = runB()
        await bHasWritten
        await Promise.all([runA(), b])
      } else {
        aStarted()
        await runA()
        await runB()
      }
      // Then plain writers race on it.
      await Promise.all(
        Array.from({ length: 4 }, (_, w) =>
          (async () => {
            for (let i = 0; i < 5; i++)
              await h.append(sessionStream(id), [ev.message(100 + w * 10 + i, `w${w} ${i}`)])
          })(),
        ),
      )
    }
    await Promise.all(sessions.map(inverted))

    if (database.name === "postgres") {
      // The workload does what broke the old order: a message with an older transaction id
      // than the event that started its session.
      const [row] = await h.query<{ n: number }>(
        `select count(*)::int as n from chronicle.events m join chronicle.events s
            on s.stream_id = m.stream_id and s.stream_version = 1
          where m.stream_id = any ($1::text[]) and m.type = 'MessageAppended' and m.transaction_id < s.transaction_id`,
        [sessions.map(sessionStream)],
      )
      expect(row!.n).toBe(sessions.length)
    }

    await h.run(Effect.flatMap(EventStore, (s) => s.sequenced()))
    following = false
    await daemon
    // Caught up: lag 0, and the activity rows are what the log holds.
    for (;;) {
      if ((await engine.run((p) => p.tick())) === 0) break
    }
    const status = await engine.run((p) => p.status())
    expect(status.projections.find((p) => p.name === "activity")).toMatchObject({
      lagEvents: 0,
      state: "live",
    })
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
    const [counted] = await h.query<{ messages: number }>(
      "select sum(messages)::int as messages from chronicle.activity_daily where owner_id = $1::uuid",
      [owner],
    )
    expect(counted!.messages).toBe(sessions.length * 21)

    // Inline read models, a from-scratch fold and a rebuild through the engine agree.
    const inline = await h.run(dumpReadModels())
    expect(inline).toEqual(await scratchFold(h))
    const rebuilt = await engine.run((p) => Effect.flatMap(p.startRebuild(), (r) => p.execute(r.id)))
    expect(rebuilt.state).toBe("completed")
    expect(await h.run(dumpReadModels())).toEqual(inline)
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
    await engine.dispose()
  }, 180_000)
})
