/** `sessions.*`, `checkpoints.*` and `imports.*`: a session's lifecycle, history and time travel. */
import { resolveEvents, Sessions } from "@chronicle/domain"
import { Effect, Schema } from "effect"
import { inlineBytes } from "../limits.ts"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf, checkContentSize } from "./actor.ts"
import {
  AsOf,
  CommandOptions,
  ExternalKey,
  ImportedMessage,
  input,
  JsonObject,
  LargeContent,
  Page,
  Reason,
  SessionStatus,
  Text,
  Title,
  Uuid,
} from "./schemas.ts"

export const CreateSessionInput = Schema.Struct({
  title: Schema.optional(Title),
  metadata: Schema.optional(JsonObject),
  /** A key of your own (a thread or continuation id), unique among your sessions. */
  externalKey: Schema.optional(Schema.NullOr(ExternalKey)),
})

/** Text to find in a session's title or external key, or at the start of its id: 1 to 200 characters once trimmed. */
const SessionSearch = Schema.Trim.pipe(
  Schema.check(
    Schema.isMinLength(1, { message: "must hold at least one character besides spaces" }),
    Schema.isMaxLength(200),
  ),
)

/** An ISO date (a whole UTC day) or an ISO timestamp; the domain checks that it names a real day. */
const DateOrTimestamp = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))?$/, {
      message: "must be an ISO date (2026-11-24) or an ISO timestamp with a time zone (2026-11-24T10:00:00Z)",
    }),
  ),
)

export const ListSessionsInput = Schema.Struct({
  ...Page,
  status: Schema.optional(SessionStatus),
  parentId: Schema.optional(Uuid),
  search: Schema.optional(SessionSearch),
  /** Created at or after this date (from its start, UTC) or instant. */
  createdFrom: Schema.optional(DateOrTimestamp),
  /** Created at or before this date (the whole day, UTC) or instant. */
  createdTo: Schema.optional(DateOrTimestamp),
})

