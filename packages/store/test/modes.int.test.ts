import { randomUUID } from "node:crypto"
import { Effect, Layer, ManagedRuntime, Stream } from "effect"
import { describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore } from "../src/event-store.ts"
import { migrate } from "../src/migrations.ts"
import { createPostgresDatabase, makeTestRuntime, testDatabases } from "../src/testing.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

describe.each(testDatabases(env))("subscriptions without LISTEN on $name", (database) => {
  it("still deliver new events, by polling", async () => {
    const runtime = makeTestRuntime(database.layer(), { listen: false, pollIntervalMs: 50 })
    try {
      const id = `session-${randomUUID()}`
      const seen = runtime.runPromise(
        Effect.flatMap(EventStore, (s) =>
          Stream.runCollect(Stream.take(s.subscribe({ streamIds: [id] }), 2)),
        ),
      )
      await new Promise((r) => setTimeout(r, 150))
      await runtime.runPromise(
        Effect.flatMap(EventStore, (s) =>
          s.append(id, [
            { type: "A", data: 1 },
            { type: "B", data: 2 },
          ]),
        ),
      )
      expect((await seen).map((e) => e.type)).toEqual(["A", "B"])
    } finally {
      await runtime.dispose()
    }
  })
})

describe.runIf(env.postgresUrl !== null)(
  "Postgres without prepared statements (as behind a transaction pooler)",
  () => {
    it("migrates, appends, detects conflicts and reads", async () => {
      const created = await createPostgresDatabase(env.postgresUrl!)
      const runtime = ManagedRuntime.make(
        EventStore.layer({ listen: false }).pipe(
          Layer.provideMerge(
            Database.layerPostgres({ url: created.url, prepare: false, max: 2 }).pipe(Layer.orDie),
          ),
        ),
      )
      try {
        const id = `session-${randomUUID()}`
        const result = await runtime.runPromise(
          Effect.gen(function* () {
            yield* migrate().pipe(Effect.orDie)
            const store = yield* EventStore
            yield* store.append(id, [{ type: "A", data: { n: 1 } }], { expectedVersion: "no_stream" })
            const conflict = yield* Effect.flip(
              store.append(id, [{ type: "B", data: {} }], { expectedVersion: 0 }),
            )
            const page = yield* store.readStream(id)
            return { conflict: conflict._tag, events: page.events.map((e) => [e.version, e.type, e.data]) }
          }),
        )
        expect(result).toEqual({ conflict: "VersionConflict", events: [[1, "A", { n: 1 }]] })
      } finally {
        await runtime.dispose()
        await created.drop()
      }
    })
  },
)
