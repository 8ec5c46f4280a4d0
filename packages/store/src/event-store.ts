import { Array as Arr, Context, Effect, Layer, Option, PubSub, Schedule, Stream } from "effect"
import { type AppendOptions, type AppendResult, type NewEvent, runAppend, validateAppend } from "./append.ts"
import { type Cursor, decodeCursor, encodeCursor, START } from "./cursor.ts"
import { CurrentTransaction, Database } from "./database.ts"
import { type AppendError, InvalidRead, type ReadError } from "./errors.ts"
import { type GroupCommitOptions, makeGroupCommitter } from "./group-commit.ts"
import {
  type EventDetails,
  eventDetails,
  findBatchByEventId,
  findEventById,
  type RecordedBatch,
  readStreamWithin,
} from "./lookups.ts"
import { EVENT_COLUMNS, type EventRow, type RecordedEvent, toRecorded } from "./recorded.ts"
import { type SequencerOptions, startSequencer } from "./sequencer.ts"
import { isUuid, parseStreamId, STREAM_ID_FORMAT } from "./stream-id.ts"
import { type Kept, makeTail, type TailOptions, type TailRow } from "./tail.ts"

export {
  type AppendedEvent,
  type AppendOptions,
  type AppendResult,
  type ExpectedVersion,
  idempotentEventId,
  type NewEvent,
} from "./append.ts"
export { BATCH_SIZE_KEY, type EventDetails, type RecordedBatch } from "./lookups.ts"
export type { RecordedEvent } from "./recorded.ts"

export interface StreamInfo {
  readonly streamId: string
  readonly streamType: string
  readonly version: number
  readonly ownerId: string | null
  readonly createdAt: Date
  readonly updatedAt: Date
}

export interface ReadStreamOptions {
  /** First version to return (inclusive). Default 1. */
  readonly fromVersion?: number | undefined
  /** Last version to return (inclusive). Default: the stream's current version. */
  readonly toVersion?: number | undefined
  readonly limit?: number | undefined
  /**
   * The most bytes of JSON (data + metadata, estimated as text, plus a fixed overhead per
   * event) the page may take; the page ends early once the events reach it, with
   * `nextVersion` set. The first event is always returned. Unset: no byte limit.
   */
  readonly maxBytes?: number | undefined
}

export interface StreamPage {
  readonly events: ReadonlyArray<RecordedEvent>
  /** The stream's current version (0 when it has no events). */
  readonly version: number
  /** Where the next page starts, when there may be more (up to `toVersion`, when given). */
  readonly nextVersion: number | undefined
}

export interface ReadAllOptions {
  /** Resume strictly after this cursor. Default: the start of the log. */
  readonly after?: Cursor | undefined
  readonly limit?: number | undefined
  /** Only events of these types. */
  readonly types?: ReadonlyArray<string> | undefined
  /** Only events of these streams. */
  readonly streamIds?: ReadonlyArray<string> | undefined
  /** Only events of streams this owner owns (`chronicle.streams.owner_id`); a UUID. */
  readonly ownerId?: string | undefined
}

export interface LogPage {
  readonly events: ReadonlyArray<RecordedEvent>
  /**
   * Resume here for the next page: past every event this page looked at, delivered or not
   * (a filtered read moves on even through stretches where nothing matched).
   */
  readonly cursor: Cursor
  /** True when the page reached the head of the log: nothing more is there yet. */
  readonly caughtUp: boolean
}

export type SubscribeOptions = Omit<ReadAllOptions, "limit">

/** Most events one pull of a subscription returns (and one of its reads of the log asks for). */
const SUBSCRIPTION_PAGE = 100

export interface Head {
  /** The cursor of the newest event in the log's order. */
  readonly cursor: Cursor
  /** How many events the log's order holds (the newest seq). */
  readonly seq: number
  /** The highest global position committed so far (0 for an empty log). */
  readonly globalPosition: number
}

