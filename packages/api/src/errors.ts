/**
 * The one place where errors become tRPC errors. Domain and store errors carry data, not
 * HTTP codes; `ERROR_CODES` gives each tag its code, and `run` (context.ts) only accepts
 * effects whose errors are in it, so a new error tag fails to compile until it is added here.
 */
import type {
  EventDecodeError,
  Forbidden,
  InvalidCommand,
  InvalidTransition,
  NotFound,
  PayloadTooLarge,
  UnsupportedMediaType,
} from "@chronicle/events"
import {
  type BatchTooLarge,
  DatabaseUnavailable,
  type EventTooLarge,
  type IdempotencyConflict,
  type InvalidAppend,
  type InvalidCursor,
  type InvalidRead,
  isDatabaseUnavailable,
  type MigrationMismatch,
  type SqlError,
  type VersionConflict,
} from "@chronicle/store"
import { StandardSchemaV1Error, type TRPC_ERROR_CODE_KEY, TRPCError } from "@trpc/server"
import { getHTTPStatusCodeFromError } from "@trpc/server/http"
import { TRPC_ERROR_CODES_BY_KEY } from "@trpc/server/rpc"
import { Cause, Option, Schema, SchemaIssue } from "effect"

/** No credentials, or credentials that do not verify. */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", {
  reason: Schema.String,
}) {
  override get message(): string {
    return this.reason
  }
}

/** The server cannot verify tokens right now (the project's keys could not be fetched). */
export class AuthUnavailable extends Schema.TaggedError<AuthUnavailable>()("AuthUnavailable", {
  reason: Schema.String,
}) {
  override get message(): string {
    return `${this.reason}; retry shortly`
  }
}

/** The caller already runs as many queries (or holds as many subscriptions) as allowed. */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()("TooManyRequests", {
  what: Schema.Literals(["queries", "subscriptions"]),
  limit: Schema.Number,
}) {
  override get message(): string {
    return this.what === "queries"
      ? `You already have ${this.limit} queries running, the most one caller may run at once: wait for one to finish (or batch your calls), then retry`
      : `You already have ${this.limit} subscriptions open, the most one caller may hold: close one, then retry`
  }
}

/** A call whose answer would take its response past the response budget. */
export class ResponseTooLarge extends Schema.TaggedError<ResponseTooLarge>()("ResponseTooLarge", {
  /** Bytes this call's answer takes. */
  size: Schema.Number,
  /** Bytes the calls before it in the same request took. */
  used: Schema.Number,
  limit: Schema.Number,
}) {
  override get message(): string {
    return `This call's answer (${this.size} bytes) does not fit in what is left of the response budget of ${this.limit} bytes: the calls before it in this batch took ${this.used}. Send it in a request of its own`
  }
}

/** Every error an effect run by a procedure may fail with. */
export type KnownError =
  | NotFound
  | VersionConflict
  | InvalidTransition
  | IdempotencyConflict
  | InvalidAppend
  | InvalidRead
  | InvalidCursor
  | InvalidCommand
  | Schema.SchemaError
  | BatchTooLarge
  | EventTooLarge
  | PayloadTooLarge
  | UnsupportedMediaType
  | Forbidden
  | Unauthenticated
  | AuthUnavailable
  | TooManyRequests
  | ResponseTooLarge
  | EventDecodeError
  | SqlError
  | MigrationMismatch
  | DatabaseUnavailable

/**
 * Error tag → tRPC code. INTERNAL_SERVER_ERROR marks failures of the service itself (a
 * stored event that does not decode, a database error): they are logged with the request
 * id and answered with a generic message, never with their details.
 */
