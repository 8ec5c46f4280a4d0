/**
 * `chronicle export` and `chronicle import`: the log (or one session's streams) as NDJSON, one
 * event per line in reader order, so it can be archived or moved to another database (the
 * embedded default → Supabase) and brought back verbatim: same ids, versions and recorded_at.
 */
import { createInterface } from "node:readline"
import type { Readable, Writable } from "node:stream"
import { Database, EventStore, isUuid } from "@chronicle/store"
import { Effect } from "effect"

/** One line of an export. */
export interface ExportedEvent {
  readonly streamId: string
  readonly version: number
  readonly eventId: string
  readonly type: string
  readonly schemaVersion: number
  readonly data: unknown
  readonly metadata: Record<string, unknown>
  /** ISO-8601 with microseconds, as the database holds it. */
  readonly recordedAt: string
  /** The stream's owner, when it has one. */
  readonly ownerId?: string | null
}

export class TransferError extends Error {
  override readonly name = "TransferError"
}

const write = (out: Writable, line: string) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve, reject) => {
        out.write(`${line}\n`, (error) => (error ? reject(error) : resolve()))
      }),
  )

const PAGE = 1_000

interface EventRow {
  stream_id: string
  stream_version: number
  event_id: string
  type: string
  schema_version: number
  data: unknown
  metadata: Record<string, unknown>
  recorded_at: string
  owner_id: string | null
  seq: string | null
}

const EVENT_COLUMNS = `e.stream_id, e.stream_version, e.event_id::text, e.type, e.schema_version, e.data, e.metadata,
  to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as recorded_at,
  s.owner_id::text, q.seq::text as seq`

const toLine = (e: EventRow): ExportedEvent => ({
  streamId: e.stream_id,
  version: e.stream_version,
  eventId: e.event_id,
  type: e.type,
  schemaVersion: e.schema_version,
  data: e.data,
  metadata: e.metadata,
  recordedAt: e.recorded_at,
  ownerId: e.owner_id,
})

/**
 * Writes every event of the log in its order (seq: the order the projections saw), streamed a
 * page at a time. Returns the count.
 */
export const exportLog = (out: Writable, onProgress?: (events: number) => void) =>
  Effect.gen(function* () {
    const db = yield* Database
    yield* Effect.flatMap(EventStore, (store) => store.sequenced())
    let after = "0"
    let count = 0
    while (true) {
      const rows = yield* db
        .query<EventRow>(
          `select ${EVENT_COLUMNS} from chronicle.event_seq q
             join chronicle.events e on e.global_position = q.global_position
             join chronicle.streams s using (stream_id)
            where q.seq > $1::bigint
            order by q.seq limit ${PAGE}`,
          [after],
        )
        .pipe(Effect.orDie)
      for (const row of rows) yield* write(out, JSON.stringify(toLine(row)))
      count += rows.length
      onProgress?.(count)
      const last = rows.at(-1)
      if (last === undefined || rows.length < PAGE) break
      after = last.seq ?? after
    }
    return { events: count }
  })

/**
 * Writes the session's events, preceded by its fork ancestors' (a fork copies its parent's
 * content as of the fork point, so an import needs the parent first). Returns the count.
 */
export const exportSession = (sessionId: string, out: Writable) =>
  Effect.gen(function* () {
    if (!isUuid(sessionId))
      return yield* Effect.fail(new TransferError(`${sessionId} is not a session id (a UUID)`))
    const db = yield* Database
    // The chain of parents, oldest first.
    const chain: Array<string> = []
    for (let id: string | null = sessionId; id !== null; ) {
      const rows: Array<{ parent_id: string | null }> = yield* db
        .query<{ parent_id: string | null }>(
          "select parent_id::text from chronicle.sessions where id = $1::uuid",
          [id],
        )
        .pipe(Effect.orDie)
      if (rows[0] === undefined) {
        return yield* Effect.fail(new TransferError(`session ${id} was not found in this database`))
      }
      chain.unshift(id)
      id = rows[0].parent_id
    }
    let count = 0
    for (const id of chain) {
      for (let from = 1; ; from += PAGE) {
        const rows = yield* db
          .query<EventRow>(
            `select ${EVENT_COLUMNS} from chronicle.events e join chronicle.streams s using (stream_id)
               left join chronicle.event_seq q on q.global_position = e.global_position
              where e.stream_id = $1 and e.stream_version >= $2 order by e.stream_version limit ${PAGE}`,
            [`session-${id}`, from],
          )
          .pipe(Effect.orDie)
        for (const row of rows) yield* write(out, JSON.stringify(toLine(row)))
        count += rows.length
        if (rows.length < PAGE) break
      }
    }
    return { sessions: chain.length, events: count }
  })