export const sessionsRouter = router({
  create: authedProcedure
    .input(input(Schema.UndefinedOr(CreateSessionInput)))
    .mutation(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Sessions, (s) => s.create(actorOf(ctx.principal), input ?? {}))),
    ),

  /** The session with this external key, created if absent — atomically. */
  ensure: authedProcedure
    .input(
      input(
        Schema.Struct({
          externalKey: ExternalKey,
          title: Schema.optional(Title),
          metadata: Schema.optional(JsonObject),
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Sessions, (s) => s.ensure(actorOf(ctx.principal), input))),
    ),

  getByKey: authedProcedure
    .input(input(Schema.Struct({ externalKey: ExternalKey })))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Sessions, (s) => s.getByKey(actorOf(ctx.principal), input.externalKey))),
    ),

  get: authedProcedure
    .input(input(Schema.Struct({ id: Uuid, asOf: Schema.optional(AsOf) })))
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Sessions, (s) => s.get(actorOf(ctx.principal), input.id, input.asOf))),
    ),

  /** Newest first; filtered by status, parent, text and creation date. */
  list: authedProcedure
    .input(input(Schema.UndefinedOr(ListSessionsInput)))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.list(actorOf(ctx.principal), { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),

  update: authedProcedure
    .input(
      input(
        Schema.Struct({
          id: Uuid,
          title: Schema.optional(Title),
          metadata: Schema.optional(JsonObject),
          expectedVersion: CommandOptions.expectedVersion,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.update(
            actorOf(ctx.principal),
            input.id,
            {
              ...(input.title !== undefined ? { title: input.title } : {}),
              ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
            },
            { expectedVersion: input.expectedVersion },
          ),
        ),
      ),
    ),

  archive: authedProcedure
    .input(input(Schema.Struct({ id: Uuid, reason: Reason })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) => s.archive(actorOf(ctx.principal), input.id, input.reason ?? null)),
      ),
    ),

  /** Soft delete: the events stay; the session reads as deleted and takes no more appends. */
  delete: authedProcedure
    .input(input(Schema.Struct({ id: Uuid, reason: Reason })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) => s.delete(actorOf(ctx.principal), input.id, input.reason ?? null)),
      ),
    ),

  rollback: authedProcedure
    .input(
      input(
        Schema.Union([
          Schema.Struct({ id: Uuid, checkpointId: Uuid, expectedVersion: CommandOptions.expectedVersion }),
          Schema.Struct({
            id: Uuid,
            toVersion: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))),
            expectedVersion: CommandOptions.expectedVersion,
          }),
        ]),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.rollback(
            actorOf(ctx.principal),
            input.id,
            "checkpointId" in input ? { checkpointId: input.checkpointId } : { toVersion: input.toVersion },
            { expectedVersion: input.expectedVersion },
          ),
        ),
      ),
    ),

  /** A new session whose content is this one's as of a checkpoint or version. */
  fork: authedProcedure
    .input(
      input(
        Schema.Union([
          Schema.Struct({
            id: Uuid,
            checkpointId: Uuid,
            title: Schema.optional(Title),
            metadata: Schema.optional(JsonObject),
          }),
          Schema.Struct({
            id: Uuid,
            atVersion: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))),
            title: Schema.optional(Title),
            metadata: Schema.optional(JsonObject),
          }),
        ]),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.fork(
            actorOf(ctx.principal),
            input.id,
            "checkpointId" in input ? { checkpointId: input.checkpointId } : { atVersion: input.atVersion },
            {
              ...(input.title !== undefined ? { title: input.title } : {}),
              ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
            },
          ),
        ),
      ),
    ),

  /** Every event of the session; content events of abandoned branches have `reverted: true`. */
  timeline: authedProcedure
    .input(input(Schema.Struct({ id: Uuid, ...Page, largeContent: Schema.optional(LargeContent) })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.timeline(actorOf(ctx.principal), input.id, { ...input, maxBytes: ctx.pageBytes }),
        ).pipe(
          Effect.flatMap((page) =>
            Effect.map(resolveEvents(page.items, input.largeContent), (items) => ({ ...page, items })),
          ),
        ),
      ),
    ),

  /**
   * The session and its events, to archive it or move it elsewhere, a page at a time (follow
   * `nextCursor`): every page carries the session as of the version the first page saw, and
   * the pages end there.
   */
  export: authedProcedure
    .input(input(Schema.Struct({ id: Uuid, ...Page, largeContent: Schema.optional(LargeContent) })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.export(actorOf(ctx.principal), input.id, { ...input, maxBytes: ctx.pageBytes }),
        ).pipe(
          Effect.flatMap((page) =>
            Effect.map(resolveEvents(page.events, input.largeContent), (events) => ({ ...page, events })),
          ),
        ),
      ),
    ),
})

export const checkpointsRouter = router({
  create: authedProcedure
    .input(
      input(
        Schema.Struct({
          sessionId: Uuid,
          label: Schema.optional(Schema.NullOr(Text(200))),
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.createCheckpoint(actorOf(ctx.principal), input.sessionId, input.label ?? null, {
            expectedVersion: input.expectedVersion,
            idempotencyKey: input.idempotencyKey,
          }),
        ),
      ),
    ),

  list: authedProcedure
    .input(input(Schema.Struct({ sessionId: Uuid, ...Page })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Sessions, (s) =>
          s.listCheckpoints(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),
})

export const ImportConversationInput = Schema.Struct({
  title: Schema.optional(Title),
  metadata: Schema.optional(JsonObject),
  externalKey: Schema.optional(Schema.NullOr(ExternalKey)),
  messages: Schema.Array(ImportedMessage).pipe(Schema.check(Schema.isMaxLength(5000))),
})

export const importsRouter = router({
  /**
   * A legacy in-memory conversation of up to 5,000 messages, brought in as a new session: one
   * transaction of appends of at most 500 events, so it lands whole or not at all.
   */
  conversation: authedProcedure.input(input(ImportConversationInput)).mutation(({ ctx, input }) =>
    ctx.run(
      checkContentSize(
        ctx.limits,
        // The content alone: imported messages stay inside their event, which bounds the rest.
        input.messages.map((m) => ({ content: m.content })),
        (i) => `messages[${i}].content`,
        inlineBytes(ctx.limits),
      ).pipe(
        Effect.andThen(Effect.flatMap(Sessions, (s) => s.importConversation(actorOf(ctx.principal), input))),
      ),
    ),
  ),
})
