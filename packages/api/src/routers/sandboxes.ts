/** `sandboxes.*`: remote execution sandboxes (E2B and the like) that belong to a session. */
import { Sandboxes } from "@chronicle/domain"
import { Effect, Schema } from "effect"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf } from "./actor.ts"
import { CommandOptions, input, JsonObject, Name, Page, SandboxStatus, Text, Uuid } from "./schemas.ts"

export const sandboxesRouter = router({
  register: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          provider: Name(100),
          externalId: Name(500),
          url: Schema.optional(Schema.NullOr(Text(2000))),
          metadata: Schema.optional(JsonObject),
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Sandboxes, (s) => s.register(actorOf(ctx.principal), input))),
    ),

  get: authedProcedure
    .input(input(Schema.Struct({ id: Uuid })))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Sandboxes, (s) => s.get(actorOf(ctx.principal), input.id))),
    ),

  /** starting → running → stopped | failed | expired; the end states are final. */
  updateStatus: authedProcedure
    .input(
      input(
        Schema.Struct({
          id: Uuid,
          status: SandboxStatus,
          reason: Schema.optional(Schema.NullOr(Text(1000))),
          url: Schema.optional(Schema.NullOr(Text(2000))),
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sandboxes, (s) =>
          s.changeStatus(
            actorOf(ctx.principal),
            input.id,
            { status: input.status, reason: input.reason ?? null, url: input.url ?? null },
            { expectedVersion: input.expectedVersion, idempotencyKey: input.idempotencyKey },
          ),
        ),
      ),
    ),

  list: authedProcedure
    .input(input(Schema.Struct({ sessionId: Uuid, status: Schema.optional(SandboxStatus), ...Page })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sandboxes, (s) =>
          s.list(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})