/**
 * The least time between the starts of two sequencer passes while appends keep coming: one
 * writer appending back to back shares a pass (a round trip and a commit) among the appends of
 * these milliseconds instead of paying one per append (measured: 1 writer 515 -> 653 appends/s,
 * 16 writers +15 %), and the live tail waits at most this much longer. A reader waiting for its
 * own appends (`flush`) never waits for it.
 */
export const DEFAULT_MIN_PASS_INTERVAL_MS = 5

export interface EventStoreOptions {
  /** Most events one append may carry. Default 500. */
  readonly maxBatchSize?: number
  /** Most bytes of JSON (data + metadata) one event may carry. Default 1 MiB. */
  readonly maxEventBytes?: number
  /** Most events one read returns. Default 1,000. */
  readonly maxReadLimit?: number
  /**
   * How far past its cursor one filtered read of the whole log looks for matches before it
   * returns (with a cursor past what it looked at). Default 10,000 events.
   */
  readonly scanWindow?: number
  /** Subscriptions re-read at least this often, whatever LISTEN/NOTIFY says. Default 500 ms. */
  readonly pollIntervalMs?: number
  /**
   * Wake subscriptions with LISTEN/NOTIFY. Default true. Behind a transaction-mode pooler
   * LISTEN does not work: turn it off and subscriptions poll.
   */
  readonly listen?: boolean
  /** The sequencer's settings (see sequencer.ts). */
  readonly sequencer?: Partial<SequencerOptions>
  /** Group commit (see group-commit.ts). Default 2 slots, groups of up to 50. */
  readonly groupCommit?: Partial<GroupCommitOptions>
  /** The live tail subscriptions share (see tail.ts). Default 10,000 events or 32 MiB. */
  readonly tail?: Partial<TailOptions>
}

export const NOTIFY_CHANNEL = "chronicle_events"
const DEFAULTS = {
  maxBatchSize: 500,
  maxEventBytes: 1024 * 1024,
  maxReadLimit: 1000,
  scanWindow: 10_000,
  pollIntervalMs: 500,
  listen: true,
}

export interface EventStoreService {
  readonly append: (
    streamId: string,
    events: ReadonlyArray<NewEvent>,
    options?: AppendOptions,
  ) => Effect.Effect<AppendResult, AppendError>
  readonly readStream: (streamId: string, options?: ReadStreamOptions) => Effect.Effect<StreamPage, ReadError>
  /** A page of the whole log in its order; sees every append this process committed before. */
  readonly readAll: (options?: ReadAllOptions) => Effect.Effect<LogPage, ReadError>
  /** Back-fills from `after`, then follows the log as it grows; never ends on its own. */
  readonly subscribe: (options?: SubscribeOptions) => Stream.Stream<RecordedEvent, ReadError>
  readonly streamInfo: (streamId: string) => Effect.Effect<Option.Option<StreamInfo>, ReadError>
  /** The event of this stream with this id, if the stream holds one. */
  readonly findEventById: (
    streamId: string,
    eventId: string,
  ) => Effect.Effect<Option.Option<RecordedEvent>, ReadError>
  /**
   * The batch the event with this id began (its `metadata.batchSize` events, see
   * `BATCH_SIZE_KEY`) and the stream's current version, if the stream holds the event.
   */
  readonly findBatchByEventId: (
    streamId: string,
    eventId: string,
  ) => Effect.Effect<Option.Option<RecordedBatch>, ReadError>
  /**
   * The exact time each of these events was recorded and its stream's owner, by event id (an
   * export writes them, so that an import restores the log as it was); ids of no event are
   * left out.
   */
  readonly eventDetails: (
    eventIds: ReadonlyArray<string>,
  ) => Effect.Effect<ReadonlyMap<string, EventDetails>, ReadError>
  /** The head of the log's order (after the appends this process committed). */
  readonly head: () => Effect.Effect<Head>
  /** Returns once every append this process committed before the call is in the log's order. */
  readonly sequenced: () => Effect.Effect<void>
  /**
   * Returns once every event committed before the call is in the log's order, whoever wrote it:
   * for readers that must see the whole log as it stands (an export, a snapshot's bound).
   */
  readonly sequenceAll: () => Effect.Effect<void>
}

