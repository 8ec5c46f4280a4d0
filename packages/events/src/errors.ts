import { Schema } from "effect"

/**
 * Domain errors. They carry data, not HTTP codes: the API maps each tag to a tRPC code in
 * one table at its edge.
 */

/** The thing does not exist, or is not visible to the caller. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  entity: Schema.String,
  id: Schema.String,
}) {
  override get message(): string {
    return `${this.entity} ${this.id} was not found`
  }
}

/** The command is not allowed in the entity's current state. */
export class InvalidTransition extends Schema.TaggedError<InvalidTransition>()("InvalidTransition", {
  entity: Schema.String,
  id: Schema.String,
  state: Schema.String,
  action: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `Cannot ${this.action} ${this.entity} ${this.id} (${this.state}): ${this.reason}`
  }
}

/** A command whose arguments are wrong for the entity (a version past the end, say). */
export class InvalidCommand extends Schema.TaggedError<InvalidCommand>()("InvalidCommand", {
  path: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `${this.path}: ${this.reason}`
  }
}

/** The caller may not act on this owner's data. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  reason: Schema.String,
}) {
  override get message(): string {
    return this.reason
  }
}

/** A stored event that does not match its schema: a defect in the log or in the code. */
export class EventDecodeError extends Schema.TaggedError<EventDecodeError>()("EventDecodeError", {
  type: Schema.String,
  reason: Schema.String,
}) {
  override get message(): string {
    return `Stored ${this.type} event does not decode: ${this.reason}`
  }
}

/** Too large: a file over the size limit, content over its limit. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  what: Schema.String,
  size: Schema.Number,
  limit: Schema.Number,
}) {
  override get message(): string {
    return `${this.what} is ${this.size} bytes, over the limit of ${this.limit} bytes`
  }
}

/** A file whose MIME type is not on the allow-list. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  mimeType: Schema.String,
  allowed: Schema.Array(Schema.String),
}) {
  override get message(): string {
    return `MIME type ${this.mimeType} is not allowed; allowed: ${this.allowed.join(", ")}`
  }
}
