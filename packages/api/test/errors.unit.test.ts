import { randomUUID } from "node:crypto"
import {
  EventDecodeError,
  Forbidden,
  InvalidCommand,
  InvalidTransition,
  NotFound,
  PayloadTooLarge,
  UnsupportedMediaType,
} from "@chronicle/events"
import {
  BatchTooLarge,
  Database,
  type DatabaseService,
  DatabaseUnavailable,
  EventStore,
  type EventStoreService,
  EventTooLarge,
  IdempotencyConflict,
  InvalidAppend,
  InvalidCursor,
  InvalidRead,
  MigrationMismatch,
  SqlError,
  VersionConflict,
} from "@chronicle/store"
import { fetchRequestHandler } from "@trpc/server/adapters/fetch"
import { Cause, Effect, Layer, ManagedRuntime, Option, Schema, Stream } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { DEV_OWNER_ID, makeAuthVerifier } from "../src/auth.ts"
import { type ApiRuntime, type Context, makeCreateContext } from "../src/context.ts"
import {
  AuthUnavailable,
  ChronicleError,
  causeToTRPCError,
  describeError,
  ERROR_CODES,
  type KnownError,
  ResponseTooLarge,
  TooManyRequests,
  toTRPCError,
  Unauthenticated,
  UnexpectedFailure,
  unknownToTRPCError,
} from "../src/errors.ts"
import { DEFAULT_LIMITS } from "../src/limits.ts"
import { appRouter } from "../src/router.ts"

const samples: ReadonlyArray<KnownError> = [
  new NotFound({ entity: "Session", id: "s1" }),
  new VersionConflict({ streamId: "session-1", expected: 3, actual: 4 }),
  new InvalidTransition({
    entity: "Job",
    id: "j1",
    state: "completed",
    action: "start",
    reason: "it has ended",
  }),
  new IdempotencyConflict({ streamId: "session-1", eventIds: ["e1"] }),
  new InvalidAppend({ path: "events[0].type", reason: "must be PascalCase" }),
  new InvalidRead({ path: "limit", reason: "too big" }),
  new InvalidCursor({ cursor: "nope" }),
  new InvalidCommand({ path: "toVersion", reason: "must be below the current version" }),
  Effect.runSync(
    Effect.flip(Schema.decodeUnknownEffect(Schema.Struct({ title: Schema.String }))({ title: 1 })),
  ),
  new BatchTooLarge({ size: 501, limit: 500 }),
  new EventTooLarge({ path: "events[0]", bytes: 2_000_000, limit: 1_048_576 }),
  new PayloadTooLarge({ what: "The message content", size: 2_000_000, limit: 1_048_576 }),
  new UnsupportedMediaType({ mimeType: "application/x-msdownload", allowed: ["text/*"] }),
  new Forbidden({ reason: "Only the service role may act for another owner" }),
  new Unauthenticated({ reason: "The token has expired" }),
  new AuthUnavailable({ reason: "The project's signing keys could not be fetched" }),
  new TooManyRequests({ what: "queries", limit: 8 }),
  new ResponseTooLarge({ size: 2_000_000, used: 15_000_000, limit: 16_777_216 }),
  new EventDecodeError({ type: "MessageAppended", reason: "role is missing" }),
  new SqlError({ code: "42P01", reason: 'relation "chronicle.streams" does not exist' }),
  new MigrationMismatch({ migration: "20261123000000_event_log.sql", reason: "edited" }),
  new DatabaseUnavailable(),
]