/** The event log: append with optimistic concurrency and idempotency, read, follow. */
export class EventStore extends Context.Service<EventStore, EventStoreService>()(
  "@chronicle/store/EventStore",
) {
  static readonly layer = (options: EventStoreOptions = {}): Layer.Layer<EventStore, never, Database> =>
    Layer.effect(EventStore, makeEventStore(options))
}

const positiveInt = (path: string, value: number | undefined, fallback: number, max: number) =>
  value === undefined
    ? Effect.succeed(fallback)
    : Number.isInteger(value) && value >= 1 && value <= max
      ? Effect.succeed(value)
      : Effect.fail(
          new InvalidRead({ path, reason: `must be a whole number from 1 to ${max}, got ${value}` }),
        )

const jsonList = (path: string, values: ReadonlyArray<string> | undefined) =>
  values === undefined
    ? Effect.succeed(null)
    : values.length === 0 || values.some((v) => typeof v !== "string" || v.length === 0)
      ? Effect.fail(new InvalidRead({ path, reason: "must be a non-empty list of non-empty strings" }))
      : Effect.succeed(JSON.stringify(values))

const ownerFilter = (ownerId: string | undefined) =>
  ownerId === undefined
    ? Effect.succeed(null)
    : isUuid(ownerId.toLowerCase())
      ? Effect.succeed(ownerId.toLowerCase())
      : Effect.fail(
          new InvalidRead({ path: "ownerId", reason: `must be a UUID, got ${JSON.stringify(ownerId)}` }),
        )

const invalidStream = (streamId: string) =>
  new InvalidRead({
    path: "streamId",
    reason: `must be ${STREAM_ID_FORMAT}, got ${JSON.stringify(streamId)}`,
  })

