/**
 * Rebuild and snapshot runs: registering a rebuild, executing a run in batches to its swap or
 * its end (fenced by the claim's generation), cancelling, listing.
 */
import { randomUUID } from "node:crypto"
import { InvalidTransition } from "@chronicle/events"
import { Effect } from "effect"
import { type EngineContext, STALE_SECONDS } from "./context.ts"
import { RUN_COLUMNS, type RunRecords, type RunRow, toRun } from "./records.ts"
import type { Snapshots } from "./snapshots.ts"
import type { ExecuteOptions, Run } from "./types.ts"

/** The swap's back-off after finding a table in use: full jitter, doubling from the base to the cap. */
const SWAP_BACKOFF_BASE_MS = 50
const SWAP_BACKOFF_CAP_MS = 2_000
/**
 * How long the swap waits for a table's readers: not at all (NOWAIT) for its first attempts;
 * after SWAP_PATIENT_AFTER of them (reads that never leave a table free), up to
 * SWAP_TABLE_WAIT_MS, which appends may then queue behind, once per attempt.
 */
const SWAP_PATIENT_AFTER = 20
const SWAP_TABLE_WAIT_MS = 50
export const swapTableWaitMs = (attempt: number, patientAfter = SWAP_PATIENT_AFTER) =>
  attempt >= patientAfter ? SWAP_TABLE_WAIT_MS : 0
export const swapBackoffMs = (attempt: number, random: () => number = Math.random) => {
  const ceiling = Math.min(SWAP_BACKOFF_CAP_MS, SWAP_BACKOFF_BASE_MS * 2 ** Math.max(0, attempt))
  return Math.round(ceiling / 2 + random() * (ceiling / 2))
}

