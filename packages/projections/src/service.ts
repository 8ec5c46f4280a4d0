/**
 * The projection engine: the registry's state, rebuilds without downtime, point-in-time
 * snapshots, and the daemon that follows the log for async projections. The heavy lifting is
 * SQL (supabase/schemas/02_projection_engine.sql); this module drives it in
 * batches, reports progress, and decides what to run.
 */
import { Context, type Duration, Effect, Layer, Schedule } from "effect"
import { makeEngineContext } from "./engine/context.ts"
import { makeTick } from "./engine/daemon.ts"
import { makeRunRecords } from "./engine/records.ts"
import { makeRuns } from "./engine/runs.ts"
import { makeSnapshots } from "./engine/snapshots.ts"
import { makeStatus } from "./engine/status.ts"
import type { ProjectionsService } from "./engine/types.ts"

export { swapBackoffMs, swapTableWaitMs } from "./engine/runs.ts"
export * from "./engine/types.ts"

/**
 * The projection engine. Its layer needs the database and the event store. Its parts, by
 * concern (engine/): the registry's status, the runs' records, rebuild runs, snapshots, the
 * daemon's step; they share one context (the database, the log, this worker).
 */
export class Projections extends Context.Service<Projections, ProjectionsService>()(
  "@chronicle/projections/Projections",
) {
  static readonly layer = Layer.effect(
    Projections,
    Effect.gen(function* () {
      const context = yield* makeEngineContext
      const records = makeRunRecords(context)
      const snapshots = makeSnapshots(context, records)
      const runs = makeRuns(context, records, snapshots)
      return Projections.of({
        status: makeStatus(context),
        startRebuild: runs.startRebuild,
        startSnapshot: snapshots.startSnapshot,
        execute: runs.execute,
        launch: runs.launch,
        cancel: runs.cancel,
        run: records.getRun,
        runs: runs.runs,
        snapshots: snapshots.snapshots,
        dropSnapshot: snapshots.dropSnapshot,
        tick: makeTick(context, runs),
      })
    }),
  )

  /**
   * The daemon: follows the log for async projections, resumes runs whose worker died and
   * starts the builds registered versions need. Runs until its scope closes.
   */
  static readonly daemon = (options: { readonly interval?: Duration.Input } = {}) =>
    Layer.effectDiscard(
      Effect.gen(function* () {
        const projections = yield* Projections
        yield* projections.tick().pipe(
          Effect.catchCause((cause) => Effect.logWarning("projection daemon step failed; will retry", cause)),
          Effect.repeat(Schedule.spaced(options.interval ?? "500 millis")),
          Effect.forkScoped,
        )
      }),
    )
}
