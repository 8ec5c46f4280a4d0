/** `analytics.*` and `projections.*`: views over the read models, and their upkeep. */
import { Analytics } from "@chronicle/domain"
import { Forbidden } from "@chronicle/events"
import { Projections, type ProjectionsService, SNAPSHOT_LABEL } from "@chronicle/projections"
import { Effect, Schema } from "effect"
import type { Principal } from "../auth.ts"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf } from "./actor.ts"
import { ListLimit } from "./events.ts"
import { input, Page, Uuid } from "./schemas.ts"

const IsoDate = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^\d{4}-\d{2}-\d{2}$/, { message: "must be a date as YYYY-MM-DD" })),
)
const DayRange = Schema.Struct({ from: Schema.optional(IsoDate), to: Schema.optional(IsoDate) })

export const analyticsRouter = router({
  /** One session's summary, or a page of yours (most recently active first). */
  sessionSummary: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ sessionId: Schema.optional(Uuid), ...Page }))))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Analytics, (a) =>
          a.sessionSummary(actorOf(ctx.principal), { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
  /** Usage per owner: yours, or everyone's for the service role. */
  users: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ ...Page }))))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Analytics, (a) =>
          a.users(actorOf(ctx.principal), { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
  /** Newest first: messages, revisions, drafts, tool runs and job changes. */
  recentActivity: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ sessionId: Schema.optional(Uuid), ...Page }))))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Analytics, (a) =>
          a.recentActivity(actorOf(ctx.principal), { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
  draftValidation: authedProcedure.query(({ ctx }) =>
    ctx.run(Effect.flatMap(Analytics, (a) => a.draftValidation(actorOf(ctx.principal)))),
  ),
  jobStats: authedProcedure.query(({ ctx }) =>
    ctx.run(Effect.flatMap(Analytics, (a) => a.jobStats(actorOf(ctx.principal)))),
  ),
  /** Activity per UTC day (default: the last 30 days), from the async `activity` projection. */
  daily: authedProcedure
    .input(input(Schema.UndefinedOr(DayRange)))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Analytics, (a) => a.daily(actorOf(ctx.principal), input ?? {}))),
    ),
  /** Draft validation per UTC day and language. */
  draftValidationByDay: authedProcedure
    .input(input(Schema.UndefinedOr(DayRange)))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Analytics, (a) => a.draftValidationByDay(actorOf(ctx.principal), input ?? {}))),
    ),
})

/** The projections cover every owner's data: the service role, or the single user of dev mode. */
const serviceOnly = (principal: Principal, action: string) =>
  principal.kind === "service" || principal.dev
    ? Effect.void
    : Effect.fail(
        new Forbidden({ reason: `Only the service role may ${action}: it covers every owner's data` }),
      )

const ProjectionNames = Schema.Array(
  Schema.String.pipe(
    Schema.check(Schema.isPattern(/^[a-z][a-z0-9_]{0,39}$/, { message: "must be a projection name" })),
  ),
).pipe(Schema.check(Schema.isMaxLength(100)))

const RunId = Schema.Struct({ runId: Uuid })

const AsOf = Schema.Union([
  Schema.Struct({ cursor: Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(64))) }),
  Schema.Struct({ checkpointId: Uuid }),
  Schema.Struct({
    timestamp: Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(64))),
  }),
])

const Label = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(SNAPSHOT_LABEL, {
      message: "must start with a lower-case letter and hold only a-z, 0-9 and _ (at most 40)",
    }),
  ),
)

const withProjections = <A, E, R>(
  principal: Principal,
  action: string,
  f: (p: ProjectionsService) => Effect.Effect<A, E, R>,
) => serviceOnly(principal, action).pipe(Effect.andThen(Effect.flatMap(Projections, f)))

export const projectionsRouter = router({
  /** Every projection: version, mode, state, row counts, cursor, lag and throughput. */
  status: authedProcedure.query(({ ctx }) =>
    ctx.run(withProjections(ctx.principal, "read the projections' status", (p) => p.status())),
  ),
  /**
   * Starts a rebuild without downtime of the named projections (default: all) in the
   * background; follow it with `run`. `fromSnapshot` seeds it with a completed snapshot's
   * tables (built with the current versions) and replays only the events after it.
   */
  rebuild: authedProcedure
    .input(
      input(
        Schema.UndefinedOr(
          Schema.Struct({
            projections: Schema.optional(ProjectionNames),
            fromSnapshot: Schema.optional(Label),
          }),
        ),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        withProjections(ctx.principal, "rebuild the read models", (p) =>
          p
            .startRebuild({
              ...(input?.projections === undefined ? {} : { projections: input.projections }),
              ...(input?.fromSnapshot === undefined ? {} : { fromSnapshot: input.fromSnapshot }),
            })
            .pipe(
              Effect.tap((run) => p.launch(run.id)),
              Effect.map((run) => ({ runId: run.id, run })),
            ),
        ),
      ),
    ),
  /** Builds the projections as of a cursor, a checkpoint or a time into `analytics_asof_<label>`. */
  snapshot: authedProcedure
    .input(input(Schema.Struct({ label: Label, asOf: AsOf, projections: Schema.optional(ProjectionNames) })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        withProjections(ctx.principal, "build analytics snapshots", (p) =>
          p
            .startSnapshot({
              label: input.label,
              asOf: input.asOf,
              ...(input.projections === undefined ? {} : { projections: input.projections }),
            })
            .pipe(
              Effect.tap((run) => p.launch(run.id)),
              Effect.map((run) => ({ runId: run.id, run })),
            ),
        ),
      ),
    ),
  /** Rebuilds and snapshots, newest first. */
  runs: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ limit: Schema.optional(ListLimit) }))))
    .query(({ ctx, input }) =>
      ctx.run(withProjections(ctx.principal, "read projection runs", (p) => p.runs(input?.limit))),
    ),
  /** One run, with its progress (events done / total, events/s, ETA). */
  run: authedProcedure
    .input(input(RunId))
    .query(({ ctx, input }) =>
      ctx.run(withProjections(ctx.principal, "read projection runs", (p) => p.run(input.runId))),
    ),
  /** Stops a run; the live tables are untouched and its work is dropped. */
  cancel: authedProcedure
    .input(input(RunId))
    .mutation(({ ctx, input }) =>
      ctx.run(withProjections(ctx.principal, "cancel projection runs", (p) => p.cancel(input.runId))),
    ),
  /** The point-in-time snapshots that exist. */
  snapshots: authedProcedure.query(({ ctx }) =>
    ctx.run(withProjections(ctx.principal, "list analytics snapshots", (p) => p.snapshots())),
  ),
  dropSnapshot: authedProcedure
    .input(input(Schema.Struct({ label: Label })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        withProjections(ctx.principal, "drop analytics snapshots", (p) =>
          p.dropSnapshot(input.label).pipe(Effect.as({ dropped: input.label })),
        ),
      ),
    ),
})
