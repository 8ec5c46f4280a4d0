/**
 * `events.*`: the raw log, for clients that follow or audit it. Reads are limited to the
 * streams the caller may see (ownership, auth.ts).
 */
import { type LargeContent as LargeContentMode, resolveEvents } from "@chronicle/domain"
import { Json, JsonObject, NotFound, Uuid } from "@chronicle/events"
import { decodeCursor, EventStore, InvalidCursor, InvalidRead, type RecordedEvent } from "@chronicle/store"
import { tracked } from "@trpc/server"
import { Effect, Option, Schema, SchemaTransformation, Stream } from "effect"
import { canRead, listScope, type Principal } from "../auth.ts"
import { callerKey, jsonBytes } from "../budget.ts"
import { TooManyRequests, toTRPCError } from "../errors.ts"
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from "../limits.ts"
import { authedProcedure, router } from "../trpc.ts"
import { input, LargeContent } from "./schemas.ts"

// ----- schemas --------------------------------------------------------------------------

/** The largest stream version (a Postgres integer). */
const MAX_VERSION = 2_147_483_647

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
  /** First version to return (default 1). Versions are Postgres integers. */
  fromVersion: Schema.optional(
    Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 1, maximum: MAX_VERSION }))),
  ),
  /** The `nextCursor` of the previous page; an alternative to `fromVersion`. */
  cursor: Schema.optional(Schema.String),
  limit: Schema.optional(ListLimit),
  /** `omit`: large message and tool run values stay references (with their sizes). */
  largeContent: Schema.optional(LargeContent),
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
  largeContent: Schema.optional(LargeContent),
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
  largeContent: Schema.optional(LargeContent),
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
  return /^[1-9][0-9]{0,9}$/.test(input.cursor) && Number(input.cursor) <= MAX_VERSION
    ? Effect.succeed(Number(input.cursor))
    : Effect.fail(new InvalidCursor({ cursor: input.cursor }))
}

/**
 * The first read of a page asks for few events: they may each be as large as the event
 * limit, and the page must not hold more than its byte budget in memory. Later reads ask for
 * as many as the budget left leaves room for, judged by the largest event seen so far.
 */
const FIRST_READ = 8

interface Chunk<C> {
  readonly events: ReadonlyArray<RecordedEvent>
  /** Where the next read starts. */
  readonly next: C
  /** The read reached the end (of the stream, or of what the log holds now). */
  readonly end: boolean
}

/**
 * Reads up to `limit` events, a chunk at a time, stopping early once their JSON reaches
 * `maxBytes` (a page always holds at least one event). Returns where to resume: after the
 * last event returned, whichever way the page ended.
 */
const readWithinBudget = <C, E>(
  options: {
    readonly limit: number
    readonly maxBytes: number
    readonly start: C
    readonly largeContent: LargeContentMode | undefined
  },
  read: (from: C, count: number) => Effect.Effect<Chunk<C>, E, EventStore>,
  resumeAfter: (event: EventView) => C,
) =>
  Effect.gen(function* () {
    const items: Array<EventView> = []
    let bytes = 0
    let largest = 1
    let lastKept: EventView | undefined
    let from = options.start
    while (items.length < options.limit) {
      const wanted = options.limit - items.length
      const count =
        items.length === 0
          ? Math.min(wanted, FIRST_READ)
          : Math.min(wanted, Math.max(1, Math.floor((options.maxBytes - bytes) / largest)))
      const chunk = yield* read(from, count)
      // Large values read back before sizing: the page's budget counts what it carries.
      for (const view of yield* resolveEvents(chunk.events.map(toEventView), options.largeContent)) {
        const size = jsonBytes(view) + 1
        if (lastKept !== undefined && bytes + size > options.maxBytes) {
          return { items, position: resumeAfter(lastKept), end: false }
        }
        items.push(view)
        lastKept = view
        bytes += size
        largest = Math.max(largest, size)
      }
      from = chunk.next
      if (chunk.end) return { items, position: from, end: true }
      if (bytes >= options.maxBytes) break
    }
    return { items, position: from, end: false }
  })

