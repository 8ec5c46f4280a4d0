import { existsSync, readFileSync } from "node:fs"
import { rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { maxEventBytes } from "@chronicle/api"
import { DomainConfig, DomainLayer, defaultDomainConfig, Retention } from "@chronicle/domain"
import { Projections } from "@chronicle/projections"
import { Database, EventStore, migrate, redactUrl, type SqlError } from "@chronicle/store"
import { Data, Effect, Layer, Schedule } from "effect"
import type { DatabaseConfig, ServerConfig } from "./config.ts"

/** Seconds the Postgres driver waits for a server to answer a new connection. */
export const CONNECT_TIMEOUT_SECONDS = 10

/** The configured Postgres server cannot be reached at start: what happened, and what to check. */
export class DatabaseUnreachable extends Data.TaggedError("DatabaseUnreachable")<{
  readonly address: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot connect to the database at ${this.address}: ${this.reason}`
  }
}

/** `host:port` of a connection string, without user or password. */
const addressOf = (url: string): string => {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || "5432"}`
  } catch {
    return redactUrl(url)
  }
}

/**
 * Turns the driver's error for a connection that could not be made into one line a person can
 * act on. postgres.js reports a server that accepts TCP but never answers as
 * `write CONNECT_TIMEOUT host:port`, which says neither what happened nor what to check.
 */
export const explainConnectFailure = (url: string, error: SqlError): DatabaseUnreachable => {
  const address = addressOf(url)
  const reason = (() => {
    switch (error.code) {
      case "CONNECT_TIMEOUT":
        return `it accepted the connection but did not answer within ${CONNECT_TIMEOUT_SECONDS} s; check that DATABASE_URL names a PostgreSQL server (its host and port, or the pooler's), that the server is up and not overloaded, and that no proxy or firewall holds the connection`
      case "ECONNREFUSED":
        return "nothing accepts connections there; check DATABASE_URL's host and port, and that the server is running"
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return `the host name does not resolve (${error.code}); check DATABASE_URL's host`
      case "ETIMEDOUT":
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return `the host cannot be reached (${error.code}); check DATABASE_URL's host and the network between here and there`
      case "28P01":
      case "28000":
        return `${error.reason}; check the user and password in DATABASE_URL`
      case "3D000":
        return `${error.reason}; create it, or name an existing database in DATABASE_URL`
      default:
        return error.message
    }
  })()
  return new DatabaseUnreachable({ address, reason })
}

/** Where a server serving an embedded database records its address: `<dataDir>.server`. */
const serverFileOf = (dataDir: string) => `${dataDir.replace(/[\\/]+$/, "")}.server`

/** Records this process's address beside its embedded database; returns how to remove it. */
export const announceServer = async (dataDir: string, url: string): Promise<() => Promise<void>> => {
  const file = serverFileOf(dataDir)
  await writeFile(file, `${JSON.stringify({ pid: process.pid, url })}\n`)
  return () => rm(file, { force: true })
}

/** The embedded database is open in another process: which one, and what to do instead. */
export class DataDirBusy extends Data.TaggedError("DataDirBusy")<{
  readonly dataDir: string
  readonly pid: number
}> {
  override get message(): string {
    const command = (() => {
      try {
        const argv = readFileSync(`/proc/${this.pid}/cmdline`, "utf8").split("\0").filter(Boolean)
        return argv.length > 0 ? ` (${argv.map((a) => a.split("/").slice(-3).join("/")).join(" ")})` : ""
      } catch {
        return ""
      }
    })()
    const server = (() => {
      try {
        const recorded = JSON.parse(readFileSync(serverFileOf(this.dataDir), "utf8")) as {
          pid: number
          url: string
        }
        return recorded.pid === this.pid ? recorded.url : undefined
      } catch {
        return undefined
      }
    })()
    const api =
      server === undefined
        ? "if it is the Chronicle server, use its API or Studio instead (projections.status, projections.rebuild, sessions.export, events.readAll)"
        : `or leave it running and use its API at ${server}: the Studio (${server}/studio/) shows the projections and runs rebuilds, and projections.status, projections.rebuild, sessions.export and events.readAll answer over HTTP`
    return `the embedded database in ${this.dataDir} is open in process ${this.pid}${command}, and only one process can open it: stop that process (Ctrl-C where it runs, or kill ${this.pid}) and run this command again, ${api}`
  }
}

const IN_USE = /is in use by process (\d+)/

const databaseLayer = (config: DatabaseConfig): Layer.Layer<Database, unknown> =>
  config.kind === "postgres"
    ? Database.layerPostgres({
        url: config.url,
        prepare: config.prepare,
        pipeline: config.pooler !== "transaction",
        connectTimeoutSeconds: CONNECT_TIMEOUT_SECONDS,
      }).pipe(
        Layer.catchTag("SqlError", (error) =>
          Layer.unwrap<Database, never, never, DatabaseUnreachable, never>(
            Effect.fail(explainConnectFailure(config.url, error)),
          ),
        ),
      )
    : Database.layerPglite({ dataDir: config.kind === "embedded" ? config.dataDir : undefined }).pipe(
        Layer.catchTag("SqlError", (error) => {
          const holder = IN_USE.exec(error.reason)?.[1]
          return Layer.unwrap<Database, never, never, DataDirBusy | SqlError, never>(
            config.kind === "embedded" && holder !== undefined
              ? Effect.fail(new DataDirBusy({ dataDir: config.dataDir, pid: Number(holder) }))
              : Effect.fail(error),
          )
        }),
      )

