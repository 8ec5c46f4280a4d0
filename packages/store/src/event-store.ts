import { randomUUID } from "node:crypto"
import { Context, Effect, Layer, Option, PubSub, Queue, Schedule, Scope, Stream } from "effect"
import { v5 as uuidv5, v7 as uuidv7 } from "uuid"
import { type Cursor, decodeCursor, encodeCursor, type LogPosition, START } from "./cursor.ts"
import { CurrentTransaction, Database } from "./database.ts"
import {
  type AppendError,
  BatchTooLarge,
  EventTooLarge,
  IdempotencyConflict,
  InvalidAppend,
  InvalidRead,
  type ReadError,
  type SqlError,
  VersionConflict,
} from "./errors.ts"
import { findNonJson, isJsonObject, type Json } from "./json.ts"
import { isUuid, parseStreamId, STREAM_ID_FORMAT } from "./stream-id.ts"

/**
 * What an append expects of the stream: an exact version (0 = no events yet), that the
 * stream does not exist, that it does, or nothing at all.
 */
export type ExpectedVersion = number | "no_stream" | "stream_exists" | "any"

export interface NewEvent {
  readonly type: string
  readonly data: unknown
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  /** Chosen by the caller to make a retry safe; a UUID. Generated (UUIDv7) when absent. */
  readonly eventId?: string | undefined
  readonly schemaVersion?: number | undefined
}

export interface AppendOptions {
  readonly expectedVersion?: ExpectedVersion | undefined
  /**
   * Makes the append safe to retry without choosing event ids: the ids are derived from
   * the stream, this key and each event's index, so a retry writes nothing new.
   */
  readonly idempotencyKey?: string | undefined
  /** Recorded as the stream's owner when this append creates the stream. */
  readonly ownerId?: string | undefined
}

export interface AppendedEvent {
  readonly eventId: string
  readonly version: number
  readonly globalPosition: number
  readonly cursor: Cursor
}

export interface AppendResult {
  readonly streamId: string
  /** The stream's version after this append: the expected version of the next one. */
  readonly version: number
  readonly events: ReadonlyArray<AppendedEvent>
  /** True when every event was already written by an earlier append (a retry). */
  readonly duplicate: boolean
}

export interface RecordedEvent {
  readonly eventId: string
  readonly streamId: string
  readonly version: number
  readonly type: string
  readonly schemaVersion: number
  readonly data: Json
  readonly metadata: { readonly [key: string]: Json }
  /** Position in the whole log. Unique and increasing in insert order, not commit order. */
  readonly globalPosition: number
  /** Where a reader of the whole log resumes after this event. Opaque. */
  readonly cursor: Cursor
  readonly recordedAt: Date
}

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
  readonly limit?: number | undefined
}

export interface StreamPage {
  readonly events: ReadonlyArray<RecordedEvent>
  /** The stream's current version (0 when it has no events). */
  readonly version: number
  /** Where the next page starts, when there may be more. */
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
  /** Resume here for the next page: the last event's cursor, or `after` when none. */
  readonly cursor: Cursor
  /** True when fewer than `limit` events were ready: the reader has reached the head. */
  readonly caughtUp: boolean
}

export type SubscribeOptions = Omit<ReadAllOptions, "limit">

/** Events a subscription reads per query, and holds unread at most (besides one page). */
const SUBSCRIPTION_PAGE = 100
const SUBSCRIPTION_BUFFER = 32

export interface Head {
  /** The cursor of the newest event every reader can see. */
  readonly cursor: Cursor
  /** The highest global position committed so far (0 for an empty log). */
  readonly globalPosition: number
}

export interface EventStoreOptions {
  /** Most events one append may carry. Default 500. */
  readonly maxBatchSize?: number
  /** Most bytes of JSON (data + metadata) one event may carry. Default 1 MiB. */
  readonly maxEventBytes?: number
  /** Most events one read returns. Default 1,000. */
  readonly maxReadLimit?: number
  /** Subscriptions re-read at least this often, whatever LISTEN/NOTIFY says. Default 500 ms. */
  readonly pollIntervalMs?: number
  /**
   * Wake subscriptions with LISTEN/NOTIFY. Default true. Behind a transaction-mode pooler
   * LISTEN does not work: turn it off and subscriptions poll.
   */
  readonly listen?: boolean
}