describe("the error table", () => {
  it("has exactly one entry per known error tag", () => {
    expect(new Set(samples.map((e) => e._tag))).toEqual(new Set(Object.keys(ERROR_CODES)))
  })

  it("maps each typed error to its code, keeping its own message, tag and fields", () => {
    const mapped = Object.fromEntries(
      samples.map((e) => {
        const error = toTRPCError(e)
        return [e._tag, error.code]
      }),
    )
    expect(mapped).toEqual({
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
    })
    const conflict = toTRPCError(new VersionConflict({ streamId: "session-1", expected: 3, actual: 4 }))
    expect(conflict).toBeInstanceOf(ChronicleError)
    expect(describeError(conflict, "r1")).toEqual({
      message: "Stream session-1 is at version 4, but the append expected version 3",
      requestId: "r1",
      tag: "VersionConflict",
      fields: { streamId: "session-1", expected: 3, actual: 4 },
    })
  })

  it("reports a schema failure as InvalidInput with each issue's path", () => {
    const error = toTRPCError(samples.find((e) => e._tag === "SchemaError")!)
    expect(describeError(error, null)).toEqual({
      message: "title: Expected string",
      requestId: null,
      tag: "InvalidInput",
      fields: { issues: [{ path: "title", message: "Expected string" }] },
    })
  })

  it("answers SERVICE_UNAVAILABLE when the database went away, whether failed with or died of", () => {
    const lost = [
      new SqlError({ code: "ECONNREFUSED", reason: "connect ECONNREFUSED 127.0.0.1:5432" }),
      new SqlError({ code: "57P01", reason: "terminating connection due to administrator command" }),
      new SqlError({ code: "CONNECTION_CLOSED", reason: "write CONNECTION_CLOSED" }),
      new SqlError({ code: "08006", reason: "connection failure" }),
    ]
    for (const error of lost) {
      for (const cause of [Cause.fail(error), Cause.die(error)]) {
        const mapped = causeToTRPCError(cause)
        expect(mapped.code).toBe("SERVICE_UNAVAILABLE")
        expect(describeError(mapped, "r1")).toEqual({
          message: "The database is unavailable; retry shortly",
          requestId: "r1",
          tag: "DatabaseUnavailable",
          fields: {},
        })
      }
      expect(unknownToTRPCError(error).code).toBe("SERVICE_UNAVAILABLE")
    }
    const broken = new SqlError({ code: "42P01", reason: "relation does not exist" })
    expect(causeToTRPCError(Cause.die(broken)).code).toBe("INTERNAL_SERVER_ERROR")
    expect(unknownToTRPCError(broken).code).toBe("INTERNAL_SERVER_ERROR")
    expect(causeToTRPCError(Cause.die(new Error("boom"))).code).toBe("INTERNAL_SERVER_ERROR")
  })

  it("answers internal failures with the request id only, keeping the details for the log", () => {
    const error = toTRPCError(
      new SqlError({ code: "42P01", reason: 'relation "chronicle.streams" does not exist' }),
    )
    expect(error.cause).toBeInstanceOf(UnexpectedFailure)
    expect(error.cause?.message).toContain("chronicle.streams")
    const described = describeError(error, "req-42")
    expect(described).toEqual({
      message: "Internal server error; quote request id req-42 when reporting it",
      requestId: "req-42",
      tag: null,
      fields: null,
    })
  })
})

// ----- over HTTP, through tRPC's fetch adapter, with a stub store -------------------------

const OTHER_OWNER = randomUUID()
const MINE = `session-${randomUUID()}`
const THEIRS = `session-${randomUUID()}`
const BROKEN = `session-${randomUUID()}`

const streamInfo: EventStoreService["streamInfo"] = (streamId) => {
  if (streamId === BROKEN) return Effect.die(new Error("connection to postgres://admin:hunter2@db failed"))
  const ownerId = streamId === MINE ? DEV_OWNER_ID : streamId === THEIRS ? OTHER_OWNER : undefined
  return Effect.succeed(
    ownerId === undefined
      ? Option.none()
      : Option.some({
          streamId,
          streamType: "session",
          version: 0,
          ownerId,
          createdAt: new Date(),
          updatedAt: new Date(),
        }),
  )
}

const store: EventStoreService = {
  append: () => Effect.die("not used"),
  readStream: (streamId) =>
    streamId === MINE
      ? Effect.succeed({ events: [], version: 0, nextVersion: undefined })
      : Effect.die("not used"),
  readAll: () => Effect.die("not used"),
  subscribe: () => Stream.die("not used"),
  streamInfo,
  findEventById: () => Effect.die("not used"),
  findBatchByEventId: () => Effect.die("not used"),
  eventDetails: () => Effect.die("not used"),
  head: () => Effect.succeed({ cursor: "0", seq: 0, globalPosition: 0 }),
  sequenced: () => Effect.void,
  sequenceAll: () => Effect.void,
}
const database = { kind: "pglite", query: () => Effect.succeed([]) } as unknown as DatabaseService

// Only the procedures under test run here (events.readStream, health): they need nothing
// but the store and the database, so the domain services are left out of this runtime.
const runtime = ManagedRuntime.make(
  Layer.mergeAll(Layer.succeed(EventStore, store), Layer.succeed(Database, database)),
) as unknown as ApiRuntime
afterAll(() => runtime.dispose())