export const ERROR_CODES = {
  NotFound: "NOT_FOUND",
  VersionConflict: "CONFLICT",
  InvalidTransition: "CONFLICT",
  IdempotencyConflict: "CONFLICT",
  InvalidAppend: "BAD_REQUEST",
  InvalidRead: "BAD_REQUEST",
  InvalidCursor: "BAD_REQUEST",
  InvalidCommand: "BAD_REQUEST",
  SchemaError: "BAD_REQUEST",
  BatchTooLarge: "PAYLOAD_TOO_LARGE",
  EventTooLarge: "PAYLOAD_TOO_LARGE",
  PayloadTooLarge: "PAYLOAD_TOO_LARGE",
  UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
  Forbidden: "FORBIDDEN",
  Unauthenticated: "UNAUTHORIZED",
  AuthUnavailable: "SERVICE_UNAVAILABLE",
  TooManyRequests: "TOO_MANY_REQUESTS",
  ResponseTooLarge: "PAYLOAD_TOO_LARGE",
  EventDecodeError: "INTERNAL_SERVER_ERROR",
  SqlError: "INTERNAL_SERVER_ERROR",
  MigrationMismatch: "INTERNAL_SERVER_ERROR",
  DatabaseUnavailable: "SERVICE_UNAVAILABLE",
} as const satisfies { readonly [Tag in KnownError["_tag"]]: TRPC_ERROR_CODE_KEY }

export type KnownErrorTag = keyof typeof ERROR_CODES

/** The tag clients see for input that fails validation, whichever layer found it. */
export const INVALID_INPUT = "InvalidInput"

export interface InputIssue {
  /** The field, as `a.b[0].c`; empty for the input as a whole. */
  readonly path: string
  readonly message: string
}

/**
 * What every error response carries in `error.data`, besides tRPC's `code`, `httpStatus`
 * and `path`: the request id, and for a typed error its tag and fields, so clients can
 * branch on `tag` (`"VersionConflict"`) and read `fields` (`{ streamId, expected, actual }`).
 */
export interface ChronicleErrorData {
  readonly requestId: string | null
  readonly tag: string | null
  readonly fields: { readonly [key: string]: unknown } | null
}

/** A tRPC error made from a typed error; keeps the tag and fields for the error's data. */
export class ChronicleError extends TRPCError {
  readonly tag: string
  readonly fields: { readonly [key: string]: unknown }
  constructor(options: {
    code: TRPC_ERROR_CODE_KEY
    message: string
    tag: string
    fields: { readonly [key: string]: unknown }
    cause?: unknown
  }) {
    super({ code: options.code, message: options.message, cause: options.cause })
    this.tag = options.tag
    this.fields = options.fields
  }
}

/** A failure of the service itself. Its message is for the log only, never for the client. */
export class UnexpectedFailure extends Error {
  override readonly name = "UnexpectedFailure"
  readonly failure: Cause.Cause<unknown>
  constructor(failure: Cause.Cause<unknown>) {
    super(Cause.pretty(failure))
    this.failure = failure
  }
}

const formatPath = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string =>
  path
    .map((segment) => (typeof segment === "object" ? segment.key : segment))
    .reduce<string>(
      (out, key) =>
        typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
      "",
    )

/** `limit: Expected a value less than or equal to 500; types[0]: Expected string`. */
export const formatIssues = (issues: ReadonlyArray<InputIssue>): string =>
  issues.map((i) => (i.path === "" ? i.message : `${i.path}: ${i.message}`)).join("; ")

export const issuesOf = (
  issues: ReadonlyArray<{
    readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined
    readonly message: string
  }>,
): ReadonlyArray<InputIssue> => issues.map((i) => ({ path: formatPath(i.path ?? []), message: i.message }))

const standardFormatter = SchemaIssue.makeFormatterStandardSchemaV1()

const invalidInput = (issues: ReadonlyArray<InputIssue>, cause: unknown) =>
  new ChronicleError({
    code: "BAD_REQUEST",
    message: formatIssues(issues),
    tag: INVALID_INPUT,
    fields: { issues },
    cause,
  })

const isKnownError = (error: unknown): error is KnownError =>
  typeof error === "object" &&
  error !== null &&
  "_tag" in error &&
  typeof error._tag === "string" &&
  Object.hasOwn(ERROR_CODES, error._tag)

