/**
 * Input schemas shared by the domain namespaces. Field limits match the event catalog, so
 * anything that passes here is an event the store accepts.
 */
export {
  ArtifactKind,
  Fraction,
  IsoTimestamp,
  Json,
  JsonObject,
  MessageRole,
  MimeType,
  Name,
  SandboxStatus,
  SessionStatus,
  TaskStatus,
  Text,
  Title,
  ToolRunStatus,
  Uuid,
} from "@chronicle/events"

import { IsoTimestamp, JsonObject, MessageRole, Name, Text, Uuid } from "@chronicle/events"
import { Schema } from "effect"
import { MAX_BATCH_SIZE, MAX_LIST_LIMIT } from "../limits.ts"

/**
 * A procedure's input parser. An unknown key anywhere in the input is refused with its path
 * (BAD_REQUEST), not dropped: a misspelt option (`expectedVerison`) would otherwise be
 * ignored silently, and the check it asked for skipped.
 */
export const input = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S) =>
  Schema.toStandardSchemaV1(schema, { parseOptions: { onExcessProperty: "error" } })

/** A page size: 1 to 500 (default 50). */
export const Limit = Schema.Int.pipe(
  Schema.check(Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(MAX_LIST_LIMIT)),
)

/** The `nextCursor` of the previous page. Opaque. */
export const PageCursor = Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(500)))

export const Page = {
  cursor: Schema.optional(Schema.NullOr(PageCursor)),
  limit: Schema.optional(Limit),
}

/** Read as of a checkpoint or a version of the session. */
export const AsOf = Schema.Union([
  Schema.Struct({ checkpointId: Uuid }),
  Schema.Struct({ version: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))) }),
])

/** Optimistic concurrency and safe retries for a command. */
export const CommandOptions = {
  /** Fail with CONFLICT unless the session (or job) is at this version. */
  expectedVersion: Schema.optional(Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))),
  /** A retry with the same key returns the first attempt's result and records nothing new. */
  idempotencyKey: Schema.optional(
    Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(200))),
  ),
}

export const ExternalKey = Name(200)

export const NewMessage = Schema.Struct({
  role: MessageRole,
  content: Schema.String,
  metadata: Schema.optional(JsonObject),
})

export const MessageBatch = Schema.Array(NewMessage).pipe(
  Schema.check(Schema.isMinLength(1), Schema.isMaxLength(MAX_BATCH_SIZE)),
)

export const ImportedMessage = Schema.Struct({
  role: MessageRole,
  content: Schema.String,
  metadata: Schema.optional(JsonObject),
  /** When the message was originally written; default: when it is imported. */
  createdAt: Schema.optional(Schema.NullOr(IsoTimestamp)),
})

export const Reason = Schema.optional(Schema.NullOr(Text(1000)))

export const JobStateFilter = Schema.Literals([
  "queued",
  "running",
  "paused",
  "completed",
  "failed",
  "cancelled",
])

/** Base64 of a file's bytes (standard alphabet, padding optional). */
export const Base64 = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^[A-Za-z0-9+/]*={0,2}$/, { message: "must be base64 (A–Z, a–z, 0–9, +, /)" }),
  ),
)

/** `include` (default): large values read back from the blob store; `omit`: their references, with sizes. */
export const LargeContent = Schema.Literals(["include", "omit"])