const serve = (verifier = makeAuthVerifier({})) => {
  const createContext = makeCreateContext({ runtime, auth: verifier, limits: DEFAULT_LIMITS })
  const errors: Array<unknown> = []
  const call = async (path: string, input: unknown, headers: Record<string, string> = {}) => {
    const url = `http://chronicle.test/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`
    const res = await fetchRequestHandler({
      endpoint: "/trpc",
      router: appRouter,
      req: new Request(url, { headers }),
      createContext: ({ req }) =>
        createContext({
          requestId: "req-1",
          authorization: req.headers.get("authorization"),
          actingFor: null,
        }),
      onError: ({ error }) => errors.push(error),
    })
    return {
      status: res.status,
      body: (await res.json()) as { error?: { message: string; data: Record<string, unknown> } },
    }
  }
  return { call, errors }
}

describe("errors over HTTP", () => {
  it("lists every validation issue as `path: message` with a 400", async () => {
    const { call } = serve()
    const { status, body } = await call("events.readStream", { streamId: "x", limit: 501 })
    expect(status).toBe(400)
    expect(body.error?.message).toBe(
      "streamId: must be <category>-<uuid>, such as session-0b6f2c7e-…; limit: Expected a value less than or equal to 500",
    )
    expect(body.error?.data).toMatchObject({
      code: "BAD_REQUEST",
      httpStatus: 400,
      path: "events.readStream",
      requestId: "req-1",
      tag: "InvalidInput",
      fields: {
        issues: [
          { path: "streamId" },
          { path: "limit", message: "Expected a value less than or equal to 500" },
        ],
      },
    })
  })

  it("answers another owner's stream as not found, with the error's tag and fields", async () => {
    const { call } = serve()
    expect((await call("events.readStream", { streamId: MINE })).status).toBe(200)
    const { status, body } = await call("events.readStream", { streamId: THEIRS })
    expect(status).toBe(404)
    expect(body.error?.message).toBe(`Stream ${THEIRS} was not found`)
    expect(body.error?.data).toMatchObject({ tag: "NotFound", fields: { entity: "Stream", id: THEIRS } })
  })

  it("maps a store error through the table", async () => {
    const { call } = serve()
    const { status, body } = await call("events.readStream", { streamId: MINE, cursor: "abc" })
    expect(status).toBe(400)
    expect(body.error?.message).toBe('Cursor "abc" is not a cursor handed out by this store')
    expect(body.error?.data).toMatchObject({ tag: "InvalidCursor", fields: { cursor: "abc" } })
  })

  it("answers a defect with 500, the request id and no internals; the details reach onError", async () => {
    const { call, errors } = serve()
    const { status, body } = await call("events.readStream", { streamId: BROKEN })
    expect(status).toBe(500)
    expect(body.error?.message).toBe("Internal server error; quote request id req-1 when reporting it")
    expect(JSON.stringify(body)).not.toMatch(/hunter2|postgres|stack/)
    expect(body.error?.data).toEqual({
      code: "INTERNAL_SERVER_ERROR",
      httpStatus: 500,
      path: "events.readStream",
      requestId: "req-1",
      tag: null,
      fields: null,
    })
    const logged = errors[0] as { cause?: unknown }
    expect(logged.cause).toBeInstanceOf(UnexpectedFailure)
    expect((logged.cause as UnexpectedFailure).message).toContain("hunter2")
  })

  it("answers 401 with a clear message for a missing or unusable token", async () => {
    const { call } = serve(makeAuthVerifier({ serviceKey: "k".repeat(40) }))
    const missing = await call("events.readStream", { streamId: MINE })
    expect(missing.status).toBe(401)
    expect(missing.body.error?.message).toBe(
      "Missing credentials: send the header Authorization: Bearer <token>",
    )
    const bad = await call("events.readStream", { streamId: MINE }, { authorization: "Bearer nope" })
    expect(bad.status).toBe(401)
    expect(bad.body.error?.data).toMatchObject({ tag: "Unauthenticated", code: "UNAUTHORIZED" })
    // health needs no credentials.
    expect((await call("health", undefined)).status).toBe(200)
  })
})

describe("run", () => {
  it("accepts only effects whose errors the table maps", () => {
    class Unmapped extends Schema.TaggedError<Unmapped>()("Unmapped", {}) {}
    const check = (ctx: Context) => {
      // @ts-expect-error an error with no entry in ERROR_CODES does not compile
      void ctx.run(Effect.fail(new Unmapped()))
      void ctx.run(Effect.fail(new NotFound({ entity: "Session", id: "s" })))
    }
    expect(typeof check).toBe("function")
  })
})
