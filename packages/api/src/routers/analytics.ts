/** `analytics.*` and `projections.*`: views over the read models, and their upkeep. */
import { Analytics } from "@chronicle/domain"
import { Forbidden } from "@chronicle/events"
import { Projections } from "@chronicle/projections"
import { Effect, Schema } from "effect"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf } from "./actor.ts"
import { Page, Uuid } from "./schemas.ts"

const input = Schema.toStandardSchemaV1

export const analyticsRouter = router({
  /** One session's summary, or a page of yours (most recently active first). */
  sessionSummary: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ sessionId: Schema.optional(Uuid), ...Page }))))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Analytics, (a) => a.sessionSummary(actorOf(ctx.principal), input ?? {}))),
    ),
  /** Usage per owner: yours, or everyone's for the service role. */
  users: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ ...Page }))))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Analytics, (a) => a.users(actorOf(ctx.principal), input ?? {}))),
    ),
  /** Newest first: messages, revisions, drafts, tool runs and job changes. */
  recentActivity: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ sessionId: Schema.optional(Uuid), ...Page }))))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Analytics, (a) => a.recentActivity(actorOf(ctx.principal), input ?? {}))),
    ),
  draftValidation: authedProcedure.query(({ ctx }) =>
    ctx.run(Effect.flatMap(Analytics, (a) => a.draftValidation(actorOf(ctx.principal)))),
  ),
  jobStats: authedProcedure.query(({ ctx }) =>
    ctx.run(Effect.flatMap(Analytics, (a) => a.jobStats(actorOf(ctx.principal)))),
  ),
})

const serviceOnly = (principal: { readonly kind: string }, action: string) =>
  principal.kind === "service"
    ? Effect.void
    : Effect.fail(
        new Forbidden({ reason: `Only the service role may ${action}: it covers every owner's data` }),
      )

export const projectionsRouter = router({
  /** The read models' row counts and the head of the log (service role). */
  status: authedProcedure.query(({ ctx }) =>
    ctx.run(
      serviceOnly(ctx.principal, "read the projections' status").pipe(
        Effect.andThen(Effect.flatMap(Projections, (p) => p.status())),
      ),
    ),
  ),
  /** Rebuilds every read model from the log in one transaction (service role). */
  rebuild: authedProcedure.mutation(({ ctx }) =>
    ctx.run(
      serviceOnly(ctx.principal, "rebuild the read models").pipe(
        Effect.andThen(Effect.flatMap(Projections, (p) => p.rebuild())),
      ),
    ),
  ),
})
