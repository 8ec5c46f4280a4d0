/**
 * `events.*`: the raw log, for clients that follow or audit it. Reads are limited to the
 * streams the caller may see (ownership, auth.ts).
 */
import { Json, JsonObject, NotFound, Uuid } from "@chronicle/events"
import { decodeCursor, EventStore, InvalidCursor, InvalidRead, type RecordedEvent } from "@chronicle/store"
import { tracked } from "@trpc/server"
import { Effect, Option, Schema, SchemaTransformation, Stream } from "effect"
import { canRead, listScope, type Principal } from "../auth.ts"
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from "../limits.ts"
import { authedProcedure, router } from "../trpc.ts"
import { input } from "./schemas.ts"

// ----- schemas --------------------------------------------------------------------------

/** `<category>-<uuid>`, taken in either case (as `Uuid` is) and decoded to lower case. */
export const StreamId = Schema.String.pipe(
  Schema.decode(SchemaTransformation.toLowerCase()),
  Schema.check(
    Schema.isPattern(/^[a-z][a-z0-9_]{0,62}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
      message: "must be <category>-<uuid>, such as session-0b6f2c7e-…",
    }),
  ),
)

/** A page size: 1 to 500, default 50. */
export const ListLimit = Schema.Int.pipe(
  Schema.check(Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(MAX_LIST_LIMIT)),
)

/** A position in the whole log, as handed out in `cursor` fields. Opaque. */
export const LogCursor = Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(64)))

export const EventTypes = Schema.Array(
  Schema.String.pipe(
    Schema.check(Schema.isPattern(/^[A-Z][A-Za-z0-9]{0,99}$/, { message: "must be an event type name" })),
  ),
).pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(100)))

export const EventView = Schema.Struct({
  eventId: Schema.String,
  streamId: Schema.String,
  /** 1, 2, 3 … within the stream. */
  version: Schema.Number,
  type: Schema.String,
  schemaVersion: Schema.Number,
  data: Json,
  metadata: JsonObject,
  /** Position in the whole log, in insert order (not commit order). */
  globalPosition: Schema.Number,
  /**
   * The event's place in the log's order: resume a log reader (`readAll`, `subscribe`)
   * strictly after it. Opaque. Null only in `readStream`, for an event that committed a moment
   * ago and is not in the log's order yet.
   */
  cursor: Schema.NullOr(Schema.String),
  /** ISO-8601. */
  recordedAt: Schema.String,
})
export type EventView = typeof EventView.Type

export const ReadStreamInput = Schema.Struct({
  streamId: StreamId,
  /** First version to return (default 1). */
  fromVersion: Schema.optional(Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1)))),
  /** The `nextCursor` of the previous page; an alternative to `fromVersion`. */
  cursor: Schema.optional(Schema.String),
  limit: Schema.optional(ListLimit),
})
export type ReadStreamInput = typeof ReadStreamInput.Encoded

export const ReadStreamOutput = Schema.Struct({
  items: Schema.Array(EventView),
  /** The stream's current version. */
  version: Schema.Number,
  /** Pass as `cursor` for the next page (it is the next version, as a string); null at the end. */
  nextCursor: Schema.NullOr(Schema.String),
})
export type ReadStreamOutput = typeof ReadStreamOutput.Type

export const ReadAllInput = Schema.Struct({
  /** Resume strictly after this cursor (an event's `cursor`, or a page's `cursor`). */
  after: Schema.optional(LogCursor),
  limit: Schema.optional(ListLimit),
  types: Schema.optional(EventTypes),
})
export type ReadAllInput = typeof ReadAllInput.Encoded

export const ReadAllOutput = Schema.Struct({
  items: Schema.Array(EventView),
  /** Pass as `after` for the next page; null when the reader has caught up with the log. */
  nextCursor: Schema.NullOr(Schema.String),
  /** Where this page ends: pass as `after` later (or to `subscribe`) to see what came since. */
  cursor: Schema.String,
})
export type ReadAllOutput = typeof ReadAllOutput.Type

export const SubscribeInput = Schema.Struct({
  /** Start strictly after this cursor; default: the start of the log. */
  after: Schema.optional(LogCursor),
  /** Only this session's events. */
  sessionId: Schema.optional(Uuid),
  types: Schema.optional(EventTypes),
  /** Set by the client when it reconnects: the id of the last event it got. Wins over `after`. */
  lastEventId: Schema.optional(LogCursor),
})
export type SubscribeInput = typeof SubscribeInput.Encoded