const parseLine = (line: string, n: number): ExportedEvent => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    throw new TransferError(`line ${n}: not JSON`)
  }
  const e = value as Partial<ExportedEvent>
  for (const [field, ok] of [
    ["streamId", typeof e.streamId === "string" && /^[a-z][a-z0-9_]{0,62}-[0-9a-f-]{36}$/.test(e.streamId)],
    ["version", Number.isInteger(e.version) && (e.version ?? 0) >= 1],
    ["eventId", typeof e.eventId === "string" && isUuid(e.eventId)],
    ["type", typeof e.type === "string"],
    ["schemaVersion", Number.isInteger(e.schemaVersion)],
    ["data", e.data !== undefined],
    ["metadata", typeof e.metadata === "object" && e.metadata !== null && !Array.isArray(e.metadata)],
    ["recordedAt", typeof e.recordedAt === "string" && !Number.isNaN(Date.parse(e.recordedAt))],
    [
      "ownerId",
      e.ownerId === undefined || e.ownerId === null || (typeof e.ownerId === "string" && isUuid(e.ownerId)),
    ],
  ] as const) {
    if (!ok) throw new TransferError(`line ${n}: "${field}" is missing or of the wrong type`)
  }
  return e as ExportedEvent
}

/**
 * Appends exported events in file order, keeping their ids, versions and recorded_at.
 * Consecutive events of one stream go in one transaction (up to 500). Importing the same
 * file twice writes nothing the second time; a stream that already holds different events is
 * refused. `onProgress` hears how far it got.
 */
export const importEvents = (input: Readable, onProgress: (line: string) => void) =>
  Effect.gen(function* () {
    const db = yield* Database
    const reader = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })
    const iterator = reader[Symbol.asyncIterator]()
    const streams = new Set<string>()
    let written = 0
    let skipped = 0
    let n = 0
    let batch: Array<ExportedEvent> = []
    let reported = Date.now()

    const flush = Effect.gen(function* () {
      const first = batch[0]
      if (first === undefined) return
      const events = batch
      batch = []
      const ownerId =
        first.ownerId ??
        (typeof (first.data as { ownerId?: unknown })?.ownerId === "string"
          ? (first.data as { ownerId: string }).ownerId
          : null)
      const [result] = yield* db
        .query<{ written: number; skipped: number }>(
          "select * from chronicle.import_events($1, $2::text::jsonb, $3::uuid)",
          [
            first.streamId,
            JSON.stringify(
              events.map((e) => ({
                version: e.version,
                event_id: e.eventId,
                type: e.type,
                schema_version: e.schemaVersion,
                data: e.data,
                metadata: e.metadata,
                recorded_at: e.recordedAt,
              })),
            ),
            ownerId,
          ],
        )
        .pipe(
          Effect.mapError(
            (error) => new TransferError(`${first.streamId} (versions ${first.version}…): ${error.reason}`),
          ),
        )
      written += result?.written ?? 0
      skipped += result?.skipped ?? 0
      streams.add(first.streamId)
      if (Date.now() - reported > 1_000) {
        reported = Date.now()
        onProgress(`${written + skipped} event(s) so far (${written} written, ${skipped} already present)`)
      }
    })

    while (true) {
      const next = yield* Effect.tryPromise({
        try: () => iterator.next(),
        catch: (error) => new TransferError(`cannot read the input: ${String(error)}`),
      })
      if (next.done) break
      n++
      if (next.value.trim() === "") continue
      const event = yield* Effect.try({
        try: () => parseLine(next.value, n),
        catch: (error) => (error instanceof TransferError ? error : new TransferError(String(error))),
      })
      const last = batch.at(-1)
      if (last !== undefined && (last.streamId !== event.streamId || batch.length >= 500)) yield* flush
      batch.push(event)
    }
    yield* flush
    return { streams: streams.size, written, skipped }
  })