const makeEventStore = (options: EventStoreOptions) =>
  Effect.gen(function* () {
    const config = { ...DEFAULTS, ...options }
    const db = yield* Database

    // Every batch sequenced (by this process, or announced by another's NOTIFY) wakes the
    // subscribers, which re-read from their cursors. A sliding buffer of one coalesces bursts,
    // and a wake-up that arrives while a subscriber reads is kept for its next wait.
    const wakeups = yield* PubSub.sliding<void>(1)
    const sequencer = yield* startSequencer(
      {
        pollIntervalMs: db.kind === "pglite" ? 1000 : 20,
        minPassIntervalMs: DEFAULT_MIN_PASS_INTERVAL_MS,
        leaseSeconds: 10,
        batchSize: 10_000,
        ...options.sequencer,
      },
      PubSub.publish(wakeups, undefined),
    )

    const committer = yield* makeGroupCommitter(db, { slots: 2, maxGroup: 50, ...options.groupCommit })

    const append = Effect.fn("EventStore.append")(function* (
      streamId: string,
      events: ReadonlyArray<NewEvent>,
      appendOptions: AppendOptions = {},
    ) {
      const batch = yield* validateAppend(config, streamId, events, appendOptions)
      // An append that is its own transaction may share one with others (group commit); one
      // inside a caller's transaction runs in it.
      const result =
        (yield* CurrentTransaction) === undefined
          ? yield* committer.append(streamId, batch)
          : yield* runAppend(db, streamId, batch)
      // Inside a caller's transaction the events exist for others only once it commits.
      if (!result.duplicate) yield* db.afterCommit(sequencer.poke)
      return result
    })

    // ----- reads --------------------------------------------------------------------------

    const readStream = Effect.fn("EventStore.readStream")(function* (
      streamId: string,
      readOptions: ReadStreamOptions = {},
    ) {
      if (!parseStreamId(streamId)) return yield* invalidStream(streamId)
      // This process's own appends are in the log's order first, so they read with their cursor.
      yield* sequencer.flush
      const from = readOptions.fromVersion ?? 1
      if (!Number.isInteger(from) || from < 0) {
        return yield* new InvalidRead({
          path: "fromVersion",
          reason: `must be a whole number >= 0, got ${from}`,
        })
      }
      const to = readOptions.toVersion
      if (to !== undefined && (!Number.isInteger(to) || to < 0)) {
        return yield* new InvalidRead({ path: "toVersion", reason: `must be a whole number >= 0, got ${to}` })
      }
      const maxBytes = readOptions.maxBytes
      if (maxBytes !== undefined && !(maxBytes > 0)) {
        return yield* new InvalidRead({ path: "maxBytes", reason: `must be a number > 0, got ${maxBytes}` })
      }
      const limit = yield* positiveInt("limit", readOptions.limit, config.maxReadLimit, config.maxReadLimit)
      return yield* readStreamWithin(db, streamId, { from, to, limit, maxBytes }).pipe(Effect.orDie)
    })

    const eventIdOf = (eventId: string) =>
      isUuid(eventId.toLowerCase())
        ? Effect.succeed(eventId.toLowerCase())
        : Effect.fail(
            new InvalidRead({ path: "eventId", reason: `must be a UUID, got ${JSON.stringify(eventId)}` }),
          )

    const findEvent = Effect.fn("EventStore.findEventById")(function* (streamId: string, eventId: string) {
      if (!parseStreamId(streamId)) return yield* invalidStream(streamId)
      const id = yield* eventIdOf(eventId)
      return yield* findEventById(db, streamId, id).pipe(Effect.orDie)
    })

    const findBatch = Effect.fn("EventStore.findBatchByEventId")(function* (
      streamId: string,
      eventId: string,
    ) {
      if (!parseStreamId(streamId)) return yield* invalidStream(streamId)
      const id = yield* eventIdOf(eventId)
      return yield* findBatchByEventId(db, streamId, id).pipe(Effect.orDie)
    })

    const details = Effect.fn("EventStore.eventDetails")(function* (eventIds: ReadonlyArray<string>) {
      const ids: Array<string> = []
      for (const eventId of eventIds) ids.push(yield* eventIdOf(eventId))
      return yield* eventDetails(db, ids).pipe(Effect.orDie)
    })

    /**
     * Events after `after` in the log's order, at most `limit`, looking at most `scanWindow`
     * seqs ahead; the page's cursor is past everything it looked at.
     */
    const readPage = (
      after: bigint,
      limit: number,
      types: string | null,
      streamIds: string | null,
      ownerId: string | null,
    ) =>
      Effect.gen(function* () {
        const window = Math.max(config.scanWindow, limit)
        const rows = yield* db.query<EventRow & { head: string }>(
          // The head as a one-row subquery, not a join to the sequencer's table: its planner
          // estimate (hundreds of rows for a never-analyzed table) multiplied the page's cost
          // past jit_above_cost, and every page paid ~200 ms of JIT compilation.
          `select page.*, head.last_seq::text as head
             from (select (select last_seq from chronicle.sequencer) as last_seq) head
             left join lateral (
               select ${EVENT_COLUMNS}, q.seq::text as seq, q.seq as seq_order
                 from chronicle.event_seq q
                 join chronicle.events e on e.global_position = q.global_position
                where q.seq > $1::bigint and q.seq <= least($1::bigint + $2::bigint, head.last_seq)
                  and ($3::text::jsonb is null or e.type = any(array(select jsonb_array_elements_text($3::text::jsonb))))
                  and ($4::text::jsonb is null or e.stream_id = any(array(select jsonb_array_elements_text($4::text::jsonb))))
                  and ($5::uuid is null or exists (
                        select 1 from chronicle.streams s where s.stream_id = e.stream_id and s.owner_id = $5::uuid))
                order by q.seq
                limit $6) page on true
            order by page.seq_order`,
          [after.toString(), window, types, streamIds, ownerId, limit],
        )
        const head = BigInt(rows[0]?.head ?? "0")
        const events = rows.filter((r) => r.event_id !== null).map(toRecorded)
        const full = events.length === limit
        // A full page resumes after its last event; otherwise it looked as far as it could.
        const scannedTo = full
          ? BigInt(rows.at(-1)!.seq!)
          : head < after + BigInt(window)
            ? head
            : after + BigInt(window)
        const next = scannedTo > after ? scannedTo : after
        return { events, cursor: encodeCursor(next), caughtUp: !full && next >= head } satisfies LogPage
      })

    const decodeAfter = (after: Cursor | undefined) =>
      after === undefined ? Effect.succeed(START) : decodeCursor(after)

    const readAll = Effect.fn("EventStore.readAll")(function* (readOptions: ReadAllOptions = {}) {
      const after = yield* decodeAfter(readOptions.after)
      const limit = yield* positiveInt("limit", readOptions.limit, config.maxReadLimit, config.maxReadLimit)
      const types = yield* jsonList("types", readOptions.types)
      const streamIds = yield* jsonList("streamIds", readOptions.streamIds)
      const ownerId = yield* ownerFilter(readOptions.ownerId)
      yield* sequencer.flush
      return yield* readPage(after, limit, types, streamIds, ownerId).pipe(Effect.orDie)
    })

    // ----- subscriptions ------------------------------------------------------------------

    // Batches other processes sequence arrive as NOTIFY (this process's own are already known).
    if (config.listen) {
      yield* db.notifications(NOTIFY_CHANNEL).pipe(
        Stream.runForEach((origin) =>
          origin === sequencer.origin ? Effect.void : PubSub.publish(wakeups, undefined),
        ),
        Effect.tapError((error) =>
          Effect.logWarning(
            `LISTEN ${NOTIFY_CHANNEL} failed; subscriptions fall back to polling until it is back`,
            error,
          ),
        ),
        Effect.retry(Schedule.spaced("5 seconds")),
        Effect.forkScoped,
      )
    }

    // One reader of the head for every subscription of this process (tail.ts).
    const tail = yield* makeTail<RecordedEvent, EventRow & TailRow>(
      db,
      {
        maxEvents: 10_000,
        maxBytes: 32 * 1024 * 1024,
        page: 500,
        pollIntervalMs: config.pollIntervalMs,
        ...options.tail,
      },
      {
        text: `select ${EVENT_COLUMNS}, q.seq::text as seq, s.owner_id::text as owner_id,
                      (pg_column_size(e.data) + pg_column_size(e.metadata))::int as bytes
                 from chronicle.event_seq q
                 join chronicle.events e on e.global_position = q.global_position
                 join chronicle.streams s on s.stream_id = e.stream_id
                where q.seq > $1::bigint
                order by q.seq
                limit $2`,
        params: (after, limit) => [after.toString(), limit],
      },
      toRecorded,
      wakeups,
    )

    /**
     * A subscription is pulled: each pull returns the next events past its cursor, from the
     * tail's memory while it keeps up, from the log while it is further behind. Nothing is
     * pushed to it, so a subscriber that stops reading holds at most the page it was last
     * given and delays nobody; when it reads again it resumes from its cursor, through the log
     * if the tail has moved on.
     */
    const subscribe = (subscribeOptions: SubscribeOptions = {}): Stream.Stream<RecordedEvent, ReadError> =>
      Stream.scoped(
        Stream.fromPull(
          Effect.gen(function* () {
            const updated = yield* PubSub.subscribe(tail.updates)
            let after = yield* decodeAfter(subscribeOptions.after)
            const types = yield* jsonList("types", subscribeOptions.types)
            const streamIds = yield* jsonList("streamIds", subscribeOptions.streamIds)
            const ownerId = yield* ownerFilter(subscribeOptions.ownerId)
            yield* Effect.acquireRelease(tail.join, () => tail.leave)
            const typeSet = subscribeOptions.types === undefined ? null : new Set(subscribeOptions.types)
            const streamSet =
              subscribeOptions.streamIds === undefined ? null : new Set(subscribeOptions.streamIds)
            const matches = (k: Kept<RecordedEvent>) =>
              (typeSet === null || typeSet.has(k.event.type)) &&
              (streamSet === null || streamSet.has(k.event.streamId)) &&
              (ownerId === null || k.ownerId === ownerId)
            const batch = Math.min(config.maxReadLimit, SUBSCRIPTION_PAGE)
            // A database that is briefly away must not end a live subscription.
            const readLog = Effect.suspend(() => readPage(after, batch, types, streamIds, ownerId)).pipe(
              Effect.tapError((error) => Effect.logWarning("subscription read failed; retrying", error)),
              Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
              Effect.orDie,
            )
            const next: Effect.Effect<Arr.NonEmptyReadonlyArray<RecordedEvent>> = Effect.gen(function* () {
              while (true) {
                const served = tail.after(after, batch, matches)
                if (served !== undefined) {
                  after = served.through
                  if (Arr.isReadonlyArrayNonEmpty(served.events)) return served.events
                  // Caught up with the tail: wait for it to move (memory only, no query).
                  yield* PubSub.take(updated).pipe(Effect.timeoutOption("5 seconds"))
                  continue
                }
                // Further behind than the tail keeps: read the log, filtered there, until caught up.
                const page = yield* readLog
                after = yield* decodeCursor(page.cursor).pipe(Effect.orDie)
                if (Arr.isReadonlyArrayNonEmpty(page.events)) return page.events
                if (page.caughtUp) yield* PubSub.take(updated).pipe(Effect.timeoutOption("1 second"))
              }
            })
            return next
          }),
        ),
      )

    const streamInfo = Effect.fn("EventStore.streamInfo")(function* (streamId: string) {
      if (!parseStreamId(streamId)) return yield* invalidStream(streamId)
      const rows = yield* db
        .query<{
          stream_id: string
          stream_type: string
          version: number
          owner_id: string | null
          created_at: Date
          updated_at: Date
        }>(
          `select stream_id, stream_type, version, owner_id::text, created_at, updated_at
             from chronicle.streams where stream_id = $1`,
          [streamId],
        )
        .pipe(Effect.orDie)
      return Option.fromNullishOr(rows[0]).pipe(
        Option.map((r) => ({
          streamId: r.stream_id,
          streamType: r.stream_type,
          version: r.version,
          ownerId: r.owner_id,
          createdAt: new Date(r.created_at),
          updatedAt: new Date(r.updated_at),
        })),
      )
    })

    const head = Effect.fn("EventStore.head")(function* () {
      yield* sequencer.flush
      const rows = yield* db
        .query<{ last_seq: string; max_position: string | null }>(
          `select (select last_seq from chronicle.sequencer)::text as last_seq,
                  (select max(global_position) from chronicle.events)::text as max_position`,
        )
        .pipe(Effect.orDie)
      const seq = BigInt(rows[0]?.last_seq ?? "0")
      return {
        cursor: encodeCursor(seq),
        seq: Number(seq),
        globalPosition: Number(rows[0]?.max_position ?? 0),
      } satisfies Head
    })

    const sequenced = () => sequencer.flush
    const sequenceAll = () => sequencer.catchUp

    return EventStore.of({
      append,
      readStream,
      readAll,
      subscribe,
      streamInfo,
      findEventById: findEvent,
      findBatchByEventId: findBatch,
      eventDetails: details,
      head,
      sequenced,
      sequenceAll,
    })
  })
