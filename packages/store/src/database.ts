import { Context, Effect, Exit, Layer, Queue, Stream } from "effect"
import type { Connection, Driver } from "./driver.ts"
import { SqlError } from "./errors.ts"
import { makePgliteDriver, type PgliteDriverOptions } from "./pglite-driver.ts"
import { makePostgresDriver, type PostgresDriverOptions } from "./postgres-driver.ts"

/** The connection of the transaction the current fiber runs in, if any. */
export const CurrentTransaction = Context.Reference<Connection | undefined>(
  "@chronicle/store/CurrentTransaction",
  { defaultValue: () => undefined },
)

/** What the ambient transaction runs once it has committed (see `afterCommit`). */
const CommitHooks = Context.Reference<Array<Effect.Effect<void>> | undefined>(
  "@chronicle/store/CommitHooks",
  {
    defaultValue: () => undefined,
  },
)

const toSqlError = (cause: unknown): SqlError => {
  const e = cause as { code?: unknown; message?: unknown; detail?: unknown }
  return new SqlError({
    ...(typeof e?.code === "string" ? { code: e.code } : {}),
    reason: typeof e?.message === "string" ? e.message : String(cause),
    ...(typeof e?.detail === "string" ? { detail: e.detail } : {}),
  })
}

export interface DatabaseService {
  readonly kind: Driver["kind"]
  readonly description: string
  /** One statement, in the ambient transaction when there is one. */
  readonly query: <Row = Record<string, unknown>>(
    text: string,
    params?: ReadonlyArray<unknown>,
  ) => Effect.Effect<Array<Row>, SqlError>
  /**
   * Runs `effect` in a transaction, which every `query` inside it joins. Commits when the
   * effect succeeds, rolls back when it fails or is interrupted. Nested calls join the
   * outer transaction.
   */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /** A script of several statements with no parameters, in the ambient transaction if any. */
  readonly exec: (script: string) => Effect.Effect<void, SqlError>
  /** Payloads of NOTIFY on `channel`, from the moment the stream is listening. */
  readonly notifications: (channel: string) => Stream.Stream<string, SqlError>
  /**
   * Runs `effect` once the ambient transaction has committed (never if it rolls back), or at
   * once outside a transaction: what must only happen after the data is there for others.
   */
  readonly afterCommit: (effect: Effect.Effect<void>) => Effect.Effect<void>
}

/** The database, whichever driver backs it. Opened and closed with its layer's scope. */
export class Database extends Context.Service<Database, DatabaseService>()("@chronicle/store/Database") {
  /** Wraps a driver; the driver is closed when the layer's scope closes. */
  static readonly fromDriver = <E>(acquire: Effect.Effect<Driver, E>): Layer.Layer<Database, E> =>
    Layer.effect(
      Database,
      Effect.gen(function* () {
        const driver = yield* Effect.acquireRelease(acquire, (d) => Effect.promise(() => d.close()))
        return makeDatabase(driver)
      }),
    )

  static readonly layerPostgres = (options: PostgresDriverOptions): Layer.Layer<Database, SqlError> =>
    Database.fromDriver(
      Effect.gen(function* () {
        const driver = makePostgresDriver(options)
        // Fail at start-up, with the reason, rather than at the first request.
        yield* Effect.tryPromise({ try: () => driver.query("select 1"), catch: toSqlError }).pipe(
          Effect.tapError(() => Effect.promise(() => driver.close())),
        )
        return driver
      }),
    )

  static readonly layerPglite = (options: PgliteDriverOptions): Layer.Layer<Database, SqlError> =>
    Database.fromDriver(Effect.tryPromise({ try: () => makePgliteDriver(options), catch: toSqlError }))
}

export const makeDatabase = (driver: Driver): DatabaseService => {
  const query = <Row>(text: string, params: ReadonlyArray<unknown> = []) =>
    Effect.flatMap(CurrentTransaction, (tx) =>
      Effect.tryPromise({ try: () => (tx ?? driver).query<Row>(text, params), catch: toSqlError }),
    )

  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.gen(function* () {
      if ((yield* CurrentTransaction) !== undefined) return yield* effect
      const context = yield* Effect.context<R>()
      let outcome: Exit.Exit<A, E> | undefined
      const rolledBack = Symbol("rolled back")
      const hooks: Array<Effect.Effect<void>> = []
      yield* Effect.tryPromise({
        try: (signal) =>
          driver.transaction(async (tx) => {
            outcome = await Effect.runPromiseExit(
              effect.pipe(
                Effect.provideContext(context),
                Effect.provideService(CurrentTransaction, tx),
                Effect.provideService(CommitHooks, hooks),
              ),
              { signal },
            )
            // Throwing makes the driver roll back; the outcome is re-raised below.
            if (Exit.isFailure(outcome)) throw rolledBack
          }),
        catch: (cause) => (cause === rolledBack ? undefined : toSqlError(cause)),
      }).pipe(Effect.catch((error) => (error === undefined ? Effect.void : Effect.fail(error))))
      if (outcome === undefined) return yield* Effect.die(new Error("transaction ended without an outcome"))
      if (Exit.isSuccess(outcome)) for (const hook of hooks) yield* hook
      return yield* outcome
    })

  const exec = (script: string) =>
    Effect.flatMap(CurrentTransaction, (tx) =>
      Effect.tryPromise({ try: () => (tx ?? driver).exec(script), catch: toSqlError }),
    )

  const notifications = (channel: string) =>
    Stream.callback<string, SqlError>((queue) =>
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () => driver.listen(channel, (payload) => Queue.offerUnsafe(queue, payload)),
          catch: toSqlError,
        }),
        (stop) => Effect.promise(() => stop().catch(() => undefined)),
      ),
    )

  const afterCommit = (effect: Effect.Effect<void>) =>
    Effect.flatMap(CommitHooks, (hooks) =>
      hooks === undefined ? effect : Effect.sync(() => void hooks.push(effect)),
    )

  return {
    kind: driver.kind,
    description: driver.description,
    query,
    transaction,
    exec,
    notifications,
    afterCommit,
  }
}
