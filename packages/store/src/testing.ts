/**
 * Test support shared by every package whose tests touch a database: one place that knows
 * where the test Postgres is, how to make a fresh database on it, and how to start an
 * embedded database from a migrated template instead of running initdb each time.
 */
import { randomBytes } from "node:crypto"
import { readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer, ManagedRuntime } from "effect"
import postgres from "postgres"
import { Database, makeDatabase } from "./database.ts"
import { EventStore, type EventStoreOptions } from "./event-store.ts"
import { migrate } from "./migrations.ts"
import { makePgliteDriver } from "./pglite-driver.ts"
import { redactUrl } from "./postgres-driver.ts"

/** Used when TEST_DATABASE_URL is not set: the local server a development machine runs. */
export const LOCAL_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"

export interface TestEnvironment {
  /** An admin connection string for the Postgres matrix, or null when it does not run. */
  readonly postgresUrl: string | null
  /**
   * A file holding a dump of a migrated embedded database; null in a test project that runs
   * only on Postgres (a newer major's: `vitest-projects.ts`).
   */
  readonly pgliteTemplate: string | null
}

const canConnect = async (url: string): Promise<string | undefined> => {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} })
  try {
    await sql`select 1`
    return undefined
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

/**
 * Decides whether the Postgres matrix runs. TEST_DATABASE_URL=<url> makes it mandatory (a
 * server that cannot be reached fails the run); TEST_DATABASE_URL=none turns it off; unset,
 * it runs when the local server answers. Either way one line says what happens.
 */
export const resolvePostgresUrl = async (): Promise<string | null> => {
  const configured = process.env.TEST_DATABASE_URL
  if (configured === "none") {
    console.log(
      "[chronicle] Postgres matrix NOT run: TEST_DATABASE_URL=none. Only the embedded database is tested.",
    )
    return null
  }
  const url = configured ?? LOCAL_POSTGRES_URL
  const problem = await canConnect(url)
  if (problem === undefined) {
    console.log(`[chronicle] Postgres matrix runs against ${redactUrl(url)}`)
    return url
  }
  if (configured !== undefined || process.env.CI) {
    throw new Error(`TEST_DATABASE_URL=${redactUrl(url)} cannot be reached: ${problem}`)
  }
  console.log(
    `[chronicle] Postgres matrix NOT run: no server at ${redactUrl(url)} (${problem}). Set TEST_DATABASE_URL to run it.`,
  )
  return null
}

/** Creates a migrated embedded database once and dumps it to a file; returns the path. */
export const createPgliteTemplate = async (): Promise<string> => {
  const driver = await makePgliteDriver({ dataDir: undefined })
  try {
    await Effect.runPromise(migrate().pipe(Effect.provideService(Database, makeDatabase(driver))))
    const dump = await driver.dumpDataDir()
    const path = join(
      tmpdir(),
      `chronicle-pglite-template-${process.pid}-${randomBytes(4).toString("hex")}.tar`,
    )
    await writeFile(path, Buffer.from(await dump.arrayBuffer()))
    return path
  } finally {
    await driver.close()
  }
}

export const removeFile = (path: string) => rm(path, { force: true })

/** A fresh embedded database, in memory, started from the migrated template. */
export const pgliteTestLayer = (templatePath: string): Layer.Layer<Database, never> =>
  Database.fromDriver(
    Effect.promise(async () => {
      const bytes = await readFile(templatePath)
      return makePgliteDriver({ dataDir: undefined, loadDataDir: new Blob([bytes]) })
    }),
  )

/** Creates an empty database on the server at `adminUrl`; returns its URL and a way to drop it. */
export const createPostgresDatabase = async (adminUrl: string) => {
  const name = `chronicle_test_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`create database "${name}"`)
  } finally {
    await admin.end({ timeout: 1 })
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    name,
    url: url.toString(),
    drop: async () => {
      const sql = postgres(adminUrl, { max: 1, onnotice: () => {} })
      try {
        await sql.unsafe(`drop database if exists "${name}" with (force)`)
      } finally {
        await sql.end({ timeout: 1 })
      }
    },
  }
}

/** A fresh, migrated Postgres database for the life of the layer; dropped afterwards. */
export const postgresTestLayer = (
  adminUrl: string,
  options: { max?: number } = {},
): Layer.Layer<Database, never> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const created = yield* Effect.acquireRelease(
        Effect.promise(() => createPostgresDatabase(adminUrl)),
        (db) => Effect.promise(() => db.drop()),
      )
      const layer = Database.layerPostgres({ url: created.url, max: options.max ?? 20 }).pipe(Layer.orDie)
      return Layer.effectDiscard(migrate().pipe(Effect.orDie)).pipe(Layer.provideMerge(layer))
    }),
  )

export interface TestDatabase {
  readonly name: "pglite" | "postgres"
  /** A fresh migrated database per use of the layer. */
  readonly layer: (options?: { max?: number }) => Layer.Layer<Database, never>
}

/** The template of a project that tests the embedded database; throws in one that does not. */
export const requireTemplate = (template: string | null): string => {
  if (template === null) throw new Error("this test project does not test the embedded database")
  return template
}

/**
 * The databases every store-level test runs against: the embedded database (unless the
 * project runs only on Postgres) and Postgres when available.
 */
export const testDatabases = (env: TestEnvironment): ReadonlyArray<TestDatabase> => [
  ...(env.pgliteTemplate === null
    ? []
    : [{ name: "pglite" as const, layer: () => pgliteTestLayer(env.pgliteTemplate!) }]),
  ...(env.postgresUrl === null
    ? []
    : [
        {
          name: "postgres" as const,
          layer: (o: { max?: number } = {}) => postgresTestLayer(env.postgresUrl!, o),
        },
      ]),
]

/** A runtime over a fresh database and an event store on it, for one test file. */
export const makeTestRuntime = (database: Layer.Layer<Database, never>, options: EventStoreOptions = {}) =>
  ManagedRuntime.make(EventStore.layer(options).pipe(Layer.provideMerge(database)))

export type TestRuntime = ReturnType<typeof makeTestRuntime>
