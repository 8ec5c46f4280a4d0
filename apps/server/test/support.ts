import { randomUUID } from "node:crypto"
import { startTestAuthority, type TestAuthority } from "@chronicle/api/testing"
import { type ChronicleClient, createChronicleClient } from "@chronicle/client"
import { Retention } from "@chronicle/domain"
import { Database, EventStore, type NewEvent } from "@chronicle/store"
import { createPostgresDatabase, pgliteTestLayer, type TestEnvironment } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import type { Layer } from "effect"
import { Effect } from "effect"
import { expect, vi } from "vitest"
import { type ServerConfig, serverConfig } from "../src/config.ts"
import { type RunningServer, startServer } from "../src/serve.ts"

/** Where a test server keeps its data: a fresh embedded database, or a fresh Postgres database. */
export interface TestDatabase {
  readonly name: "pglite" | "postgres"
  readonly prepare: () => Promise<{
    readonly database: ServerConfig["database"]
    readonly layer?: Layer.Layer<Database, unknown>
    readonly drop: () => Promise<void>
  }>
}

export const testDatabases = (env: TestEnvironment): ReadonlyArray<TestDatabase> => [
  ...(env.pgliteTemplate === null
    ? []
    : [
        {
          name: "pglite" as const,
          prepare: async () => ({
            database: { kind: "memory" } as const,
            layer: pgliteTestLayer(env.pgliteTemplate!),
            drop: async () => {},
          }),
        },
      ]),
  ...(env.postgresUrl === null
    ? []
    : [
        {
          name: "postgres" as const,
          prepare: async () => {
            const created = await createPostgresDatabase(env.postgresUrl!)
            return {
              database: {
                kind: "postgres" as const,
                url: created.url,
                prepare: true,
                listen: true,
                pooler: "none" as const,
              },
              drop: created.drop,
            }
          },
        },
      ]),
]

export interface TestServer {
  readonly server: RunningServer
  readonly authority: TestAuthority
  /** Every JSON log line the server wrote. */
  readonly logs: Array<Record<string, unknown>>
  /** The Postgres database the server uses (undefined on the embedded one). */
  readonly databaseUrl: string | undefined
  readonly close: () => Promise<void>
}

/** The real server on a free loopback port, trusting a local test authority. */
export const startTestServer = async (
  database: TestDatabase,
  env: Record<string, string> = {},
  options: { readonly beforeStart?: (authority: TestAuthority) => void } = {},
): Promise<TestServer> => {
  const authority = await startTestAuthority()
  options.beforeStart?.(authority)
  const prepared = await database.prepare()
  const logs: Array<Record<string, unknown>> = []
  const config: ServerConfig = {
    ...serverConfig({
      PORT: "0",
      SUPABASE_URL: authority.url,
      SUPABASE_JWT_SECRET: authority.jwtSecret,
      CHRONICLE_SERVICE_KEY: authority.serviceKey,
      CHRONICLE_SHUTDOWN_TIMEOUT_MS: "2000",
      ...env,
    }),
    database: prepared.database,
  }
  const server = await startServer(config, {
    database: prepared.layer,
    logSink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
  })
  return {
    server,
    authority,
    logs,
    databaseUrl: prepared.database.kind === "postgres" ? prepared.database.url : undefined,
    close: async () => {
      await server.close()
      await authority.close()
      await prepared.drop()
    },
  }
}

/**
 * Runs the server's own retention sweep as if `hours` had passed: every active session then
 * idle longer than the server's TTL is expired (SessionExpired), as the periodic sweep does.
 */
export const sweepLater = (t: TestServer, hours: number) =>
  t.server.runtime.runPromise(
    Effect.flatMap(Retention, (retention) => retention.sweep(new Date(Date.now() + hours * 3_600_000))),
  )

export const clientFor = (url: string, token?: string, actingFor?: string) =>
  createChronicleClient({
    url,
    ...(token === undefined ? {} : { token }),
    ...(actingFor === undefined ? {} : { actingFor }),
  })

export const newSessionStream = () => `session-${randomUUID()}`

export const events = (n: number, type = "MessageAppended", from = 0): Array<NewEvent> =>
  Array.from({ length: n }, (_, i) => ({ type, data: { n: from + i } }))

/** Appends straight to the store through the server's own runtime. */
export const seed = (
  server: RunningServer,
  streamId: string,
  batch: ReadonlyArray<NewEvent>,
  ownerId?: string,
) =>
  server.runtime.runPromise(
    Effect.flatMap(EventStore, (store) =>
      store.append(streamId, batch, ownerId === undefined ? {} : { ownerId }),
    ),
  )

/** Runs SQL on the server's database. */
export const sql = (server: RunningServer, text: string) =>
  server.runtime.runPromise(Effect.flatMap(Database, (db) => db.exec(text)).pipe(Effect.orDie))

