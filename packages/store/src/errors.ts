import { Schema } from "effect"

/** The stream moved since the caller read it; nothing was written. */
export class VersionConflict extends Schema.TaggedError<VersionConflict>()("VersionConflict", {
  streamId: Schema.String,
  expected: Schema.Union([Schema.Number, Schema.Literals(["no_stream", "stream_exists"])]),
  actual: Schema.Number,
}) {
  override get message(): string {
    const expected =
      this.expected === "no_stream"
        ? "no stream"
        : this.expected === "stream_exists"
          ? "an existing stream"
          : `version ${this.expected}`
    return `Stream ${this.streamId} is at version ${this.actual}, but the append expected ${expected}`
  }
}

/** Some of the batch's event ids were already written, by a different append. */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()("IdempotencyConflict", {
  streamId: Schema.String,
  eventIds: Schema.Array(Schema.String),
}) {
  override get message(): string {
    return `Event ids ${this.eventIds.join(", ")} were already used by a different append (to ${this.streamId} or another stream); a retry must resend exactly the same events`
  }
}

/** The append request itself is malformed. `path` names the offending field. */
export class InvalidAppend extends Schema.TaggedError<InvalidAppend>()("InvalidAppend", {
  path: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `${this.path}: ${this.reason}`
  }
}

/** A batch over the configured limit. */
export class BatchTooLarge extends Schema.TaggedError<BatchTooLarge>()("BatchTooLarge", {
  size: Schema.Number,
  limit: Schema.Number,
}) {
  override get message(): string {
    return `A batch may hold at most ${this.limit} events; this one has ${this.size}`
  }
}

/** An event whose encoded size is over the configured limit. */
export class EventTooLarge extends Schema.TaggedError<EventTooLarge>()("EventTooLarge", {
  path: Schema.String,
  bytes: Schema.Number,
  limit: Schema.Number,
}) {
  override get message(): string {
    return `${this.path}: the event is ${this.bytes} bytes of JSON, over the limit of ${this.limit} bytes`
  }
}

/** A read cursor that this store did not hand out. */
export class InvalidCursor extends Schema.TaggedError<InvalidCursor>()("InvalidCursor", {
  cursor: Schema.String,
}) {
  override get message(): string {
    return `Cursor ${JSON.stringify(this.cursor)} is not a cursor handed out by this store`
  }
}

/** A read argument out of range (a limit, a version). */
export class InvalidRead extends Schema.TaggedError<InvalidRead>()("InvalidRead", {
  path: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `${this.path}: ${this.reason}`
  }
}

/** An applied migration differs from the file of the same name, or is unknown to this build. */
export class MigrationMismatch extends Schema.TaggedError<MigrationMismatch>()("MigrationMismatch", {
  migration: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `Migration ${this.migration}: ${this.reason}`
  }
}

/** A database error, as reported by either driver. Infrastructure failures become defects. */
export class SqlError extends Schema.TaggedError<SqlError>()("SqlError", {
  code: Schema.optional(Schema.String),
  reason: Schema.String,
  detail: Schema.optional(Schema.String),
}) {
  override get message(): string {
    return this.code ? `${this.reason} (SQLSTATE ${this.code})` : this.reason
  }
}

export type AppendError =
  | VersionConflict
  | IdempotencyConflict
  | InvalidAppend
  | BatchTooLarge
  | EventTooLarge
export type ReadError = InvalidCursor | InvalidRead
