import { Database, EventStore } from "@chronicle/store"
import { Effect } from "effect"
import { DomainConfig } from "./config.ts"

/**
 * What a domain service's layer is built with: the database, the event store and the
 * configuration, and `provide`, which runs one of its methods' effects with them.
 */
export const layerServices = Effect.gen(function* () {
  const db = yield* Database
  const store = yield* EventStore
  const config = yield* DomainConfig
  const provide = <A, E>(effect: Effect.Effect<A, E, Database | EventStore>) =>
    effect.pipe(
      Effect.provideService(Database, db),
      Effect.provideService(EventStore, store),
      Effect.provideService(DomainConfig, config),
    )
  return { db, store, config, provide }
})