// ----- behaviour ------------------------------------------------------------------------

export const toEventView = (event: RecordedEvent): EventView => ({
  eventId: event.eventId,
  streamId: event.streamId,
  version: event.version,
  type: event.type,
  schemaVersion: event.schemaVersion,
  data: event.data,
  metadata: event.metadata,
  globalPosition: event.globalPosition,
  cursor: event.cursor,
  recordedAt: event.recordedAt.toISOString(),
})

const fromVersionOf = (input: typeof ReadStreamInput.Type) => {
  if (input.cursor === undefined) return Effect.succeed(input.fromVersion ?? 1)
  if (input.fromVersion !== undefined) {
    return Effect.fail(
      new InvalidRead({ path: "cursor", reason: "give either cursor or fromVersion, not both" }),
    )
  }
  return /^[1-9][0-9]{0,9}$/.test(input.cursor)
    ? Effect.succeed(Number(input.cursor))
    : Effect.fail(new InvalidCursor({ cursor: input.cursor }))
}

/** One stream, if the principal may read it; another owner's stream is not found. */
export const readStream = Effect.fn("events.readStream")(function* (
  principal: Principal,
  input: typeof ReadStreamInput.Type,
) {
  const store = yield* EventStore
  const info = yield* store.streamInfo(input.streamId)
  if (Option.isNone(info) || !canRead(principal, info.value.ownerId)) {
    return yield* new NotFound({ entity: "Stream", id: input.streamId })
  }
  const fromVersion = yield* fromVersionOf(input)
  const page = yield* store.readStream(input.streamId, {
    fromVersion,
    limit: input.limit ?? DEFAULT_LIST_LIMIT,
  })
  return {
    items: page.events.map(toEventView),
    version: page.version,
    nextCursor: page.nextVersion === undefined ? null : String(page.nextVersion),
  } satisfies ReadStreamOutput
})

/** The whole log in its order (seq), limited to the streams the principal sees. */
export const readAll = Effect.fn("events.readAll")(function* (
  principal: Principal,
  input: typeof ReadAllInput.Type,
) {
  const store = yield* EventStore
  const page = yield* store.readAll({
    after: input.after,
    limit: input.limit ?? DEFAULT_LIST_LIMIT,
    types: input.types,
    ownerId: listScope(principal) ?? undefined,
  })
  return {
    items: page.events.map(toEventView),
    nextCursor: page.caughtUp ? null : page.cursor,
    cursor: page.cursor,
  } satisfies ReadAllOutput
})

/**
 * The live tail: back-fills after the cursor, then follows. The store listens before it
 * back-fills, so nothing committed in between is missed.
 */
export const follow = Effect.fn("events.follow")(function* (
  principal: Principal,
  input: typeof SubscribeInput.Type,
) {
  const after = input.lastEventId ?? input.after
  // Checked here so a bad cursor fails the subscription before it starts.
  if (after !== undefined) yield* decodeCursor(after)
  const store = yield* EventStore
  return store
    .subscribe({
      after,
      types: input.types,
      streamIds: input.sessionId === undefined ? undefined : [`session-${input.sessionId}`],
      ownerId: listScope(principal) ?? undefined,
    })
    .pipe(Stream.map(toEventView))
})

// ----- procedures -----------------------------------------------------------------------

export const eventsRouter = router({
  readStream: authedProcedure
    .input(input(ReadStreamInput))
    .query(({ ctx, input }) => ctx.run(readStream(ctx.principal, input))),

  readAll: authedProcedure
    .input(input(Schema.UndefinedOr(ReadAllInput)))
    .query(({ ctx, input }) => ctx.run(readAll(ctx.principal, input ?? {}))),

  subscribe: authedProcedure.input(input(Schema.UndefinedOr(SubscribeInput))).subscription(async function* ({
    ctx,
    input,
    signal,
  }) {
    const events = await ctx.run(follow(ctx.principal, input ?? {}))
    for await (const event of ctx.stream(events, signal)) {
      // A log reader's events are all in the log's order.
      yield tracked(event.cursor ?? "", event)
    }
  }),
})
