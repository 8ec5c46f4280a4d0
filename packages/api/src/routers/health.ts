import { Database } from "@chronicle/store"
import { Effect } from "effect"
import { publicProcedure } from "../trpc.ts"

/**
 * Whether the service can reach its database, and which kind it is. Public, so it says
 * nothing about what the log holds (the head of the log is `events.head`, for callers with a
 * token).
 */
export const health = Effect.fn("health")(function* () {
  const db = yield* Database
  yield* db.query("select 1").pipe(Effect.orDie)
  return { ok: true as const, database: db.kind }
})

export const healthProcedure = publicProcedure.query(({ ctx }) => ctx.run(health()))
