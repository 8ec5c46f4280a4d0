/**
 * The append: validates a batch at the boundary (every refusal names its field), derives event
 * ids from an idempotency key, and calls chronicle.append_events — the one place in the code
 * that writes to the log (supabase/schemas/01_log.sql does the rest in one round trip).
 */
import { Effect } from "effect"
import { v5 as uuidv5, v7 as uuidv7 } from "uuid"
import type { DatabaseService } from "./database.ts"
import {
  BatchTooLarge,
  EventTooLarge,
  IdempotencyConflict,
  InvalidAppend,
  type SqlError,
  VersionConflict,
} from "./errors.ts"
import { findNonJson, isJsonObject } from "./json.ts"
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
  /** Unique and increasing in insert order; not the log's order (that is the seq readers see). */
  readonly globalPosition: number
  readonly recordedAt: Date
}

export interface AppendResult {
  readonly streamId: string
  /** The stream's version after this append: the expected version of the next one. */
  readonly version: number
  readonly events: ReadonlyArray<AppendedEvent>
  /** True when every event was already written by an earlier append (a retry). */
  readonly duplicate: boolean
}

export interface AppendLimits {
  /** Most events one append may carry. */
  readonly maxBatchSize: number
  /** Most bytes of JSON (data + metadata) one event may carry. */
  readonly maxEventBytes: number
}

// Namespace for event ids derived from idempotency keys (a random, fixed UUID).
const IDEMPOTENCY_NAMESPACE = "5f0d8d5e-3c1a-4f43-9a57-2f1c8e6b7d10"
const EVENT_TYPE = /^[A-Z][A-Za-z0-9]{0,99}$/

/** The id of the `index`th event of an append to `streamId` made with idempotency key `key`. */
export const idempotentEventId = (streamId: string, key: string, index: number) =>
  uuidv5(`${streamId}\u0000${key}\u0000${index}`, IDEMPOTENCY_NAMESPACE)

interface EventRow {
  readonly event_id: string
  readonly type: string
  readonly schema_version: number
  readonly data: unknown
  readonly metadata: object
}

/** The batch as the append function takes it, or the first thing wrong with it. */
export const validateAppend = (
  limits: AppendLimits,
  streamId: string,
  events: ReadonlyArray<NewEvent>,
  options: AppendOptions,
) =>
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
    if (events.length > limits.maxBatchSize) {
      return yield* new BatchTooLarge({ size: events.length, limit: limits.maxBatchSize })
    }
    const expected = options.expectedVersion ?? "any"
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
    const ownerId = options.ownerId?.toLowerCase()
    if (ownerId !== undefined && !isUuid(ownerId)) {
      return yield* new InvalidAppend({ path: "ownerId", reason: "must be a UUID" })
    }
    const key = options.idempotencyKey
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
    const rows: Array<EventRow> = []
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
        key !== undefined ? idempotentEventId(streamId, key, i) : (event.eventId?.toLowerCase() ?? uuidv7())
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
      const bytes =
        Buffer.byteLength(JSON.stringify(event.data)) + Buffer.byteLength(JSON.stringify(metadata))
      if (bytes > limits.maxEventBytes) {
        return yield* new EventTooLarge({ path: at, bytes, limit: limits.maxEventBytes })
      }
      rows.push({
        event_id: eventId,
        type: event.type,
        schema_version: schemaVersion,
        data: event.data,
        metadata,
      })
    }
    return { category: stream.category, expected, ownerId, rows }
  })

/** A batch as the append function takes it (what `validateAppend` returns). */
export type ValidatedAppend = Effect.Success<ReturnType<typeof validateAppend>>

export const expectedCode = (expected: ExpectedVersion): number =>
  expected === "any" ? -1 : expected === "no_stream" ? -2 : expected === "stream_exists" ? -3 : expected

export interface AppendRow {
  readonly event_id: string
  readonly stream_version: number
  readonly global_position: string
  readonly recorded_at: Date | string
  readonly duplicate: boolean
}

/** The result of an append from the rows the append function returned for it. */
export const toAppendResult = (streamId: string, rows: ReadonlyArray<AppendRow>): AppendResult => {
  const events = rows.map((r) => ({
    eventId: r.event_id,
    version: r.stream_version,
    globalPosition: Number(r.global_position),
    recordedAt: r.recorded_at instanceof Date ? r.recorded_at : new Date(r.recorded_at),
  }))
  return {
    streamId,
    version: Math.max(...events.map((e) => e.version)),
    events,
    duplicate: rows.every((r) => r.duplicate),
  }
}

/** Writes a validated batch: one statement, one round trip. */
export const runAppend = (
  db: DatabaseService,
  streamId: string,
  batch: ValidatedAppend,
): Effect.Effect<AppendResult, VersionConflict | IdempotencyConflict> =>
  db
    .query<AppendRow>(
      `select event_id::text, stream_version, global_position::text, recorded_at, duplicate
         from chronicle.append_events($1, $2, $3, $4::text::jsonb, $5::uuid)`,
      [
        streamId,
        batch.category,
        expectedCode(batch.expected),
        JSON.stringify(batch.rows),
        batch.ownerId ?? null,
      ],
    )
    .pipe(
      Effect.catchTag("SqlError", (error) =>
        classifyAppendError(error, streamId, batch.expected, batch.rows),
      ),
      Effect.map((rows) => toAppendResult(streamId, rows)),
    )

/** Turns the append function's SQLSTATEs into typed errors; anything else is a defect. */
export const classifyAppendError = (
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
