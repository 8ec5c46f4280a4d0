import { Database, EventStore } from "@chronicle/store"
import { Effect } from "effect"
import { publicProcedure } from "../trpc.ts"

/** Whether the service can reach its database, which kind it is, and the head of the log. */
export const health = Effect.fn("health")(function* () {
  const db = yield* Database
  const store = yield* EventStore
  const head = yield* store.head()
  return { ok: true as const, database: db.kind, head }
})

export const healthProcedure = publicProcedure.query(({ ctx }) => ctx.run(health()))
