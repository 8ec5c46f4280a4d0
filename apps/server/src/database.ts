import { existsSync } from "node:fs"
import { join } from "node:path"
import { maxEventBytes } from "@chronicle/api"
import { DomainConfig, DomainLayer, defaultDomainConfig, Retention } from "@chronicle/domain"
import { Projections } from "@chronicle/projections"
import { Database, EventStore, migrate, redactUrl } from "@chronicle/store"
import { Effect, Layer, Schedule } from "effect"
import type { DatabaseConfig, ServerConfig } from "./config.ts"

const databaseLayer = (config: DatabaseConfig): Layer.Layer<Database, unknown> =>
  config.kind === "postgres"
    ? Database.layerPostgres({
        url: config.url,
        prepare: config.prepare,
        pipeline: config.pooler !== "transaction",
      })
    : Database.layerPglite({ dataDir: config.kind === "embedded" ? config.dataDir : undefined })

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
    ...(config.kind === "postgres" && config.sequencerPollMs !== undefined
      ? { sequencer: { pollIntervalMs: config.sequencerPollMs } }
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
  })
  const domain = Layer.mergeAll(DomainLayer, Projections.layer).pipe(Layer.provide(domainConfig))
  return Layer.mergeAll(retentionSweep(config.sessionTtlHours), Projections.daemon()).pipe(
    Layer.provideMerge(domain),
    Layer.provideMerge(
      storeLayer(config.database, database, { maxEventBytes: maxEventBytes(config.limits) }),
    ),
  )
}

/** Expires idle sessions at start-up and then every ten minutes (nothing when the TTL is 0). */
const retentionSweep = (ttlHours: number) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      if (ttlHours <= 0) return
      const retention = yield* Retention
      yield* retention.sweep().pipe(
        Effect.tap((report) =>
          report.expired > 0
            ? Effect.logInfo("expired idle sessions", { expired: report.expired, ttlHours })
            : Effect.void,
        ),
        Effect.catchCause((cause) => Effect.logWarning("retention sweep failed; will retry", cause)),
        Effect.repeat(Schedule.spaced("10 minutes")),
        Effect.forkScoped,
      )
    }),
  )