const fieldsOf = (error: object): { [key: string]: unknown } =>
  Object.fromEntries(Object.entries(error).filter(([key]) => key !== "_tag"))

/** The tRPC error a typed failure becomes, by the table. */
export const toTRPCError = (error: KnownError): TRPCError => {
  const code = ERROR_CODES[error._tag]
  if (code === "INTERNAL_SERVER_ERROR") {
    return new TRPCError({ code, cause: new UnexpectedFailure(Cause.fail(error)) })
  }
  if (Schema.isSchemaError(error)) {
    return invalidInput(issuesOf(standardFormatter(error.issue).issues), error)
  }
  return new ChronicleError({
    code,
    message: error.message,
    tag: error._tag,
    fields: fieldsOf(error),
    cause: error,
  })
}

/**
 * Whether a failure was the database going away: a database error that the store
 * classifies as unavailable, failed with or died of (the domain turns database errors into
 * defects). The client gets a 503 to retry, not a 500 to report.
 */
const lostTheDatabase = (cause: Cause.Cause<unknown>): boolean =>
  cause.reasons.some(
    (reason) =>
      (Cause.isFailReason(reason) && isDatabaseUnavailable(reason.error)) ||
      (Cause.isDieReason(reason) && isDatabaseUnavailable(reason.defect)),
  )

/**
 * The tRPC error for an effect's failure. A typed failure goes through the table; losing
 * the database is SERVICE_UNAVAILABLE; a defect or any other failure is a 500 whose details
 * stay on the server.
 */
export const causeToTRPCError = (cause: Cause.Cause<unknown>): TRPCError => {
  if (Cause.hasInterruptsOnly(cause)) {
    return new TRPCError({ code: "CLIENT_CLOSED_REQUEST", message: "The request was cancelled" })
  }
  if (lostTheDatabase(cause)) return toTRPCError(new DatabaseUnavailable())
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure) && isKnownError(failure.value)) return toTRPCError(failure.value)
  return new TRPCError({ code: "INTERNAL_SERVER_ERROR", cause: new UnexpectedFailure(cause) })
}

/** Anything thrown while streaming a subscription, as a tRPC error. */
export const unknownToTRPCError = (error: unknown): TRPCError =>
  error instanceof TRPCError
    ? error
    : isDatabaseUnavailable(error)
      ? toTRPCError(new DatabaseUnavailable())
      : isKnownError(error)
        ? toTRPCError(error)
        : new TRPCError({ code: "INTERNAL_SERVER_ERROR", cause: new UnexpectedFailure(Cause.die(error)) })

export const internalErrorMessage = (requestId: string | null): string =>
  requestId === null
    ? "Internal server error"
    : `Internal server error; quote request id ${requestId} when reporting it`

/**
 * The error's message and data as the client sees them. Validation failures list every
 * issue as `path: message`; internal errors say nothing but the request id.
 */
export const describeError = (
  error: TRPCError,
  requestId: string | null,
): { readonly message: string } & ChronicleErrorData => {
  if (error.code === "INTERNAL_SERVER_ERROR") {
    return { message: internalErrorMessage(requestId), requestId, tag: null, fields: null }
  }
  if (error instanceof ChronicleError) {
    return { message: error.message, requestId, tag: error.tag, fields: error.fields }
  }
  if (error.cause instanceof StandardSchemaV1Error) {
    const issues = issuesOf(error.cause.issues)
    return { message: formatIssues(issues), requestId, tag: INVALID_INPUT, fields: { issues } }
  }
  return { message: error.message, requestId, tag: null, fields: null }
}

/**
 * The JSON body tRPC would send for `error`, for answers the HTTP layer gives before tRPC
 * runs (a body over the limit), so clients read every error the same way.
 */
export const errorResponseBody = (error: TRPCError, requestId: string | null) => {
  const { message, ...details } = describeError(error, requestId)
  return {
    error: {
      message,
      code: TRPC_ERROR_CODES_BY_KEY[error.code],
      data: { code: error.code, httpStatus: getHTTPStatusCodeFromError(error), ...details },
    },
  }
}
