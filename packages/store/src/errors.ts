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
  /** The idempotency key, when the events' ids were derived from one. */
  idempotencyKey: Schema.optional(Schema.String),
}) {
  override get message(): string {
    return this.idempotencyKey !== undefined
      ? `Idempotency key ${JSON.stringify(this.idempotencyKey)} was already used for a different request on ${this.streamId}; a retry must send the same request, and a new request needs a new key`
      : `Event ids ${this.eventIds.join(", ")} were already used by a different append (to ${this.streamId} or another stream); a retry must resend exactly the same events`
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
  /** Why, when there is more to say than that the store did not hand it out. */
  reason: Schema.optional(Schema.String),
}) {
  override get message(): string {
    return `Cursor ${JSON.stringify(this.cursor)} ${this.reason ?? "is not a cursor handed out by this store"}`
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

/**
 * The database cannot be reached or dropped the connection (stopped, restarting, a backend
 * terminated, connections exhausted). Nothing is known to have been written by the failed
 * call; the caller may retry (with the same idempotency key) once it is back.
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()(
  "DatabaseUnavailable",
  {},
) {
  override get message(): string {
    return "The database is unavailable; retry shortly"
  }
}

/**
 * Driver error codes that mean "no database to talk to" rather than "the statement was
 * wrong": Node's socket errors, postgres.js's connection errors, and the SQLSTATEs of a
 * server shutting down, starting up or out of connections (class 08 is connection exception).
 */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01", // admin_shutdown (also pg_terminate_backend)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, shutting down)
  "53300", // too_many_connections
])

/** Whether `error` is a database error that means the database is unavailable. */
export const isDatabaseUnavailable = (error: unknown): boolean =>
  error instanceof SqlError &&
  error.code !== undefined &&
  (UNAVAILABLE_CODES.has(error.code) || error.code.startsWith("08"))

export type AppendError =
  | VersionConflict
  | IdempotencyConflict
  | InvalidAppend
  | BatchTooLarge
  | EventTooLarge
export type ReadError = InvalidCursor | InvalidRead
