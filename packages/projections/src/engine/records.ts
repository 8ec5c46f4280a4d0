/** The runs' records (`chronicle.projection_runs`): reading, registering, checking them. */
import { InvalidTransition, NotFound } from "@chronicle/events"
import { Effect } from "effect"
import { type EngineContext, isUuid } from "./context.ts"
import type { AsOf, Run, RunState } from "./types.ts"

/** What a rebuild from a snapshot starts with: the snapshot's run, its bound (a seq), its events. */
export interface SnapshotSeed {
  readonly runId: string
  readonly bound: string
  readonly events: number
}

export interface RunRow {
  id: string
  kind: "rebuild" | "snapshot"
  projections: Array<string>
  label: string | null
  target_schema: string
  as_of: AsOf | null
  as_of_cursor: string | null
  from_snapshot: string | null
  events_seeded: string
  versions: Record<string, number> | null
  state: RunState
  phase: string
  events_done: string
  events_total: string
  swap_attempts: number
  worker: string | null
  started_at: string
  finished_at: string | null
  error: string | null
  elapsed: number
}

/** A run's columns; the table is aliased `r`. */
export const RUN_COLUMNS = `r.id::text, r.kind, r.projections, r.label, r.target_schema, r.as_of,
  r.bound_seq::text as as_of_cursor,
  (select s.label from chronicle.projection_runs s where s.id = r.source_run) as from_snapshot,
  r.events_seeded::text, r.versions, r.state, r.phase, r.events_done::text, r.events_total::text,
  r.swap_attempts, r.worker,
  to_char(r.started_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as started_at,
  to_char(r.finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as finished_at,
  r.error, extract(epoch from (coalesce(r.finished_at, now()) - r.started_at))::float8 as elapsed`

export const toRun = (row: RunRow): Run => {
  const done = Number(row.events_done)
  const seeded = Number(row.events_seeded)
  const total = Math.max(Number(row.events_total), done)
  // The rate counts what this run applied: a seed copied from a snapshot is not replayed.
  const rate = row.elapsed > 0 ? (done - seeded) / row.elapsed : 0
  return {
    id: row.id,
    kind: row.kind,
    projections: row.projections,
    label: row.label,
    schema: row.target_schema,
    asOf: row.as_of,
    asOfCursor: row.as_of_cursor,
    fromSnapshot: row.from_snapshot,
    eventsSeeded: seeded,
    state: row.state,
    phase: row.phase,
    eventsDone: done,
    eventsTotal: total,
    eventsPerSecond: Math.round(rate),
    etaSeconds: row.state === "running" && rate > 0 ? Math.max(0, Math.round((total - done) / rate)) : null,
    swapAttempts: row.swap_attempts,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error,
  }
}

export const makeRunRecords = ({ q, worker }: EngineContext) => {
  /** The named projections, each known; or every one. */
  const resolveNames = Effect.fn("Projections.resolveNames")(function* (
    names: ReadonlyArray<string> | undefined,
  ) {
    const known = (yield* q<{ name: string }>("select name from chronicle.projections order by name")).map(
      (r) => r.name,
    )
    if (names === undefined || names.length === 0) return known
    const unknown = names.find((n) => !known.includes(n))
    if (unknown !== undefined)
      return yield* new NotFound({ entity: "projection", id: `${unknown} (known: ${known.join(", ")})` })
    return [...new Set(names)]
  })

  const getRun = Effect.fn("Projections.run")(function* (runId: string) {
    if (!isUuid(runId)) return yield* new NotFound({ entity: "projection run", id: runId })
    const [row] = yield* q<RunRow>(`select ${RUN_COLUMNS} from chronicle.projection_runs r where r.id = $1`, [
      runId,
    ])
    if (row === undefined) return yield* new NotFound({ entity: "projection run", id: runId })
    return toRun(row)
  })

  /** Refuses a run over a projection another unfinished run is building. */
  const ensureFree = Effect.fn("Projections.ensureFree")(function* (
    kind: "rebuild" | "snapshot",
    names: ReadonlyArray<string>,
  ) {
    if (kind === "snapshot") return
    const [busy] = yield* q<{ id: string; projections: Array<string> }>(
      `select id::text, projections from chronicle.projection_runs
        where kind = 'rebuild' and state in ('running', 'cancelling') and projections && $1::text[]
        limit 1`,
      [names],
    )
    if (busy !== undefined)
      return yield* new InvalidTransition({
        entity: "projection",
        id: names.filter((n) => busy.projections.includes(n)).join(", "),
        state: "rebuilding",
        action: "rebuild",
        reason: `run ${busy.id} is already rebuilding it`,
      })
  })

  /** How many events a run has to apply: those up to `bound` (seqs are dense), or all committed. */
  const countEvents = (bound: string | null) =>
    q<{ n: string }>(
      bound === null ? "select count(*)::text as n from chronicle.events" : "select $1::bigint::text as n",
      bound === null ? [] : [bound],
    ).pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)))

  const insertRun = (run: {
    id: string
    kind: "rebuild" | "snapshot"
    names: ReadonlyArray<string>
    label: string | null
    schema: string
    asOf: AsOf | null
    bound: string | null
    total: number
    seed: SnapshotSeed | null
  }) =>
    q(
      // A snapshot records the versions it is built with; a seeded rebuild starts at its
      // seed's bound, with the seed's events done. The run is born claimed by this worker
      // (claim 1): no other daemon can take it before this process executes it, only once
      // this process stops reporting. The as-of selector goes in as JSON text (`::text::jsonb`):
      // a string bound to a jsonb parameter would be stored as a JSON string.
      `insert into chronicle.projection_runs
         (id, kind, projections, label, target_schema, as_of, bound_seq, state, events_total,
          versions, source_run, cursor_seq, events_done, events_seeded, worker, generation, heartbeat_at)
       values ($1, $2, $3::text[], $4, $5, $6::text::jsonb, $7::bigint, 'running', $8,
               case when $2 = 'snapshot'
                    then (select jsonb_object_agg(p.name, p.version) from chronicle.projections p
                           where p.name = any ($3::text[])) end,
               $9::uuid, $10::bigint, $11, $11, $12, 1, now())`,
      [
        run.id,
        run.kind,
        run.names,
        run.label,
        run.schema,
        run.asOf === null ? null : JSON.stringify(run.asOf),
        run.bound,
        run.total,
        run.seed?.runId ?? null,
        run.seed?.bound ?? null,
        run.seed?.events ?? 0,
        worker,
      ],
    )

  return { resolveNames, getRun, ensureFree, countEvents, insertRun }
}

export type RunRecords = ReturnType<typeof makeRunRecords>