/** A printable, secret-free description of the configured database. */
export const describeDatabase = (config: DatabaseConfig): string =>
  config.kind === "embedded"
    ? `embedded database in ${config.dataDir}`
    : config.kind === "memory"
      ? "embedded database in memory"
      : `Postgres at ${redactUrl(config.url)}${config.pooler === "none" ? "" : ` through a ${config.pooler}-mode pooler`}`

/**
 * The database the configuration names, migrated, with the event store on it. `database`
 * replaces the configured one (tests start from a migrated template).
 */
export const storeLayer = (
  config: DatabaseConfig,
  database: Layer.Layer<Database, unknown> = databaseLayer(config),
  options: { readonly maxEventBytes?: number | undefined } = {},
) => {
  const announce = Effect.sync(() => {
    if (config.kind === "memory") {
      console.warn(
        "WARNING: DATABASE_URL=memory:// keeps everything in memory. NOTHING PERSISTS: all data is lost when the process stops.",
      )
    } else if (config.kind === "embedded" && !existsSync(join(config.dataDir, "PG_VERSION"))) {
      console.log(
        `Creating the embedded database in ${config.dataDir} (the first start takes a few seconds)…`,
      )
    }
  })
  const migrated = Layer.effectDiscard(
    migrate().pipe(
      Effect.tap((report) =>
        Effect.sync(() => {
          if (report.converted !== undefined)
            console.log(`Converted the migration ledger: ${report.converted}.`)
          if (report.adopted.length > 0) {
            console.log(
              `Recorded ${report.adopted.length} migration(s) that supabase db push applied: ${report.adopted.join(", ")}`,
            )
          }
          if (report.applied.length > 0) {
            console.log(`Applied ${report.applied.length} migration(s): ${report.applied.join(", ")}`)
          }
        }),
      ),
    ),
  )
  return EventStore.layer({
    listen: config.kind !== "postgres" || config.listen,
    ...(options.maxEventBytes === undefined ? {} : { maxEventBytes: options.maxEventBytes }),
    ...(config.kind === "postgres"
      ? {
          sequencer: {
            ...(config.sequencerPollMs === undefined ? {} : { pollIntervalMs: config.sequencerPollMs }),
            ...(config.sequencerMinPassMs === undefined
              ? {}
              : { minPassIntervalMs: config.sequencerMinPassMs }),
          },
        }
      : {}),
  }).pipe(Layer.provideMerge(migrated), Layer.provideMerge(Layer.unwrap(announce.pipe(Effect.as(database)))))
}

/**
 * Every service the API runs on: the store, the domain, the projections with their daemon
 * (async projections, resumed and registered rebuilds), and the retention sweep.
 */
export const appLayer = (config: ServerConfig, database?: Layer.Layer<Database, unknown>) => {
  const domainConfig = Layer.succeed(DomainConfig, {
    ...defaultDomainConfig,
    maxFileBytes: config.limits.maxFileBytes,
    allowedMimeTypes: config.allowedMimeTypes,
    sessionTtlHours: config.sessionTtlHours,
    largeValueBytes: config.limits.largeValueBytes,
    purgeExpiredAfterDays: config.purgeExpiredAfterDays,
    graphKeepCheckpoints: config.graphKeepCheckpoints,
  })
  const domain = Layer.mergeAll(DomainLayer, Projections.layer).pipe(Layer.provide(domainConfig))
  return Layer.mergeAll(
    retentionSweep(config.sessionTtlHours, config.graphKeepCheckpoints),
    Projections.daemon(),
  ).pipe(
    Layer.provideMerge(domain),
    Layer.provideMerge(
      storeLayer(config.database, database, { maxEventBytes: maxEventBytes(config.limits) }),
    ),
  )
}

/**
 * Expires idle sessions and prunes graph checkpoints at start-up and then every ten minutes
 * (nothing when the TTL is 0 and threads keep every checkpoint).
 */
const retentionSweep = (ttlHours: number, graphKeepCheckpoints: number) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      if (ttlHours <= 0 && graphKeepCheckpoints <= 0) return
      const retention = yield* Retention
      yield* retention.sweep().pipe(
        Effect.tap((report) =>
          Effect.all([
            report.expired > 0
              ? Effect.logInfo("expired idle sessions", { expired: report.expired, ttlHours })
              : Effect.void,
            report.purged > 0
              ? Effect.logInfo("purged expired sessions", { purged: report.purged })
              : Effect.void,
            report.checkpointsPruned > 0
              ? Effect.logInfo("pruned graph checkpoints", {
                  pruned: report.checkpointsPruned,
                  keep: graphKeepCheckpoints,
                })
              : Effect.void,
          ]),
        ),
        Effect.catchCause((cause) => Effect.logWarning("retention sweep failed; will retry", cause)),
        Effect.repeat(Schedule.spaced("10 minutes")),
        Effect.forkScoped,
      )
    }),
  )
