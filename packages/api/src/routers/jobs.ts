/** `jobs.*`: background jobs and their tasks. queued → running ⇄ paused → completed | failed | cancelled. */
import { Jobs } from "@chronicle/domain"
import type { JobCommand } from "@chronicle/events"
import { Effect, Schema } from "effect"
import type { Principal } from "../auth.ts"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf } from "./actor.ts"
import {
  CommandOptions,
  Fraction,
  input,
  JobStateFilter,
  Json,
  Name,
  Page,
  Reason,
  TaskStatus,
  Text,
  Uuid,
} from "./schemas.ts"

type Lifecycle = Exclude<JobCommand, { type: "AddTask" | "UpdateTask" | "RecordArtifact" }>

const transition = (
  principal: Principal,
  id: string,
  command: Lifecycle,
  options: { readonly expectedVersion?: number | undefined; readonly idempotencyKey?: string | undefined },
) =>
  Effect.flatMap(Jobs, (j) =>
    j.transition(actorOf(principal), id, command, {
      expectedVersion: options.expectedVersion,
      idempotencyKey: options.idempotencyKey,
    }),
  )

const Id = { id: Uuid, ...CommandOptions }

export const jobsRouter = router({
  create: authedProcedure
    .input(
      input(
        Schema.Struct({
          type: Name(100),
          input: Schema.optional(Json),
          sessionId: Schema.optional(Schema.NullOr(Uuid)),
          parentJobId: Schema.optional(Schema.NullOr(Uuid)),
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Jobs, (j) => j.create(actorOf(ctx.principal), input))),
    ),

  get: authedProcedure
    .input(input(Schema.Struct({ id: Uuid })))
    .query(({ ctx, input }) => ctx.run(Effect.flatMap(Jobs, (j) => j.get(actorOf(ctx.principal), input.id)))),

  list: authedProcedure
    .input(
      input(
        Schema.UndefinedOr(
          Schema.Struct({
            ...Page,
            sessionId: Schema.optional(Uuid),
            state: Schema.optional(JobStateFilter),
            parentJobId: Schema.optional(Uuid),
          }),
        ),
      ),
    )
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Jobs, (j) => j.list(actorOf(ctx.principal), { ...input, maxBytes: ctx.pageBytes })),
      ),
    ),

  start: authedProcedure
    .input(input(Schema.Struct({ ...Id, worker: Schema.optional(Schema.NullOr(Text(200))) })))
    .mutation(({ ctx, input }) =>
      ctx.run(transition(ctx.principal, input.id, { type: "StartJob", worker: input.worker ?? null }, input)),
    ),

  progress: authedProcedure
    .input(
      input(
        Schema.Struct({ ...Id, progress: Fraction, message: Schema.optional(Schema.NullOr(Text(2000))) }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        transition(
          ctx.principal,
          input.id,
          { type: "ProgressJob", progress: input.progress, message: input.message ?? null },
          input,
        ),
      ),
    ),

  pause: authedProcedure
    .input(input(Schema.Struct({ ...Id, reason: Reason })))
    .mutation(({ ctx, input }) =>
      ctx.run(transition(ctx.principal, input.id, { type: "PauseJob", reason: input.reason ?? null }, input)),
    ),

  resume: authedProcedure
    .input(input(Schema.Struct(Id)))
    .mutation(({ ctx, input }) => ctx.run(transition(ctx.principal, input.id, { type: "ResumeJob" }, input))),

  complete: authedProcedure
    .input(input(Schema.Struct({ ...Id, output: Schema.optional(Json) })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        transition(ctx.principal, input.id, { type: "CompleteJob", output: input.output ?? null }, input),
      ),
    ),

  fail: authedProcedure
    .input(input(Schema.Struct({ ...Id, error: Text(10_000), details: Schema.optional(Json) })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        transition(
          ctx.principal,
          input.id,
          { type: "FailJob", error: input.error, details: input.details ?? null },
          input,
        ),
      ),
    ),

  cancel: authedProcedure
    .input(input(Schema.Struct({ ...Id, reason: Reason })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        transition(ctx.principal, input.id, { type: "CancelJob", reason: input.reason ?? null }, input),
      ),
    ),

  addTask: authedProcedure
    .input(input(Schema.Struct({ ...Id, name: Name(200), input: Schema.optional(Json) })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Jobs, (j) =>
          j.addTask(
            actorOf(ctx.principal),
            input.id,
            { name: input.name, ...(input.input !== undefined ? { input: input.input } : {}) },
            { expectedVersion: input.expectedVersion, idempotencyKey: input.idempotencyKey },
          ),
        ),
      ),
    ),

  updateTask: authedProcedure
    .input(
      input(
        Schema.Struct({
          ...Id,
          taskId: Uuid,
          status: TaskStatus,
          output: Schema.optional(Json),
          error: Schema.optional(Schema.NullOr(Text(10_000))),
          progress: Schema.optional(Schema.NullOr(Fraction)),
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Jobs, (j) =>
          j.updateTask(
            actorOf(ctx.principal),
            input.id,
            {
              taskId: input.taskId,
              status: input.status,
              ...(input.output !== undefined ? { output: input.output } : {}),
              error: input.error ?? null,
              progress: input.progress ?? null,
            },
            { expectedVersion: input.expectedVersion, idempotencyKey: input.idempotencyKey },
          ),
        ),
      ),
    ),

  listTasks: authedProcedure
    .input(input(Schema.Struct({ id: Uuid, ...Page })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Jobs, (j) =>
          j.listTasks(actorOf(ctx.principal), input.id, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})
