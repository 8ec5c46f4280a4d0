import { randomUUID } from "node:crypto"
import { type Database, EventStore } from "@chronicle/store"
import type {} from "@chronicle/store/vitest-global-setup"
import { Cause, type Effect, Exit, Layer, ManagedRuntime } from "effect"
import { type Actor, userActor } from "../src/actor.ts"
import { DomainConfig, type DomainConfigShape, defaultDomainConfig } from "../src/config.ts"
import type { Content } from "../src/content.ts"
import type { Files } from "../src/files.ts"
import type { Graphs } from "../src/graphs.ts"
import type { Jobs } from "../src/jobs.ts"
import { DomainLayer } from "../src/layer.ts"
import type { Purge } from "../src/purge.ts"
import type { Retention } from "../src/retention.ts"
import type { Sandboxes } from "../src/sandboxes.ts"
import type { Sessions } from "../src/sessions.ts"

export type Services =
  | Sessions
  | Content
  | Files
  | Graphs
  | Jobs
  | Sandboxes
  | Retention
  | Purge
  | Database
  | EventStore

/** A runtime with every domain service over a fresh database. */
export const makeDomainRuntime = (
  database: Layer.Layer<Database, never>,
  config: Partial<DomainConfigShape> = {},
) => {
  return ManagedRuntime.make(
    DomainLayer.pipe(
      Layer.provideMerge(EventStore.layer({ maxBatchSize: 1000 }).pipe(Layer.provideMerge(database))),
      Layer.provide(Layer.succeed(DomainConfig, { ...defaultDomainConfig, ...config })),
    ),
  )
}

export type DomainRuntime = ReturnType<typeof makeDomainRuntime>

export const newUser = (): Actor => userActor(randomUUID())

/** The typed failure of an effect that must fail; a test failure otherwise. */
export const failureOf = async <E>(runtime: DomainRuntime, effect: Effect.Effect<unknown, E, Services>) => {
  const exit = await runtime.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return error.value as E & { readonly _tag: string; readonly message: string }
}