export const NOTIFY_CHANNEL = "chronicle_events"
/** How long an append's NOTIFY to other processes waits for more appends to share it. */
const NOTIFY_COALESCE = "2 millis"
const DEFAULTS = {
  maxBatchSize: 500,
  maxEventBytes: 1024 * 1024,
  maxReadLimit: 1000,
  pollIntervalMs: 500,
  listen: true,
} satisfies Required<EventStoreOptions>

// Namespace for event ids derived from idempotency keys (a random, fixed UUID).
const IDEMPOTENCY_NAMESPACE = "5f0d8d5e-3c1a-4f43-9a57-2f1c8e6b7d10"
const EVENT_TYPE = /^[A-Z][A-Za-z0-9]{0,99}$/

export interface EventStoreService {
  readonly append: (
    streamId: string,
    events: ReadonlyArray<NewEvent>,
    options?: AppendOptions,
  ) => Effect.Effect<AppendResult, AppendError>
  readonly readStream: (streamId: string, options?: ReadStreamOptions) => Effect.Effect<StreamPage, ReadError>
  readonly readAll: (options?: ReadAllOptions) => Effect.Effect<LogPage, ReadError>
  /** Back-fills from `after`, then follows the log as it grows; never ends on its own. */
  readonly subscribe: (options?: SubscribeOptions) => Stream.Stream<RecordedEvent, ReadError>
  readonly streamInfo: (streamId: string) => Effect.Effect<Option.Option<StreamInfo>, ReadError>
  readonly head: () => Effect.Effect<Head>
}

/** The event log: append with optimistic concurrency and idempotency, read, follow. */
export class EventStore extends Context.Service<EventStore, EventStoreService>()(
  "@chronicle/store/EventStore",
) {
  static readonly layer = (options: EventStoreOptions = {}): Layer.Layer<EventStore, never, Database> =>
    Layer.effect(EventStore, makeEventStore(options))
}

interface EventRow {
  event_id: string
  stream_id: string
  stream_version: number
  type: string
  schema_version: number
  data: Json
  metadata: { [key: string]: Json }
  global_position: string
  transaction_id: string
  recorded_at: Date | string
}

const EVENT_COLUMNS = `e.event_id::text, e.stream_id, e.stream_version, e.type, e.schema_version, e.data,
  e.metadata, e.global_position::text, e.transaction_id::text, e.recorded_at`

const toRecorded = (row: EventRow): RecordedEvent => ({
  eventId: row.event_id,
  streamId: row.stream_id,
  version: row.stream_version,
  type: row.type,
  schemaVersion: row.schema_version,
  data: row.data,
  metadata: row.metadata,
  globalPosition: Number(row.global_position),
  cursor: encodeCursor({
    transactionId: BigInt(row.transaction_id),
    globalPosition: BigInt(row.global_position),
  }),
  recordedAt: row.recorded_at instanceof Date ? row.recorded_at : new Date(row.recorded_at),
})

const expectedCode = (expected: ExpectedVersion): number =>
  expected === "any" ? -1 : expected === "no_stream" ? -2 : expected === "stream_exists" ? -3 : expected

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

