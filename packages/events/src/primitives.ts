import { Schema, SchemaTransformation } from "effect"
import * as Types from "./types.ts"

/**
 * A UUID, hyphenated. Accepted in either case (an upper-case UUID names the same thing) and
 * decoded to lower case, the form ids are stored, compared and answered in.
 */
export const Uuid = Schema.String.pipe(
  Schema.decode(SchemaTransformation.toLowerCase()),
  Schema.check(
    Schema.isPattern(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
      message: "must be a UUID (8-4-4-4-12 hexadecimal digits)",
    }),
  ),
)

/** Any JSON value. */
export const Json: Schema.Codec<Types.Json> = Schema.Json
export type Json = Types.Json

/** A JSON object (string keys, JSON values). */
export const JsonObject = Schema.Record(Schema.String, Json)
export type JsonObject = Types.JsonObject

const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/

const daysIn = (year: number, month: number) =>
  month === 2
    ? (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
      ? 29
      : 28
    : [4, 6, 9, 11].includes(month)
      ? 30
      : 31

/**
 * Whether text is an ISO-8601 instant with a time zone that Postgres and JavaScript read the
 * same: a real calendar date in the years 0001–9999, a time of day up to 23:59:59, and an
 * offset up to ±15:59 (Postgres' limit; real zones stay within ±14:00). `2026-02-30`, year
 * 0000 or an offset of +23:59 match the pattern but are not instants anywhere.
 */
export const isIsoInstant = (text: unknown): text is string => {
  if (typeof text !== "string") return false
  const m = ISO_INSTANT.exec(text)
  if (m === null) return false
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ]
  const offsetHours = m[8] === undefined ? 0 : Number(m[8])
  const offsetMinutes = m[9] === undefined ? 0 : Number(m[9])
  return (
    year >= 1 &&
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysIn(year, month) &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offsetHours <= 15 &&
    offsetMinutes <= 59
  )
}

/** An ISO-8601 instant with a time zone: 2026-11-23T20:41:17.123Z. */
export const IsoTimestamp = Schema.String.pipe(
  Schema.check(
    Schema.makeFilter((text: string) => isIsoInstant(text), {
      message:
        "must be an ISO-8601 timestamp with a time zone, such as 2026-11-23T20:41:17Z (a real date from year 0001, an offset up to ±15:59)",
    }),
  ),
)

/** A whole number >= 1. */
export const PositiveInt = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1)))
/** A whole number >= 0. */
export const NonNegativeInt = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))
/** A fraction from 0 to 1 inclusive. */
export const Fraction = Schema.Finite.pipe(Schema.check(Schema.isBetween({ minimum: 0, maximum: 1 })))

/** Free text of bounded length. */
export const Text = (maxLength: number) => Schema.String.pipe(Schema.check(Schema.isMaxLength(maxLength)))
/** Non-empty text of bounded length. */
export const Name = (maxLength: number) =>
  Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(maxLength)))

/** A session title: up to 500 characters, or null for none. */
export const Title = Schema.NullOr(Text(500))

export const MessageRole = Schema.Literals(Types.MESSAGE_ROLES)
export type MessageRole = Types.MessageRole

/** A lower-case hex SHA-256 digest: the key of a stored blob. */
export const Sha256 = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^[0-9a-f]{64}$/, { message: "must be a lower-case hex SHA-256 digest" })),
)

/** A MIME type such as text/plain or application/json (parameters allowed). */
export const MimeType = Schema.String.pipe(
  Schema.check(
    Schema.isMaxLength(255),
    Schema.isPattern(/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(\s*;.*)?$/i, {
      message: "must be a MIME type such as text/plain",
    }),
  ),
)

export const SessionStatus = Schema.Literals(Types.SESSION_STATUSES)
export type SessionStatus = Types.SessionStatus

export const JobState = Schema.Literals(Types.JOB_STATES)
export type JobState = Types.JobState

export const TaskStatus = Schema.Literals(Types.TASK_STATUSES)
export type TaskStatus = Types.TaskStatus

export const ToolRunStatus = Schema.Literals(Types.TOOL_RUN_STATUSES)
export type ToolRunStatus = Types.ToolRunStatus

export const SandboxStatus = Schema.Literals(Types.SANDBOX_STATUSES)
export type SandboxStatus = Types.SandboxStatus

export const ArtifactKind = Schema.Literals(Types.ARTIFACT_KINDS)
export type ArtifactKind = Types.ArtifactKind
