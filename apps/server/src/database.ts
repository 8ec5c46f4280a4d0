import { existsSync } from "node:fs"
import { join } from "node:path"
import { Database, EventStore, migrate, redactUrl } from "@chronicle/store"
import { Effect, Layer } from "effect"
import type { DatabaseConfig } from "./config.ts"

/** A printable, secret-free description of the configured database. */
export const describeDatabase = (config: DatabaseConfig): string =>
  config.kind === "embedded"
    ? `embedded database in ${config.dataDir}`
    : config.kind === "memory"
      ? "embedded database in memory"
      : `Postgres at ${redactUrl(config.url)}`

/** The database the configuration names, migrated, with the event store on it. */
export const storeLayer = (config: DatabaseConfig) => {
  const database =
    config.kind === "postgres"
      ? Database.layerPostgres({ url: config.url, prepare: config.prepare })
      : Database.layerPglite({ dataDir: config.kind === "embedded" ? config.dataDir : undefined })
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
        report.applied.length > 0
          ? Effect.sync(() =>
              console.log(`Applied ${report.applied.length} migration(s): ${report.applied.join(", ")}`),
            )
          : Effect.void,
      ),
    ),
  )
  return EventStore.layer({ listen: config.kind !== "postgres" || config.listen }).pipe(
    Layer.provideMerge(migrated),
    Layer.provideMerge(Layer.unwrap(announce.pipe(Effect.as(database)))),
  )
}
