/**
 * One step of the daemon: follows the log for async projections (under a lease), resumes runs
 * whose worker died, starts the rebuilds registered versions need.
 */
import { Effect } from "effect"
import { type EngineContext, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS, STALE_SECONDS } from "./context.ts"
import type { Runs } from "./runs.ts"

const LEASE_SECONDS = 15
const ASYNC_BATCH = 2_000

export const makeTick = ({ db, q, worker, active }: EngineContext, { startRebuild, launch }: Runs) => {
  const tick = Effect.fn("Projections.tick")(function* () {
    let applied = 0
    const asyncNames = yield* q<{ name: string }>(
      "select name from chronicle.projections where mode = 'async' and built_version is not null order by name",
    )
    for (const { name } of asyncNames) {
      for (let i = 0; i < 50; i++) {
        const result = yield* db
          .query<{ applied: number; held: boolean; caught_up: boolean }>(
            "select * from chronicle.projection_async_batch($1, $2, $3, $4)",
            [name, worker, ASYNC_BATCH, LEASE_SECONDS],
          )
          .pipe(
            Effect.map((rows) => rows[0]),
            Effect.catchTag("SqlError", (error) =>
              q(
                // Only while this worker holds the lease: one that lost it reports nothing.
                `update chronicle.projections set state = 'failed', last_error = $2, updated_at = now()
                  where name = $1 and lease_owner = $3`,
                [name, error.message, worker],
              ).pipe(
                Effect.andThen(
                  Effect.logWarning("async projection failed; will retry", {
                    projection: name,
                    error: error.message,
                  }),
                ),
                Effect.as(undefined),
              ),
            ),
          )
        if (result === undefined || !result.held) break
        applied += result.applied
        if (result.caught_up) break
      }
    }
    // Runs whose worker died, and the builds that registered versions need (a projection
    // whose last rebuild failed waits for its back-off: projection_retry_at).
    const orphans = yield* q<{ id: string }>(
      `select id::text from chronicle.projection_runs
        where state in ('running', 'cancelling')
          and (worker is null or heartbeat_at < now() - make_interval(secs => $1))
        order by started_at`,
      [STALE_SECONDS],
    )
    for (const { id } of orphans) if (!active.has(id)) yield* launch(id)
    const needed = yield* q<{ name: string }>(
      `select p.name from chronicle.projections p
        where p.built_version is distinct from p.version
          and not exists (select 1 from chronicle.projection_runs r
                           where r.kind = 'rebuild' and r.state in ('running', 'cancelling') and p.name = any (r.projections))
          and coalesce((select r.state from chronicle.projection_runs r
                         where r.kind = 'rebuild' and p.name = any (r.projections)
                         order by r.started_at desc limit 1), '') <> 'cancelled'
          and coalesce(chronicle.projection_retry_at(p.name, $1, $2), '-infinity') <= now()
        order by p.name`,
      [RETRY_BASE_SECONDS, RETRY_CAP_SECONDS],
    )
    if (needed.length > 0) {
      const run = yield* startRebuild({ projections: needed.map((n) => n.name) }).pipe(
        Effect.catch(() => Effect.succeed(undefined)),
      )
      if (run !== undefined) {
        yield* Effect.logInfo("rebuilding projections whose registered version is not built", {
          projections: run.projections,
          runId: run.id,
        })
        yield* launch(run.id)
      }
    }
    return applied
  })
  return tick
}
