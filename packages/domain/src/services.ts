import { Database, EventStore } from "@chronicle/store"
import { Effect, Option } from "effect"
import { CommandCache } from "./command.ts"
import { DomainConfig } from "./config.ts"

/**
 * What a domain service's layer is built with: the database, the event store, the
 * configuration and the command cache, and `provide`, which runs one of its methods' effects
 * with them.
 */
export const layerServices = Effect.gen(function* () {
  const db = yield* Database
  const store = yield* EventStore
  const config = yield* DomainConfig
  // The command path's cache of states, when the layer has one (DomainLayer shares one).
  const cache = yield* Effect.serviceOption(CommandCache)
  const provide = <A, E>(effect: Effect.Effect<A, E, Database | EventStore>) =>
    effect.pipe(
      Effect.provideService(Database, db),
      Effect.provideService(EventStore, store),
      Effect.provideService(DomainConfig, config),
      Option.isSome(cache) ? Effect.provideService(CommandCache, cache.value) : (e) => e,
    )
  return { db, store, config, provide }
})