export const makeRuns = (
  { db, q, worker, active, scope }: EngineContext,
  records: RunRecords,
  { seedOf }: Snapshots,
) => {
  const { resolveNames, getRun, ensureFree, countEvents, insertRun } = records

  const startRebuild = Effect.fn("Projections.startRebuild")(function* (
    options: { readonly projections?: ReadonlyArray<string>; readonly fromSnapshot?: string } = {},
  ) {
    const names = yield* resolveNames(options.projections)
    const id = randomUUID()
    yield* db
      .transaction(
        Effect.gen(function* () {
          // One registrar at a time, so two callers cannot both pass the checks below (nor
          // a snapshot be dropped between them and the insert).
          yield* q("select pg_advisory_xact_lock(hashtext('chronicle.projection_runs'))")
          yield* ensureFree("rebuild", names)
          const seed = options.fromSnapshot === undefined ? null : yield* seedOf(options.fromSnapshot, names)
          yield* insertRun({
            id,
            kind: "rebuild",
            names,
            label: null,
            schema: `chronicle_build_${id.replaceAll("-", "").slice(0, 16)}`,
            asOf: null,
            bound: null,
            total: yield* countEvents(null),
            seed,
          })
          yield* q(
            `update chronicle.projections
                set state = case when built_version is null then 'backfilling' else 'rebuilding' end,
                    updated_at = now()
              where name = any ($1::text[])`,
            [names],
          )
        }),
      )
      .pipe(Effect.catchTag("SqlError", Effect.die))
    return yield* getRun(id)
  })

  /**
   * Takes the run for this worker unless another live worker holds it, and returns the
   * claim's fencing token (null when not taken): every later write of the run names it, so
   * once another worker claims the run, this one can change nothing.
   */
  const claim = (runId: string) =>
    q<{ generation: string }>(
      `update chronicle.projection_runs
          set worker = $2, generation = generation + 1, heartbeat_at = now(), updated_at = now()
        where id = $1 and state in ('running', 'cancelling')
          and (worker is null or worker = $2 or heartbeat_at < now() - make_interval(secs => $3))
        returning generation::text`,
      [runId, worker, STALE_SECONDS],
    ).pipe(Effect.map((rows) => rows[0]?.generation ?? null))

  /** Ends a cancelled run: its schema goes, the projections keep their live tables. */
  const finishCancel = (runId: string, generation: string) =>
    db
      .transaction(
        Effect.gen(function* () {
          const [row] = yield* q<{ target_schema: string; kind: string; projections: Array<string> }>(
            `update chronicle.projection_runs
                set state = 'cancelled', phase = 'cancelled', finished_at = now(), updated_at = now()
              where id = $1 and state in ('running', 'cancelling') and worker = $2 and generation = $3::bigint
              returning target_schema, kind, projections`,
            [runId, worker, generation],
          )
          if (row === undefined) return
          yield* q("select chronicle.drop_projection_schema($1)", [runId])
          if (row.kind === "rebuild")
            yield* q(
              `update chronicle.projections
                  set state = case when built_version is null then 'backfilling'
                                   when built_version < version then 'rebuilding' else 'live' end,
                      updated_at = now()
                where name = any ($1::text[])`,
              [row.projections],
            )
        }),
      )
      .pipe(Effect.orDie)

  /**
   * Records a run's failure (fenced: nothing happens when this worker no longer holds it):
   * the run ends failed with the error, its schema is dropped, a rebuild's projections say
   * why and keep serving their live tables.
   */
  const recordFailure = (runId: string, generation: string, message: string) =>
    q<{ recorded: boolean }>("select chronicle.fail_projection_run($1, $2, $3::bigint, $4) as recorded", [
      runId,
      worker,
      generation,
      message,
    ]).pipe(
      Effect.tap((rows) =>
        rows[0]?.recorded === true
          ? Effect.logWarning("projection run failed", { runId, error: message })
          : Effect.void,
      ),
    )

  const execute = Effect.fn("Projections.execute")(function* (runId: string, options: ExecuteOptions = {}) {
    const batchSize = options.batchSize ?? 10_000
    const lockTimeoutMs = Math.max(1, Math.round(options.swapLockTimeoutMs ?? 100))
    const report = (run: Run) =>
      Effect.promise(() => Promise.resolve(options.onProgress?.(run))).pipe(Effect.asVoid)
    let run = yield* getRun(runId)
    if (run.state !== "running" && run.state !== "cancelling") return run
    const generation = yield* claim(runId)
    if (generation === null) return run
    active.add(runId)
    // Every write below names this worker and its claim: the run's own functions check
    // them in SQL, and the engine's updates carry them in their WHERE clauses.
    const fenced = "id = $1 and worker = $2 and generation = $3::bigint"
    const work = Effect.gen(function* () {
      if (run.state === "cancelling") {
        yield* finishCancel(runId, generation)
        return yield* getRun(runId)
      }
      yield* db.query("select chronicle.prepare_projection_build($1, $2, $3::bigint)", [
        runId,
        worker,
        generation,
      ])
      let batches = 0
      let swapAttempts = 0
      // The run's tables fill without their secondary indexes; they are built once, when the
      // run first catches up (again by a worker that resumes it: only the missing ones).
      let indexed = false
      while (true) {
        const [step] = yield* db.query<{ applied: number; caught_up: boolean; state: string }>(
          "select * from chronicle.projection_build_batch($1, $2, $3::bigint, $4)",
          [runId, worker, generation, batchSize],
        )
        batches++
        // Another worker claimed the run (this one was paused past the takeover window):
        // it is theirs now; leave it as it is.
        if (step === undefined || step.state === "taken") break
        if (step.state === "cancelling") {
          yield* finishCancel(runId, generation)
          break
        }
        if (step.state !== "running") break
        if (run.kind === "rebuild" && batches % 20 === 0) {
          // The head moves while we build: re-estimate what is left.
          yield* q(
            `update chronicle.projection_runs r
                set events_total = r.events_done
                      + greatest(0, (select last_seq from chronicle.sequencer) - coalesce(r.cursor_seq, 0))
              where ${fenced}`,
            [runId, worker, generation],
          )
        }
        run = yield* getRun(runId)
        yield* report(run)
        if (!step.caught_up) continue
        if (!indexed) {
          yield* q(
            `update chronicle.projection_runs set phase = 'indexing', updated_at = now() where ${fenced}`,
            [runId, worker, generation],
          )
          yield* db.query("select chronicle.build_projection_indexes($1, $2, $3::bigint)", [
            runId,
            worker,
            generation,
          ])
          indexed = true
          run = yield* getRun(runId)
          yield* report(run)
          // Events appended while the indexes were built are applied before the run ends.
          continue
        }
        if (run.kind === "snapshot") {
          yield* db.query("select chronicle.finish_projection_snapshot($1, $2, $3::bigint)", [
            runId,
            worker,
            generation,
          ])
          break
        }
        yield* q(
          `update chronicle.projection_runs set phase = 'swapping', updated_at = now() where ${fenced}`,
          [runId, worker, generation],
        )
        // The swap never waits for a reader (a table in use fails it at once, 55P03; a
        // deadlock with an append, 40P01, likewise): it goes back to catching up, backs off
        // with jitter, and tries again.
        const swapped = yield* db
          .query("select chronicle.finish_projection_rebuild($1, $2, $3::bigint, $4, $5)", [
            runId,
            worker,
            generation,
            lockTimeoutMs,
            swapTableWaitMs(swapAttempts, options.swapPatientAfter),
          ])
          .pipe(
            Effect.as(true),
            Effect.catchTag("SqlError", (error) =>
              error.code === "55P03" || error.code === "40P01"
                ? q(
                    `update chronicle.projection_runs
                        set phase = 'catching-up', swap_attempts = swap_attempts + 1, updated_at = now()
                      where ${fenced}`,
                    [runId, worker, generation],
                  ).pipe(Effect.andThen(Effect.sleep(swapBackoffMs(swapAttempts++))), Effect.as(false))
                : Effect.fail(error),
            ),
          )
        if (swapped) {
          yield* q("analyze chronicle.events").pipe(Effect.ignore)
          break
        }
      }
      run = yield* getRun(runId)
      yield* report(run)
      return run
    })
    return yield* work.pipe(
      // A failing build (a handler's error, a swap that cannot be done) ends the run failed
      // with its error, unless another worker holds it by now; either way the caller gets
      // the run as it stands.
      Effect.catchTag("SqlError", (error) =>
        recordFailure(runId, generation, error.message).pipe(Effect.andThen(getRun(runId))),
      ),
      Effect.ensuring(Effect.sync(() => active.delete(runId))),
    )
  })

  const launch = (runId: string) =>
    execute(runId).pipe(
      Effect.catchCause((cause) => Effect.logWarning("projection run failed", { runId }, cause)),
      Effect.forkIn(scope),
      Effect.asVoid,
    )

  const cancel = Effect.fn("Projections.cancel")(function* (runId: string) {
    const run = yield* getRun(runId)
    if (run.state !== "running" && run.state !== "cancelling")
      return yield* new InvalidTransition({
        entity: "projection run",
        id: runId,
        state: run.state,
        action: "cancel",
        reason: "only a running run can be cancelled",
      })
    yield* q("update chronicle.projection_runs set state = 'cancelling', updated_at = now() where id = $1", [
      runId,
    ])
    // Nobody is working on it (the process that was died): end it here.
    if (!active.has(runId)) {
      const generation = yield* claim(runId)
      if (generation !== null) yield* finishCancel(runId, generation)
    }
    return yield* getRun(runId)
  })

  const runs = Effect.fn("Projections.runs")(function* (limit = 50) {
    const rows = yield* q<RunRow>(
      `select ${RUN_COLUMNS} from chronicle.projection_runs r order by r.started_at desc limit $1`,
      [Math.max(1, Math.min(limit, 500))],
    )
    return rows.map(toRun)
  })

  return { startRebuild, execute, launch, cancel, runs }
}

export type Runs = ReturnType<typeof makeRuns>