const makeEventStore = (options: EventStoreOptions) =>
  Effect.gen(function* () {
    const config = { ...DEFAULTS, ...options }
    const db = yield* Database

    // ----- append -------------------------------------------------------------------------

    const validate = (streamId: string, events: ReadonlyArray<NewEvent>, appendOptions: AppendOptions) =>
      Effect.gen(function* () {
        const stream = parseStreamId(streamId)
        if (!stream) {
          return yield* new InvalidAppend({
            path: "streamId",
            reason: `must be ${STREAM_ID_FORMAT}, got ${JSON.stringify(streamId)}`,
          })
        }
        if (!Array.isArray(events) || events.length === 0) {
          return yield* new InvalidAppend({ path: "events", reason: "an append needs at least one event" })
        }
        if (events.length > config.maxBatchSize) {
          return yield* new BatchTooLarge({ size: events.length, limit: config.maxBatchSize })
        }
        const expected = appendOptions.expectedVersion ?? "any"
        if (
          typeof expected === "number"
            ? !Number.isInteger(expected) || expected < 0 || expected > 2_147_483_647
            : !["any", "no_stream", "stream_exists"].includes(expected)
        ) {
          return yield* new InvalidAppend({
            path: "expectedVersion",
            reason: `must be a whole number >= 0, "no_stream", "stream_exists" or "any", got ${JSON.stringify(expected)}`,
          })
        }
        const ownerId = appendOptions.ownerId?.toLowerCase()
        if (ownerId !== undefined && !isUuid(ownerId)) {
          return yield* new InvalidAppend({ path: "ownerId", reason: "must be a UUID" })
        }
        const key = appendOptions.idempotencyKey
        if (key !== undefined) {
          if (typeof key !== "string" || key.length === 0 || key.length > 200) {
            return yield* new InvalidAppend({ path: "idempotencyKey", reason: "must be 1 to 200 characters" })
          }
          if (events.some((e) => e.eventId !== undefined)) {
            return yield* new InvalidAppend({
              path: "idempotencyKey",
              reason: "give either an idempotency key or event ids, not both",
            })
          }
        }
        const seen = new Set<string>()
        const rows = []
        for (const [i, event] of events.entries()) {
          const at = `events[${i}]`
          if (typeof event?.type !== "string" || !EVENT_TYPE.test(event.type)) {
            return yield* new InvalidAppend({
              path: `${at}.type`,
              reason: `must be a PascalCase name of at most 100 letters and digits, got ${JSON.stringify(event?.type)}`,
            })
          }
          const dataProblem =
            event.data === undefined ? `${at}.data is missing` : findNonJson(event.data, `${at}.data`)
          if (dataProblem) return yield* new InvalidAppend({ path: `${at}.data`, reason: dataProblem })
          const metadata = event.metadata ?? {}
          if (!isJsonObject(metadata)) {
            return yield* new InvalidAppend({ path: `${at}.metadata`, reason: "must be a JSON object" })
          }
          const metadataProblem = findNonJson(metadata, `${at}.metadata`)
          if (metadataProblem)
            return yield* new InvalidAppend({ path: `${at}.metadata`, reason: metadataProblem })
          const schemaVersion = event.schemaVersion ?? 1
          if (!Number.isInteger(schemaVersion) || schemaVersion < 1 || schemaVersion > 32767) {
            return yield* new InvalidAppend({
              path: `${at}.schemaVersion`,
              reason: "must be a whole number from 1 to 32767",
            })
          }
          const eventId =
            key !== undefined
              ? uuidv5(`${streamId}\u0000${key}\u0000${i}`, IDEMPOTENCY_NAMESPACE)
              : (event.eventId?.toLowerCase() ?? uuidv7())
          if (!isUuid(eventId)) {
            return yield* new InvalidAppend({
              path: `${at}.eventId`,
              reason: `must be a UUID, got ${JSON.stringify(event.eventId)}`,
            })
          }
          if (seen.has(eventId)) {
            return yield* new InvalidAppend({
              path: `${at}.eventId`,
              reason: `${eventId} appears twice in this batch`,
            })
          }
          seen.add(eventId)
          const row = {
            event_id: eventId,
            type: event.type,
            schema_version: schemaVersion,
            data: event.data,
            metadata,
          }
          const bytes =
            Buffer.byteLength(JSON.stringify(event.data)) + Buffer.byteLength(JSON.stringify(metadata))
          if (bytes > config.maxEventBytes) {
            return yield* new EventTooLarge({ path: at, bytes, limit: config.maxEventBytes })
          }
          rows.push(row)
        }
        return { category: stream.category, expected, ownerId, rows }
      })

    // ----- wake-ups -----------------------------------------------------------------------

    // Every committed append wakes subscribers, which re-read from their cursor. A sliding
    // buffer of one coalesces bursts, and a wake-up that arrives while a subscriber is reading
    // is kept for its next wait, so none is lost.
    const wakeups = yield* PubSub.sliding<void>(1)
    const scope = yield* Scope.Scope
    // Marks this store's own NOTIFYs, which its listener skips (its subscribers are already awake).
    const instance = randomUUID()
    const notifying: { state: "idle" | "busy" | "again" } = { state: "idle" }
    const notifyAgain = () => notifying.state === "again"
    // One NOTIFY at a time, outside any transaction, a moment after the append so that a
    // burst of appends shares one; appends that commit meanwhile are covered by one more.
    // Losing one only delays other processes until their next poll.
    const notifyOthers: Effect.Effect<void> = Effect.gen(function* () {
      do {
        notifying.state = "busy"
        yield* Effect.sleep(NOTIFY_COALESCE)
        yield* db
          .query("select pg_notify($1, $2)", [NOTIFY_CHANNEL, instance])
          .pipe(Effect.catch((error) => Effect.logDebug("NOTIFY after an append failed", error)))
      } while (notifyAgain())
      notifying.state = "idle"
    })
    /** After an append this store committed: wake local subscribers now, other processes by NOTIFY. */
    const announce = Effect.gen(function* () {
      yield* PubSub.publish(wakeups, undefined)
      if (notifying.state === "idle") {
        notifying.state = "busy"
        yield* Effect.forkIn(notifyOthers, scope)
      } else {
        notifying.state = "again"
      }
    })

    const append = Effect.fn("EventStore.append")(function* (
      streamId: string,
      events: ReadonlyArray<NewEvent>,
      appendOptions: AppendOptions = {},
    ) {
      const { category, expected, ownerId, rows } = yield* validate(streamId, events, appendOptions)
      // Inside a caller's transaction the NOTIFY must wait for that commit, so the function
      // sends it; otherwise this append is its own transaction and is announced after it
      // commits (see 20261124000900_append_fast_path.sql for why).
      const ownTransaction = (yield* CurrentTransaction) === undefined
      const code = expectedCode(expected)
      const payload = JSON.stringify(rows)
      // The common case in one statement: the stream exists, the version matches and the ids
      // are new. Anything else (a new stream, a conflict, a retry) matches no row or fails as
      // a whole, and the append function decides it. Only outside a caller's transaction,
      // where a failed statement does not abort anything else.
      const fast =
        ownTransaction && code !== 0 && code !== -2
          ? yield* db
              .query<AppendRow>(FAST_APPEND, [streamId, code, rows.length, payload])
              .pipe(
                Effect.catchTag("SqlError", (error) =>
                  error.code === "23505" ? Effect.succeed([] as Array<AppendRow>) : Effect.die(error),
                ),
              )
          : []
      const result =
        fast.length > 0
          ? fast
          : yield* db
              .query<AppendRow>(
                `select event_id::text, stream_version, global_position, transaction_id, duplicate
                   from chronicle.append_events($1, $2, $3, $4::text::jsonb, $5::uuid, $6::boolean)`,
                [streamId, category, code, payload, ownerId ?? null, !ownTransaction],
              )
              .pipe(
                Effect.catchTag("SqlError", (error) => classifyAppendError(error, streamId, expected, rows)),
              )
      if (ownTransaction && !result.every((r) => r.duplicate)) yield* announce
      const appended = result.map((r) => ({
        eventId: r.event_id,
        version: r.stream_version,
        globalPosition: Number(r.global_position),
        cursor: encodeCursor({
          transactionId: BigInt(r.transaction_id),
          globalPosition: BigInt(r.global_position),
        }),
      }))
      return {
        streamId,
        version: Math.max(...appended.map((e) => e.version)),
        events: appended,
        duplicate: result.every((r) => r.duplicate),
      } satisfies AppendResult
    })

    // ----- reads --------------------------------------------------------------------------

    const readStream = Effect.fn("EventStore.readStream")(function* (
      streamId: string,
      readOptions: ReadStreamOptions = {},
    ) {
      if (!parseStreamId(streamId)) {
        return yield* new InvalidRead({
          path: "streamId",
          reason: `must be ${STREAM_ID_FORMAT}, got ${JSON.stringify(streamId)}`,
        })
      }
      const from = readOptions.fromVersion ?? 1
      if (!Number.isInteger(from) || from < 0) {
        return yield* new InvalidRead({
          path: "fromVersion",
          reason: `must be a whole number >= 0, got ${from}`,
        })
      }
      const limit = yield* positiveInt("limit", readOptions.limit, config.maxReadLimit, config.maxReadLimit)
      const rows = yield* db
        .query<EventRow & { current_version: number }>(
          `select ${EVENT_COLUMNS}, s.version as current_version
             from chronicle.streams s
             left join lateral (
               select * from chronicle.events e
                where e.stream_id = s.stream_id and e.stream_version >= $2
                order by e.stream_version limit $3) e on true
            where s.stream_id = $1
            order by e.stream_version`,
          [streamId, from, limit],
        )
        .pipe(Effect.orDie)
      const version = rows[0]?.current_version ?? 0
      const events = rows.filter((r) => r.event_id !== null).map(toRecorded)
      const last = events.at(-1)
      return {
        events,
        version,
        nextVersion: last !== undefined && last.version < version ? last.version + 1 : undefined,
      } satisfies StreamPage
    })

    const readPage = (
      after: LogPosition,
      limit: number,
      types: string | null,
      streamIds: string | null,
      ownerId: string | null,
    ) =>
      db
        .query<EventRow>(
          `select ${EVENT_COLUMNS}
             from chronicle.events e
            where (e.transaction_id, e.global_position) > ($1::text::xid8, $2::bigint)
              and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
              and ($4::text::jsonb is null or e.type = any(array(select jsonb_array_elements_text($4::text::jsonb))))
              and ($5::text::jsonb is null or e.stream_id = any(array(select jsonb_array_elements_text($5::text::jsonb))))
              and ($6::uuid is null or exists (
                    select 1 from chronicle.streams s where s.stream_id = e.stream_id and s.owner_id = $6::uuid))
            order by e.transaction_id, e.global_position
            limit $3`,
          [after.transactionId.toString(), after.globalPosition.toString(), limit, types, streamIds, ownerId],
        )
        .pipe(Effect.map((rows) => rows.map(toRecorded)))

    const decodeAfter = (after: Cursor | undefined) =>
      after === undefined ? Effect.succeed(START) : decodeCursor(after)

    const readAll = Effect.fn("EventStore.readAll")(function* (readOptions: ReadAllOptions = {}) {
      const after = yield* decodeAfter(readOptions.after)
      const limit = yield* positiveInt("limit", readOptions.limit, config.maxReadLimit, config.maxReadLimit)
      const types = yield* jsonList("types", readOptions.types)
      const streamIds = yield* jsonList("streamIds", readOptions.streamIds)
      const ownerId = yield* ownerFilter(readOptions.ownerId)
      const events = yield* readPage(after, limit, types, streamIds, ownerId).pipe(Effect.orDie)
      return {
        events,
        cursor: events.at(-1)?.cursor ?? encodeCursor(after),
        caughtUp: events.length < limit,
      } satisfies LogPage
    })

    // ----- subscriptions ------------------------------------------------------------------

    // Appends of other processes (and appends inside transactions) arrive as NOTIFY.
    if (config.listen) {
      yield* db.notifications(NOTIFY_CHANNEL).pipe(
        Stream.runForEach((payload) =>
          payload === instance ? Effect.void : PubSub.publish(wakeups, undefined),
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

    const subscribe = (subscribeOptions: SubscribeOptions = {}): Stream.Stream<RecordedEvent, ReadError> =>
      Stream.callback<RecordedEvent, ReadError>(
        (queue) =>
          Effect.gen(function* () {
            const wake = yield* PubSub.subscribe(wakeups)
            let after = yield* decodeAfter(subscribeOptions.after)
            const types = yield* jsonList("types", subscribeOptions.types)
            const streamIds = yield* jsonList("streamIds", subscribeOptions.streamIds)
            const ownerId = yield* ownerFilter(subscribeOptions.ownerId)
            // A follower that stops reading holds at most a page plus the buffer below in
            // memory; it catches up a page at a time when it reads again.
            const batch = Math.min(config.maxReadLimit, SUBSCRIPTION_PAGE)
            while (true) {
              // A database that is briefly away must not end a live subscription.
              const events = yield* Effect.suspend(() =>
                readPage(after, batch, types, streamIds, ownerId),
              ).pipe(
                Effect.tapError((error) => Effect.logWarning("subscription read failed; retrying", error)),
                Effect.retry(
                  Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]),
                ),
                Effect.orDie,
              )
              for (const event of events) yield* Queue.offer(queue, event)
              const last = events.at(-1)
              if (last !== undefined) after = yield* decodeCursor(last.cursor)
              if (events.length < batch) {
                yield* PubSub.take(wake).pipe(Effect.timeoutOption(config.pollIntervalMs))
              }
            }
          }),
        { bufferSize: SUBSCRIPTION_BUFFER, strategy: "suspend" },
      )

    const streamInfo = Effect.fn("EventStore.streamInfo")(function* (streamId: string) {
      if (!parseStreamId(streamId)) {
        return yield* new InvalidRead({
          path: "streamId",
          reason: `must be ${STREAM_ID_FORMAT}, got ${JSON.stringify(streamId)}`,
        })
      }
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
      const rows = yield* db
        .query<{ max_position: string | null; tx: string | null; pos: string | null }>(
          `select (select max(global_position) from chronicle.events)::text as max_position, h.tx, h.pos
             from (select 1) one
             left join lateral (
               select transaction_id::text as tx, global_position::text as pos
                 from chronicle.events
                where transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                order by transaction_id desc, global_position desc
                limit 1) h on true`,
        )
        .pipe(Effect.orDie)
      const row = rows[0]
      return {
        cursor:
          row?.tx != null && row.pos != null
            ? encodeCursor({ transactionId: BigInt(row.tx), globalPosition: BigInt(row.pos) })
            : encodeCursor(START),
        globalPosition: Number(row?.max_position ?? 0),
      } satisfies Head
    })

    return EventStore.of({ append, readStream, readAll, subscribe, streamInfo, head })
  })

interface AppendRow {
  event_id: string
  stream_version: number
  global_position: string
  transaction_id: string
  duplicate: boolean
}

/**
 * The append of an existing stream at the expected version ($2: -1 any, -3 the stream exists,
 * n ≥ 1 exactly n) of new events ($4, a JSON array of $3), as chronicle.append_events does it:
 * the UPDATE locks and bumps the stream row (a concurrent append waits, then no longer
 * matches), the INSERT writes the events in order (the inline projections run in its
 * trigger). No row back means the function must decide.
 */
const FAST_APPEND = `with s as (
    update chronicle.streams
       set version = version + $3::int, updated_at = now()
     where stream_id = $1
       and ($2::int = -1 or ($2::int = -3 and version > 0) or version = $2::int)
    returning version - $3::int as base)
  insert into chronicle.events as e (stream_id, stream_version, event_id, type, schema_version, data, metadata)
  select $1, s.base + x.ord::integer, (x.elem ->> 'event_id')::uuid, x.elem ->> 'type',
         coalesce((x.elem ->> 'schema_version')::smallint, 1), x.elem -> 'data',
         coalesce(x.elem -> 'metadata', '{}'::jsonb)
    from s, jsonb_array_elements($4::text::jsonb) with ordinality as x(elem, ord)
   order by x.ord
  returning e.event_id::text, e.stream_version, e.global_position::text, e.transaction_id::text, false as duplicate`

/** Turns the append function's SQLSTATEs into typed errors; anything else is a defect. */
const classifyAppendError = (
  error: SqlError,
  streamId: string,
  expected: ExpectedVersion,
  rows: ReadonlyArray<{ event_id: string }>,
): Effect.Effect<never, VersionConflict | IdempotencyConflict> => {
  if (error.code === "CH409") {
    const detail = JSON.parse(error.detail ?? "{}") as { actual?: number }
    return Effect.fail(
      new VersionConflict({
        streamId,
        expected: expected === "no_stream" || expected === "stream_exists" ? expected : Number(expected),
        actual: detail.actual ?? -1,
      }),
    )
  }
  if (error.code === "CH410") {
    const detail = JSON.parse(error.detail ?? "{}") as { event_ids?: Array<string> }
    return Effect.fail(
      new IdempotencyConflict({ streamId, eventIds: detail.event_ids ?? rows.map((r) => r.event_id) }),
    )
  }
  // A concurrent append wrote one of these event ids between our check and our insert.
  if (error.code === "23505" && /event_id/.test(`${error.reason} ${error.detail ?? ""}`)) {
    return Effect.fail(new IdempotencyConflict({ streamId, eventIds: rows.map((r) => r.event_id) }))
  }
  return Effect.die(error)
}
