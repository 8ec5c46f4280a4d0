import { type Cursor, encodeCursor } from "./cursor.ts"
import type { Json } from "./json.ts"

export interface RecordedEvent {
  readonly eventId: string
  readonly streamId: string
  readonly version: number
  readonly type: string
  readonly schemaVersion: number
  readonly data: Json
  readonly metadata: { readonly [key: string]: Json }
  /** Unique and increasing in insert order; not the log's order. */
  readonly globalPosition: number
  /**
   * The event's place in the log's order, where a reader of the whole log resumes after it.
   * Opaque. Null only for an event another process appended, read by its stream in the moment
   * after its commit, before the sequencer placed it (this process's own appends are placed
   * before its reads).
   */
  readonly cursor: Cursor | null
  readonly recordedAt: Date
}

/** A row of `chronicle.events` as the store's queries select it (`EVENT_COLUMNS` and the seq). */
export interface EventRow {
  event_id: string
  stream_id: string
  stream_version: number
  type: string
  schema_version: number
  data: Json
  metadata: { [key: string]: Json }
  global_position: string
  seq: string | null
  recorded_at: Date | string
}

export const EVENT_COLUMNS = `e.event_id::text, e.stream_id, e.stream_version, e.type, e.schema_version, e.data,
  e.metadata, e.global_position::text, e.recorded_at`

export const toRecorded = (row: EventRow): RecordedEvent => ({
  eventId: row.event_id,
  streamId: row.stream_id,
  version: row.stream_version,
  type: row.type,
  schemaVersion: row.schema_version,
  data: row.data,
  metadata: row.metadata,
  globalPosition: Number(row.global_position),
  cursor: row.seq === null ? null : encodeCursor(BigInt(row.seq)),
  recordedAt: row.recorded_at instanceof Date ? row.recorded_at : new Date(row.recorded_at),
})
