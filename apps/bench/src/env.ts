import { randomBytes } from "node:crypto"
import { type Content, DomainLayer, type Sessions } from "@chronicle/domain"
import { Projections } from "@chronicle/projections"
import {
  Database,
  type Driver,
  EventStore,
  makePgliteDriver,
  makePostgresDriver,
  migrate,
  type PgliteDriver,
} from "@chronicle/store"
import { Effect, Layer, ManagedRuntime } from "effect"
import postgres from "postgres"

export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"

/** What Chronicle's services run on in the benchmark process. */
export type BenchServices = Database | EventStore | Sessions | Content | Projections

export interface BenchEnv {
  readonly kind: "postgres" | "embedded"
  /** Chronicle: the store, the domain and the projections on the benchmark database. */
  readonly runtime: ManagedRuntime.ManagedRuntime<BenchServices, never>
  /** The baselines' own access to the same database: a postgres.js pool, or the same PGlite. */
  readonly raw: Driver
  /** The benchmark database's URL (Postgres only). */
  readonly url: string | null
  /** The server's version string. */
  readonly serverVersion: string
  /** The embedded database, shared by Chronicle and the baselines. */
  readonly pglite: PgliteDriver | null
  /** A second database on the same server for the peer event store (Postgres only). */
  readonly peerUrl: string | null
  readonly close: () => Promise<void>
}

export const POOL_SIZE = 20

/** The baselines' tables: the log's shape without its triggers, and a rebuild target. */
const RAW_SCHEMA = `
  create schema if not exists bench_raw;
  create table bench_raw.events (like chronicle.events including defaults including identity
    including constraints including indexes);
  create table bench_raw.rebuilt (global_position bigint primary key, stream_id text not null,
    stream_version integer not null, type text not null, data jsonb not null);
`

const databaseUrl = (adminUrl: string, name: string) => {
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

const chronicleRuntime = (database: Layer.Layer<Database, unknown>) => {
  const store = EventStore.layer().pipe(
    Layer.provideMerge(Layer.effectDiscard(migrate().pipe(Effect.orDie))),
    Layer.provideMerge(database),
  )
  const domain = Layer.mergeAll(DomainLayer, Projections.layer)
  return ManagedRuntime.make(domain.pipe(Layer.provideMerge(store), Layer.orDie))
}

/** Creates fresh databases (Postgres) or a fresh embedded one, migrated, with the baselines' tables. */
export const openEnv = async (options: {
  readonly embedded: boolean
  readonly adminUrl: string
  readonly keep?: boolean
}): Promise<BenchEnv> => {
  if (options.embedded) {
    const pglite = await makePgliteDriver({ dataDir: undefined })
    // Chronicle and the baselines share the one in-process database; closed once, at the end.
    const shared: Driver = { ...pglite, close: async () => {} }
    const runtime = chronicleRuntime(Database.fromDriver(Effect.succeed(shared)))
    await runtime.runPromise(Effect.void)
    await pglite.exec(RAW_SCHEMA)
    const [row] = await pglite.query<{ v: string }>("select version() as v")
    return {
      kind: "embedded",
      runtime,
      raw: shared,
      url: null,
      serverVersion: `PGlite (${row?.v.split(" on ")[0] ?? "?"})`,
      pglite,
      peerUrl: null,
      close: async () => {
        await runtime.dispose()
        await pglite.close()
      },
    }
  }
  const name = `chronicle_bench_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
  const admin = postgres(options.adminUrl, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`create database "${name}"`)
    await admin.unsafe(`create database "${name}_peer"`)
  } finally {
    await admin.end({ timeout: 1 })
  }
  const url = databaseUrl(options.adminUrl, name)
  const runtime = chronicleRuntime(Database.layerPostgres({ url, max: POOL_SIZE }))
  await runtime.runPromise(Effect.void)
  const raw = makePostgresDriver({ url, max: POOL_SIZE })
  await raw.exec(RAW_SCHEMA)
  const [row] = await raw.query<{ v: string }>("select current_setting('server_version') as v")
  return {
    kind: "postgres",
    runtime,
    raw,
    url,
    serverVersion: `PostgreSQL ${row?.v.split(" ")[0] ?? "?"}`,
    pglite: null,
    peerUrl: databaseUrl(options.adminUrl, `${name}_peer`),
    close: async () => {
      await runtime.dispose()
      await raw.close()
      if (options.keep) return
      const sql = postgres(options.adminUrl, { max: 1, onnotice: () => {} })
      try {
        await sql.unsafe(`drop database if exists "${name}" with (force)`)
        await sql.unsafe(`drop database if exists "${name}_peer" with (force)`)
      } finally {
        await sql.end({ timeout: 1 })
      }
    },
  }
}

/** Runs an effect on Chronicle's runtime. */
export const run = <A, E>(env: BenchEnv, effect: Effect.Effect<A, E, BenchServices>): Promise<A> =>
  env.runtime.runPromise(effect)
