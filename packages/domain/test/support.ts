import { randomUUID } from "node:crypto"
import { type Database, EventStore } from "@chronicle/store"
import type { TestDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { Cause, type Context, Effect, Exit, Layer, ManagedRuntime } from "effect"
import { afterAll, beforeAll, inject } from "vitest"
import { type Actor, userActor } from "../src/actor.ts"
import { DomainConfig, type DomainConfigShape, defaultDomainConfig } from "../src/config.ts"
import { Content } from "../src/content.ts"
import { Files } from "../src/files.ts"
import { Graphs } from "../src/graphs.ts"
import { Jobs } from "../src/jobs.ts"
import { DomainLayer } from "../src/layer.ts"
import { Purge } from "../src/purge.ts"
import { Retention } from "../src/retention.ts"
import { Sandboxes } from "../src/sandboxes.ts"
import { Sessions } from "../src/sessions.ts"

export const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

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

/**
 * A domain runtime over a fresh `database` for the enclosing `describe` block: made (its
 * database migrated) before the tests, disposed after them. `runtime`, `run`, `use` and the
 * services' shortcuts (`sessions((s) => s.get(actor, id))`) are for use inside tests.
 */
export const domainRuntimeFor = (database: TestDatabase, config: Partial<DomainConfigShape> = {}) => {
  let made: DomainRuntime | undefined
  beforeAll(async () => {
    made = makeDomainRuntime(database.layer(), config)
    await made.runPromise(Effect.void)
  })
  afterAll(() => made?.dispose())
  const runtime = () => {
    if (made === undefined) throw new Error("the domain runtime is not made yet: use it inside a test")
    return made
  }
  const run = <A, E>(effect: Effect.Effect<A, E, Services>) => runtime().runPromise(effect)
  /** Runs `f` with the service `tag` names: `use(Sessions)((s) => s.get(actor, id))`. */
  const use =
    <I extends Services, S>(tag: Context.Key<I, S>) =>
    <A, E>(f: (s: S) => Effect.Effect<A, E>) =>
      run(Effect.flatMap(tag, f))
  return {
    get runtime() {
      return runtime()
    },
    run,
    use,
    sessions: use(Sessions),
    content: use(Content),
    files: use(Files),
    graphs: use(Graphs),
    jobs: use(Jobs),
    sandboxes: use(Sandboxes),
    retention: use(Retention),
    purge: use(Purge),
  }
}

export const newUser = (): Actor => userActor(randomUUID())

/** The typed failure of an effect that must fail; a test failure otherwise. */
export const failureOf = async <E>(runtime: DomainRuntime, effect: Effect.Effect<unknown, E, Services>) => {
  const exit = await runtime.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return error.value as E & { readonly _tag: string; readonly message: string }
}
