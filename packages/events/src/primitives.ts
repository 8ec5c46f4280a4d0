import { Schema } from "effect"

/** A UUID, lower case and hyphenated, as ids travel on the wire. */
export const Uuid = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
      message: "must be a lower-case UUID",
    }),
  ),
)

/** Any JSON value. */
export const Json = Schema.Json
export type Json = typeof Json.Type

/** A JSON object (string keys, JSON values). */
export const JsonObject = Schema.JsonObject
export type JsonObject = typeof JsonObject.Type

/** An ISO-8601 instant with a time zone: 2026-11-23T20:41:17.123Z. */
export const IsoTimestamp = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/, {
      message: "must be an ISO-8601 timestamp with a time zone, such as 2026-11-23T20:41:17Z",
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

export const MessageRole = Schema.Literals(["user", "assistant", "system", "tool"])
export type MessageRole = typeof MessageRole.Type

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

export const SessionStatus = Schema.Literals(["active", "archived", "deleted", "expired"])
export type SessionStatus = typeof SessionStatus.Type

export const JobState = Schema.Literals(["queued", "running", "paused", "completed", "failed", "cancelled"])
export type JobState = typeof JobState.Type

export const TaskStatus = Schema.Literals([
  "pending",
  "running",
  "completed",
  "failed",
  "skipped",
  "cancelled",
])
export type TaskStatus = typeof TaskStatus.Type

export const ToolRunStatus = Schema.Literals(["succeeded", "failed", "cancelled"])
export type ToolRunStatus = typeof ToolRunStatus.Type

export const SandboxStatus = Schema.Literals(["starting", "running", "stopped", "failed", "expired"])
export type SandboxStatus = typeof SandboxStatus.Type

export const ArtifactKind = Schema.Literals(["code", "log", "output", "other"])
export type ArtifactKind = typeof ArtifactKind.Type