/** A lower-case UUID, as ids travel on the wire. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** An ISO-8601 instant in UTC with milliseconds, as every timestamp travels on the wire. */
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** Limits small enough that tests can cross each one cheaply. */
export const SMALL_LIMITS = {
  maxBodyBytes: 256 * 1024,
  maxMessageBytes: 2048,
  maxFileBytes: 8192,
} as const

/** The server settings that apply SMALL_LIMITS. */
export const smallLimitsEnv: Record<string, string> = {
  CHRONICLE_MAX_BODY_BYTES: String(SMALL_LIMITS.maxBodyBytes),
  CHRONICLE_MAX_MESSAGE_BYTES: String(SMALL_LIMITS.maxMessageBytes),
  CHRONICLE_MAX_FILE_BYTES: String(SMALL_LIMITS.maxFileBytes),
}

/** Every kind of caller the ownership rules tell apart, each with its own client. */
export interface Callers {
  /** User A's id; A presents an ES256 token, verified through the JWKS. */
  readonly alice: string
  /** User B's id; B presents an HS256 token, verified with the project secret. */
  readonly bob: string
  readonly asAlice: ChronicleClient
  readonly asBob: ChronicleClient
  /** The service key, acting for no one. */
  readonly asService: ChronicleClient
  /** The service key with `x-chronicle-owner`. */
  readonly asServiceFor: (owner: string) => ChronicleClient
  readonly anonymous: ChronicleClient
  /** A's token, expired a minute ago. */
  readonly expired: ChronicleClient
  /** A's claims, ES256-signed under the published key id with a key the JWKS does not hold. */
  readonly forged: ChronicleClient
  /** A's claims, HS256-signed with a secret that is not the project's. */
  readonly wrongSecret: ChronicleClient
}

export const callers = async (t: TestServer): Promise<Callers> => {
  const url = t.server.url
  const alice = randomUUID()
  const bob = randomUUID()
  const past = Math.floor(Date.now() / 1000) - 60
  return {
    alice,
    bob,
    asAlice: clientFor(url, await t.authority.es256Token({ sub: alice })),
    asBob: clientFor(url, await t.authority.hs256Token({ sub: bob })),
    asService: clientFor(url, t.authority.serviceKey),
    asServiceFor: (owner) => clientFor(url, t.authority.serviceKey, owner),
    anonymous: clientFor(url),
    expired: clientFor(url, await t.authority.hs256Token({ sub: alice, expiresIn: past })),
    forged: clientFor(url, await t.authority.forgedEs256Token({ sub: alice })),
    wrongSecret: clientFor(
      url,
      await t.authority.hs256Token({ sub: alice }, "not-the-project-secret-at-all-0123"),
    ),
  }
}

/** Follows `nextCursor` to the end, returning every item and the number of pages. */
export const allPages = async <A>(
  page: (cursor: string | undefined) => Promise<{
    readonly items: ReadonlyArray<A>
    readonly nextCursor: string | null
  }>,
) => {
  const items: Array<A> = []
  let cursor: string | undefined
  let pages = 0
  do {
    const next = await page(cursor)
    pages++
    items.push(...next.items)
    cursor = next.nextCursor ?? undefined
  } while (cursor !== undefined && pages < 10_000)
  return { items, pages }
}

const HTTP_STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
} as const

/**
 * Awaits a call that must be refused and checks the refusal: the tRPC code and its HTTP
 * status, the tag of the typed error behind it, and the message when given.
 */
export const refusal = async (
  promise: Promise<unknown>,
  expected: {
    readonly code: keyof typeof HTTP_STATUS
    readonly tag?: string
    readonly message?: string | RegExp
  },
) => {
  const error = await failure(promise)
  expect(error.data, error.message).toMatchObject({
    code: expected.code,
    httpStatus: HTTP_STATUS[expected.code],
    ...(expected.tag === undefined ? {} : { tag: expected.tag }),
  })
  if (typeof expected.message === "string") expect(error.message).toBe(expected.message)
  else if (expected.message !== undefined) expect(error.message).toMatch(expected.message)
  return error
}

/** The failure of a promise that must fail. */
export const failure = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (error) {
    return error as {
      message: string
      data?: {
        code: string
        httpStatus: number
        requestId: string | null
        tag: string | null
        fields: unknown
      }
    }
  }
  throw new Error("expected a failure")
}

/** Polls a projection run (as `service`, the service role) until it has ended, and returns it. */
export const runEnded = async (service: ChronicleClient, runId: string) => {
  let run = await service.projections.run.query({ runId })
  await vi.waitFor(
    async () => {
      run = await service.projections.run.query({ runId })
      expect(run.state).not.toMatch(/^(running|cancelling)$/)
    },
    { timeout: 60_000, interval: 50 },
  )
  return run
}