/** One stream, if the principal may read it; another owner's stream is not found. */
export const readStream = Effect.fn("events.readStream")(function* (
  principal: Principal,
  input: typeof ReadStreamInput.Type,
  maxBytes: number = Number.POSITIVE_INFINITY,
) {
  const store = yield* EventStore
  const info = yield* store.streamInfo(input.streamId)
  if (Option.isNone(info) || !canRead(principal, info.value.ownerId)) {
    return yield* new NotFound({ entity: "Stream", id: input.streamId })
  }
  let version = info.value.version
  const page = yield* readWithinBudget(
    {
      limit: input.limit ?? DEFAULT_LIST_LIMIT,
      maxBytes,
      start: yield* fromVersionOf(input),
      largeContent: input.largeContent,
    },
    (fromVersion, limit) =>
      store.readStream(input.streamId, { fromVersion, limit }).pipe(
        Effect.map((chunk) => {
          version = chunk.version
          return {
            events: chunk.events,
            next: chunk.nextVersion ?? (chunk.events.at(-1)?.version ?? fromVersion - 1) + 1,
            end: chunk.nextVersion === undefined,
          }
        }),
      ),
    (event) => event.version + 1,
  )
  return {
    items: page.items,
    version,
    nextCursor: page.end ? null : String(page.position),
  } satisfies ReadStreamOutput
})

/** The whole log in its order (seq), limited to the streams the principal sees. */
export const readAll = Effect.fn("events.readAll")(function* (
  principal: Principal,
  input: typeof ReadAllInput.Type,
  maxBytes: number = Number.POSITIVE_INFINITY,
) {
  const store = yield* EventStore
  const page = yield* readWithinBudget(
    {
      limit: input.limit ?? DEFAULT_LIST_LIMIT,
      maxBytes,
      start: input.after,
      largeContent: input.largeContent,
    },
    (after: string | undefined, limit) =>
      store
        .readAll({ after, limit, types: input.types, ownerId: listScope(principal) ?? undefined })
        .pipe(Effect.map((chunk) => ({ events: chunk.events, next: chunk.cursor, end: chunk.caughtUp }))),
    // Every event a log reader returns is in the log's order, so it has a cursor.
    (event): string | undefined => event.cursor ?? "",
  )
  // Before the first read (a zero-event page cannot happen: limit >= 1) the position is set.
  const cursor = page.position ?? ""
  return {
    items: page.items,
    nextCursor: page.end ? null : cursor,
    cursor,
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
    .pipe(
      Stream.mapEffect((event) =>
        Effect.map(resolveEvents([toEventView(event)], input.largeContent), (views) => views[0]!),
      ),
    )
})

// ----- procedures -----------------------------------------------------------------------

export const eventsRouter = router({
  /**
   * Where the log ends now: pass `cursor` as `after` to `subscribe` (or `readAll`) to see only
   * what comes next.
   */
  head: authedProcedure.query(({ ctx }) =>
    ctx.run(
      Effect.map(
        Effect.flatMap(EventStore, (store) => store.head()),
        (head) => ({ cursor: head.cursor }),
      ),
    ),
  ),

  readStream: authedProcedure
    .input(input(ReadStreamInput))
    .query(({ ctx, input }) => ctx.run(readStream(ctx.principal, input, ctx.pageBytes))),

  readAll: authedProcedure
    .input(input(Schema.UndefinedOr(ReadAllInput)))
    .query(({ ctx, input }) => ctx.run(readAll(ctx.principal, input ?? {}, ctx.pageBytes))),

  subscribe: authedProcedure.input(input(Schema.UndefinedOr(SubscribeInput))).subscription(async function* ({
    ctx,
    input,
    signal,
  }) {
    const limit = ctx.limits.maxSubscriptions
    const release = ctx.subscriptions.acquire(callerKey(ctx.principal), limit)
    if (release === null) throw toTRPCError(new TooManyRequests({ what: "subscriptions", limit }))
    try {
      const events = await ctx.run(follow(ctx.principal, input ?? {}))
      for await (const event of ctx.stream(events, signal)) {
        // A log reader's events are all in the log's order.
        yield tracked(event.cursor ?? "", event)
      }
    } finally {
      release()
    }
  }),
})
