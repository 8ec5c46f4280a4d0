/** What every part of the projection engine shares: the database, the log, this worker. */
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { Database, type DatabaseService, EventStore, type EventStoreService } from "@chronicle/store"
import { Effect, type Scope } from "effect"

/** A run whose worker has not reported for this long is taken over by another process. */
export const STALE_SECONDS = 30
/**
 * A failed rebuild is retried after this many seconds, doubled per failure since the last
 * completed rebuild of the projection, at most RETRY_CAP_SECONDS.
 */
export const RETRY_BASE_SECONDS = 10
export const RETRY_CAP_SECONDS = 600

export const isUuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)

export interface EngineContext {
  readonly db: DatabaseService
  readonly store: EventStoreService
  /** The scope runs started in the background live in (the engine layer's). */
  readonly scope: Scope.Scope
  /** This process, as runs and leases name the worker that holds them. */
  readonly worker: string
  /** Runs this process is executing, so the daemon does not start them twice. */
  readonly active: Set<string>
  /** A statement whose failure is a defect. */
  readonly q: <Row>(text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<Array<Row>>
}

/** The engine's context; on a clean shutdown it hands the async projections' leases back at once. */
export const makeEngineContext = Effect.gen(function* () {
  const db = yield* Database
  const store = yield* EventStore
  const scope = yield* Effect.scope
  const worker = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  const q = <Row>(text: string, params: ReadonlyArray<unknown> = []) =>
    db.query<Row>(text, params).pipe(Effect.orDie)

  yield* Effect.addFinalizer(() =>
    db
      .query(
        "update chronicle.projections set lease_owner = null, lease_expires_at = null where lease_owner = $1",
        [worker],
      )
      .pipe(Effect.ignore),
  )

  return { db, store, scope, worker, active: new Set<string>(), q } satisfies EngineContext
})
