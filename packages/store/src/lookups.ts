import { Effect, Option } from "effect"
import type { DatabaseService } from "./database.ts"
import type { StreamPage } from "./event-store.ts"
import { EVENT_COLUMNS, type EventRow, type RecordedEvent, toRecorded } from "./recorded.ts"

/**
 * The metadata key an append's first event carries to say how many events the append wrote
 * together (absent: one). `findBatchByEventId` reads it to return a whole batch.
 */
export const BATCH_SIZE_KEY = "batchSize"

/** A batch of events appended together, and where its stream stands now. */
export interface RecordedBatch {
  /** The batch's events in version order; the first is the one looked up. */
  readonly events: ReadonlyArray<RecordedEvent>
  /** The stream's current version. */
  readonly streamVersion: number
}

/** What a byte-budgeted read adds to an event's JSON, per event, in its estimate. */
const EVENT_OVERHEAD_BYTES = 256

/**
 * A page of a stream from `from` (through `to`, when given), at most `limit` events, ending
 * early once the events' estimated size reaches `maxBytes` (the first event always comes).
 * The estimate (`octet_length` of data and metadata as text, plus a fixed overhead) is made
 * in the database, so the events past the budget are never sent.
 */
export const readStreamWithin = (
  db: DatabaseService,
  streamId: string,
  read: {
    readonly from: number
    readonly to: number | undefined
    readonly limit: number
    readonly maxBytes: number | undefined
  },
) =>
  Effect.gen(function* () {
    const bounded = read.to !== undefined || read.maxBytes !== undefined
    const budget =
      read.maxBytes === undefined || !Number.isFinite(read.maxBytes)
        ? null
        : Math.max(1, Math.floor(read.maxBytes))
    const rows = bounded
      ? yield* db.query<EventRow & { current_version: number }>(
          `select ${EVENT_COLUMNS}, q.seq::text as seq, s.version as current_version
             from chronicle.streams s
             left join lateral (
               select w.* from (
                 select p.*,
                        row_number() over (order by p.stream_version) as page_row,
                        sum(p.page_bytes) over (order by p.stream_version
                                                rows between unbounded preceding and current row) as page_through
                   from (select e.*,
                                octet_length(e.data::text) + octet_length(e.metadata::text) + ${EVENT_OVERHEAD_BYTES} as page_bytes
                           from chronicle.events e
                          where e.stream_id = s.stream_id and e.stream_version >= $2
                            and ($4::int is null or e.stream_version <= $4::int)
                          order by e.stream_version limit $3) p) w
                where w.page_row = 1 or $5::bigint is null or w.page_through <= $5::bigint) e on true
             left join chronicle.event_seq q on q.global_position = e.global_position
            where s.stream_id = $1
            order by e.stream_version`,
          [streamId, read.from, read.limit, read.to ?? null, budget],
        )
      : yield* db.query<EventRow & { current_version: number }>(
          `select ${EVENT_COLUMNS}, q.seq::text as seq, s.version as current_version
             from chronicle.streams s
             left join lateral (
               select * from chronicle.events e
                where e.stream_id = s.stream_id and e.stream_version >= $2
                order by e.stream_version limit $3) e on true
             left join chronicle.event_seq q on q.global_position = e.global_position
            where s.stream_id = $1
            order by e.stream_version`,
          [streamId, read.from, read.limit],
        )
    const version = rows[0]?.current_version ?? 0
    const events = rows.filter((r) => r.event_id !== null).map(toRecorded)
    const last = events.at(-1)
    const end = read.to === undefined ? version : Math.min(read.to, version)
    return {
      events,
      version,
      nextVersion: last !== undefined && last.version < end ? last.version + 1 : undefined,
    } satisfies StreamPage
  })

/** The event of `streamId` with id `eventId` (a UUID), if any. */
export const findEventById = (db: DatabaseService, streamId: string, eventId: string) =>
  db
    .query<EventRow>(
      `select ${EVENT_COLUMNS}, q.seq::text as seq
         from chronicle.events e
         left join chronicle.event_seq q on q.global_position = e.global_position
        where e.event_id = $1::uuid and e.stream_id = $2`,
      [eventId, streamId],
    )
    .pipe(Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), toRecorded)))

/** The batch the event `eventId` of `streamId` began, and the stream's version; none if no such event. */
export const findBatchByEventId = (db: DatabaseService, streamId: string, eventId: string) =>
  db
    .query<EventRow & { current_version: number }>(
      `with first as (
         select stream_version as v, coalesce((metadata ->> '${BATCH_SIZE_KEY}')::int, 1) as n
           from chronicle.events where event_id = $1::uuid and stream_id = $2)
       select ${EVENT_COLUMNS}, q.seq::text as seq,
              (select version from chronicle.streams where stream_id = $2) as current_version
         from first
         join chronicle.events e
           on e.stream_id = $2 and e.stream_version >= first.v and e.stream_version < first.v + first.n
         left join chronicle.event_seq q on q.global_position = e.global_position
        order by e.stream_version`,
      [eventId, streamId],
    )
    .pipe(
      Effect.map(
        (rows): Option.Option<RecordedBatch> =>
          rows.length === 0
            ? Option.none()
            : Option.some({ events: rows.map(toRecorded), streamVersion: Number(rows[0]!.current_version) }),
      ),
    )

/** What an event's `RecordedEvent` leaves out, for a copy of the log that keeps it exactly. */
export interface EventDetails {
  /** When it was recorded: ISO-8601 with microseconds, as the database holds it (a Date keeps milliseconds). */
  readonly recordedAt: string
  /** Its stream's owner, when the stream has one. */
  readonly ownerId: string | null
}

/** The details of the events with these ids (UUIDs), by id; ids of no event are left out. */
export const eventDetails = (db: DatabaseService, eventIds: ReadonlyArray<string>) =>
  eventIds.length === 0
    ? Effect.succeed(new Map<string, EventDetails>())
    : db
        .query<{ event_id: string; recorded_at: string; owner_id: string | null }>(
          `select e.event_id::text,
                  to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as recorded_at,
                  s.owner_id::text
             from chronicle.events e join chronicle.streams s using (stream_id)
            where e.event_id = any ($1::uuid[])`,
          [`{${eventIds.join(",")}}`],
        )
        .pipe(
          Effect.map(
            (rows) =>
              new Map(rows.map((r) => [r.event_id, { recordedAt: r.recorded_at, ownerId: r.owner_id }])),
          ),
        )
