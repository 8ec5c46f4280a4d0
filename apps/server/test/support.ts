import { randomUUID } from "node:crypto"
import { startTestAuthority, type TestAuthority } from "@chronicle/api/testing"
import { createChronicleClient } from "@chronicle/client"
import { Database, EventStore, type NewEvent } from "@chronicle/store"
import { createPostgresDatabase, pgliteTestLayer, type TestEnvironment } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import type { Layer } from "effect"
import { Effect } from "effect"
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
  {
    name: "pglite",
    prepare: async () => ({
      database: { kind: "memory" },
      layer: pgliteTestLayer(env.pgliteTemplate),
      drop: async () => {},
    }),
  },
  ...(env.postgresUrl === null
    ? []
    : [
        {
          name: "postgres" as const,
          prepare: async () => {
            const created = await createPostgresDatabase(env.postgresUrl!)
            return {
              database: { kind: "postgres" as const, url: created.url, prepare: true, listen: true },
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
  readonly close: () => Promise<void>
}

/** The real server on a free loopback port, trusting a local test authority. */
export const startTestServer = async (
  database: TestDatabase,
  env: Record<string, string> = {},
): Promise<TestServer> => {
  const authority = await startTestAuthority()
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
    close: async () => {
      await server.close()
      await authority.close()
      await prepared.drop()
    },
  }
}

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
