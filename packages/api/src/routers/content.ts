/** `messages.*`, `revisions.*`, `drafts.*`, `holes.*`, `toolRuns.*`: what is in a session. */
import { Content } from "@chronicle/domain"
import { Effect, Schema } from "effect"
import { inlineBytes } from "../limits.ts"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf, checkContentSize, checkValueSize } from "./actor.ts"
import {
  AsOf,
  CommandOptions,
  Fraction,
  input,
  Json,
  JsonObject,
  LargeContent,
  MessageBatch,
  MessageRole,
  Name,
  Page,
  Text,
  ToolRunStatus,
  Uuid,
} from "./schemas.ts"

const options = (i: {
  readonly expectedVersion?: number | undefined
  readonly idempotencyKey?: string | undefined
}) => ({
  expectedVersion: i.expectedVersion,
  idempotencyKey: i.idempotencyKey,
})

/** A list of a session's content, now or as of a checkpoint or version. */
const ListInput = Schema.Struct({ sessionId: Uuid, asOf: Schema.optional(AsOf), ...Page })

export const messagesRouter = router({
  append: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          role: MessageRole,
          content: Schema.String,
          metadata: Schema.optional(JsonObject),
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        checkContentSize(ctx.limits, [input], () => "content").pipe(
          Effect.andThen(
            Effect.flatMap(Content, (c) =>
              c.appendMessages(
                actorOf(ctx.principal),
                input.sessionId,
                [{ role: input.role, content: input.content, metadata: input.metadata }],
                options(input),
              ),
            ),
          ),
          Effect.map((messages) => messages[0]!),
        ),
      ),
    ),

  /** Up to 500 messages in one atomic append. */
  appendMany: authedProcedure
    .input(input(Schema.Struct({ sessionId: Uuid, messages: MessageBatch, ...CommandOptions })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        checkContentSize(ctx.limits, input.messages, (i) => `messages[${i}].content`).pipe(
          Effect.andThen(
            Effect.flatMap(Content, (c) =>
              c.appendMessages(actorOf(ctx.principal), input.sessionId, input.messages, options(input)),
            ),
          ),
          Effect.map((items) => ({ items })),
        ),
      ),
    ),

  /**
   * `order: "desc"` lists newest first, to read the end of a conversation without paging
   * through all of it; its cursors continue only a `desc` listing (and `asc` cursors an `asc` one).
   */
  list: authedProcedure
    .input(
      input(
        Schema.Struct({
          ...ListInput.fields,
          order: Schema.optional(Schema.Literals(["asc", "desc"])),
          largeContent: Schema.optional(LargeContent),
        }),
      ),
    )
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.listMessages(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})

export const revisionsRouter = router({
  add: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          ir: Json,
          note: Schema.optional(Schema.NullOr(Text(10_000))),
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.addRevision(
            actorOf(ctx.principal),
            input.sessionId,
            { ir: input.ir, note: input.note ?? null },
            options(input),
          ),
        ),
      ),
    ),
  list: authedProcedure
    .input(input(ListInput))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.listRevisions(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})

export const draftsRouter = router({
  add: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          code: Schema.String,
          language: Name(100),
          valid: Schema.Boolean,
          metrics: Schema.optional(JsonObject),
          /** The number of the revision this draft was generated from. */
          revisionNumber: Schema.optional(
            Schema.NullOr(Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1)))),
          ),
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        checkContentSize(ctx.limits, [{ content: input.code }], () => "code", inlineBytes(ctx.limits)).pipe(
          Effect.andThen(
            Effect.flatMap(Content, (c) =>
              c.recordDraft(
                actorOf(ctx.principal),
                input.sessionId,
                {
                  code: input.code,
                  language: input.language,
                  valid: input.valid,
                  ...(input.metrics !== undefined ? { metrics: input.metrics } : {}),
                  revisionNumber: input.revisionNumber ?? null,
                },
                options(input),
              ),
            ),
          ),
        ),
      ),
    ),
  list: authedProcedure
    .input(input(ListInput))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.listDrafts(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})

export const holesRouter = router({
  /** Resolves a typed hole; a later resolution may not have a lower confidence. */
  resolve: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          holeId: Name(200),
          value: Json,
          confidence: Fraction,
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.resolveHole(
            actorOf(ctx.principal),
            input.sessionId,
            { holeId: input.holeId, value: input.value, confidence: input.confidence },
            options(input),
          ),
        ),
      ),
    ),
  list: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          asOf: Schema.optional(AsOf),
          holeId: Schema.optional(Name(200)),
          ...Page,
        }),
      ),
    )
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.listHoles(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})

export const toolRunsRouter = router({
  /** Records a tool execution. Tool runs happened in the world: a rollback never reverts them. */
  record: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          tool: Name(200),
          input: Json,
          output: Schema.optional(Json),
          status: ToolRunStatus,
          durationMs: Schema.optional(
            Schema.NullOr(Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))),
          ),
          error: Schema.optional(Schema.NullOr(Text(10_000))),
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.andThen(
          checkValueSize(ctx.limits, [
            ["input", input.input],
            ["output", input.output],
          ]),
          () =>
            Effect.flatMap(Content, (c) =>
              c.recordToolRun(
                actorOf(ctx.principal),
                input.sessionId,
                {
                  tool: input.tool,
                  input: input.input,
                  ...(input.output !== undefined ? { output: input.output } : {}),
                  status: input.status,
                  durationMs: input.durationMs ?? null,
                  error: input.error ?? null,
                },
                options(input),
              ),
            ),
        ),
      ),
    ),
  list: authedProcedure
    .input(input(Schema.Struct({ ...ListInput.fields, largeContent: Schema.optional(LargeContent) })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.listToolRuns(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})
