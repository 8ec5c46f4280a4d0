/**
 * The projection engine: the registry's state, rebuilds without downtime, point-in-time
 * snapshots, and the daemon that follows the log for async projections. The heavy lifting is
 * SQL (supabase/schemas/02_projection_engine.sql); this module drives it in
 * batches, reports progress, and decides what to run.
 */
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { InvalidCommand, InvalidTransition, NotFound } from "@chronicle/events"
import {
  Database,
  decodeCursor,
  EventStore,
  type Head,
  type InvalidCursor,
  type SqlError,
} from "@chronicle/store"
import { Context, type Duration, Effect, Layer, Schedule } from "effect"

export type ProjectionMode = "inline" | "async"
export type ProjectionState = "live" | "backfilling" | "rebuilding" | "failed"

export interface ProjectionInfo {
  readonly name: string
  readonly version: number
  /** The version the live tables were built with; null until the first build. */
  readonly builtVersion: number | null
  readonly mode: ProjectionMode
  readonly state: ProjectionState
  readonly description: string | null
  /**
   * Each table's rows: counted exactly, or — for a table the planner's statistics put at
   * 100,000 rows or more — read from those statistics (`estimated`), so status stays cheap.
   */
  readonly tables: ReadonlyArray<{
    readonly name: string
    readonly rows: number
    readonly estimated: boolean
  }>
  /** Async: the cursor of the last applied event. Inline projections are always at the head. */
  readonly cursor: string | null
  /** Events committed but not yet applied (0 for inline projections). */
  readonly lagEvents: number
  /** Age of the oldest unapplied event, in seconds (0 when caught up). */
  readonly lagSeconds: number
  /** Async: the rate of the last batch applied. */
  readonly eventsPerSecond: number | null
  /** Why it is failing (a daemon batch, or its last rebuild); null when it is not. */
  readonly lastError: string | null
  /**
   * Its last rebuild failed: when the daemon starts the next attempt (ISO-8601). The back-off
   * doubles with every failure since the last completed rebuild, up to a cap. Meanwhile its
   * last good tables keep serving.
   */
  readonly retryAt: string | null
}

export interface ProjectionStatus {
  /** The head of the log: the newest cursor every reader can see. */
  readonly head: Head
  readonly projections: ReadonlyArray<ProjectionInfo>
}

export type AsOf =
  | { readonly cursor: string }
  | { readonly checkpointId: string }
  | { readonly timestamp: string }

export type RunState = "running" | "cancelling" | "completed" | "failed" | "cancelled" | "dropped"

export interface Run {
  readonly id: string
  readonly kind: "rebuild" | "snapshot"
  readonly projections: ReadonlyArray<string>
  readonly label: string | null
  readonly schema: string
  readonly asOf: AsOf | null
  /** The last event a snapshot includes (null for a rebuild, which follows the head). */
  readonly asOfCursor: string | null
  /** A rebuild seeded from a snapshot: its label (null for one from the start of the log). */
  readonly fromSnapshot: string | null
  /** Events the seed snapshot already held; counted in `eventsDone`, not in the rate. */
  readonly eventsSeeded: number
  readonly state: RunState
  /** preparing → copying → catching-up → swapping → done. */
  readonly phase: string
  readonly eventsDone: number
  readonly eventsTotal: number
  readonly eventsPerSecond: number
  readonly etaSeconds: number | null
  /** A rebuild: how often the swap found one of its tables in use, and backed off. */
  readonly swapAttempts: number
  readonly startedAt: string
  readonly finishedAt: string | null
  readonly error: string | null
}

export interface Snapshot {
  readonly label: string
  readonly schema: string
  readonly projections: ReadonlyArray<string>
  readonly asOf: AsOf | null
  readonly asOfCursor: string | null
  readonly events: number
  /** The version of each projection it was built with (null: made before they were recorded). */
  readonly versions: { readonly [projection: string]: number } | null
  readonly createdAt: string
}

export interface ExecuteOptions {
  /** Events per batch transaction (default 10,000). */
  readonly batchSize?: number
  /** Called after every batch and at the end; a promise it returns is awaited before going on. */
  readonly onProgress?: (run: Run) => unknown
  /**
   * The swap's wait for the log's lock (the appends in flight), in milliseconds (default 100).
   * Appends queue behind the swap for at most this long per attempt.
   */
  readonly swapLockTimeoutMs?: number
  /**
   * Attempts at which the swap takes the tables with NOWAIT before it waits up to 50 ms for
   * their readers (default 20): a bound on how long reads that never leave a table free can
   * defer it.
   */
  readonly swapPatientAfter?: number
}

export type RunError = NotFound | InvalidCommand | InvalidTransition

export interface ProjectionsService {
  readonly status: () => Effect.Effect<ProjectionStatus>
  /**
   * Registers a rebuild of the named projections (default: every one); see `execute`. With
   * `fromSnapshot`, the shadow tables start as a copy of that completed snapshot's and only
   * the events after its bound are replayed.
   */
  readonly startRebuild: (options?: {
    readonly projections?: ReadonlyArray<string>
    readonly fromSnapshot?: string
  }) => Effect.Effect<Run, RunError>
  /** Registers a point-in-time build into `analytics_asof_<label>`; see `execute`. */
  readonly startSnapshot: (options: {
    readonly label: string
    readonly asOf: AsOf
    readonly projections?: ReadonlyArray<string>
  }) => Effect.Effect<Run, RunError | InvalidCursor>
  /** Does the work of a run in the calling fiber, to the end (or until cancelled). */
  readonly execute: (runId: string, options?: ExecuteOptions) => Effect.Effect<Run, NotFound | SqlError>
  /** Starts `execute` in the background of this process (the server's scope). */
  readonly launch: (runId: string) => Effect.Effect<void>
  readonly cancel: (runId: string) => Effect.Effect<Run, NotFound | InvalidTransition>
  readonly run: (runId: string) => Effect.Effect<Run, NotFound>
  readonly runs: (limit?: number) => Effect.Effect<ReadonlyArray<Run>>
  readonly snapshots: () => Effect.Effect<ReadonlyArray<Snapshot>>
  /** Drops a snapshot (refused while a rebuild has yet to copy from it). */
  readonly dropSnapshot: (label: string) => Effect.Effect<void, NotFound | InvalidTransition>
  /**
   * One step of the daemon: applies what async projections have not seen, resumes orphaned
   * runs, starts the rebuilds that registered versions need. Returns the events applied.
   */
  readonly tick: () => Effect.Effect<number>
}

export const SNAPSHOT_LABEL = /^[a-z][a-z0-9_]{0,39}$/

/** What a rebuild from a snapshot starts with: the snapshot's run, its bound (a seq), its events. */
interface SnapshotSeed {
  readonly runId: string
  readonly bound: string
  readonly events: number
}

/** A run whose worker has not reported for this long is taken over by another process. */
const STALE_SECONDS = 30
/**
 * A failed rebuild is retried after this many seconds, doubled per failure since the last
 * completed rebuild of the projection, at most RETRY_CAP_SECONDS.
 */
const RETRY_BASE_SECONDS = 10
const RETRY_CAP_SECONDS = 600
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
const LEASE_SECONDS = 15
const ASYNC_BATCH = 2_000

interface RunRow {
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
const RUN_COLUMNS = `r.id::text, r.kind, r.projections, r.label, r.target_schema, r.as_of,
  r.bound_seq::text as as_of_cursor,
  (select s.label from chronicle.projection_runs s where s.id = r.source_run) as from_snapshot,
  r.events_seeded::text, r.versions, r.state, r.phase, r.events_done::text, r.events_total::text,
  r.swap_attempts, r.worker,
  to_char(r.started_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as started_at,
  to_char(r.finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as finished_at,
  r.error, extract(epoch from (coalesce(r.finished_at, now()) - r.started_at))::float8 as elapsed`

const toRun = (row: RunRow): Run => {
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

const isUuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)

/** The projection engine. Its layer needs the database and the event store. */
export class Projections extends Context.Service<Projections, ProjectionsService>()(
  "@chronicle/projections/Projections",
) {
  static readonly layer = Layer.effect(
    Projections,
    Effect.gen(function* () {
      const db = yield* Database
      const store = yield* EventStore
      const scope = yield* Effect.scope
      const worker = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
      /** Runs this process is executing, so the daemon does not start them twice. */
      const active = new Set<string>()

      const q = <Row>(text: string, params: ReadonlyArray<unknown> = []) =>
        db.query<Row>(text, params).pipe(Effect.orDie)

      // On a clean shutdown, hand the async projections' leases back at once.
      yield* Effect.addFinalizer(() =>
        db
          .query(
            "update chronicle.projections set lease_owner = null, lease_expires_at = null where lease_owner = $1",
            [worker],
          )
          .pipe(Effect.ignore),
      )

      const status = Effect.fn("Projections.status")(function* () {
        const head = yield* store.head()
        const rows = yield* q<{
          name: string
          version: number
          built_version: number | null
          mode: ProjectionMode
          state: ProjectionState
          description: string | null
          tables: Array<string>
          cursor: string | null
          events_per_second: number | null
          last_error: string | null
          retry_at: string | null
        }>(
          `select name, version, built_version, mode, state, description, tables,
                  coalesce(cursor_seq, 0)::text as cursor, events_per_second, last_error,
                  to_char(chronicle.projection_retry_at(name, $1, $2) at time zone 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as retry_at
             from chronicle.projections order by name`,
          [RETRY_BASE_SECONDS, RETRY_CAP_SECONDS],
        )
        const projections: Array<ProjectionInfo> = []
        for (const p of rows) {
          const counts = yield* q<{ name: string; rows: string | null; estimated: boolean }>(
            "select name, rows::text, estimated from chronicle.projection_table_rows($1::text[])",
            [p.tables],
          )
          let lagEvents = 0
          let lagSeconds = 0
          if (p.mode === "async") {
            // Behind by the events after its cursor in the log's order, and by how long the
            // first of them has waited.
            const [lag] = yield* q<{ events: string; seconds: number | null }>(
              `select (st.last_seq - coalesce(p.cursor_seq, 0))::text as events,
                      (select extract(epoch from (now() - e.recorded_at))::float8
                         from chronicle.event_seq q join chronicle.events e on e.global_position = q.global_position
                        where q.seq = coalesce(p.cursor_seq, 0) + 1) as seconds
                 from chronicle.projections p, chronicle.sequencer st
                where p.name = $1`,
              [p.name],
            )
            lagEvents = Number(lag?.events ?? 0)
            lagSeconds = lagEvents === 0 ? 0 : Math.max(0, Math.round((lag?.seconds ?? 0) * 1000) / 1000)
          }
          projections.push({
            name: p.name,
            version: p.version,
            builtVersion: p.built_version,
            mode: p.mode,
            state: p.state,
            description: p.description,
            tables: counts.map((c) => ({ name: c.name, rows: Number(c.rows ?? 0), estimated: c.estimated })),
            cursor: p.mode === "inline" ? head.cursor : p.cursor,
            lagEvents,
            lagSeconds,
            eventsPerSecond: p.events_per_second === null ? null : Math.round(p.events_per_second),
            lastError: p.last_error,
            // The daemon retries a failed rebuild only when the projection needs one.
            retryAt: p.state === "failed" && p.built_version !== p.version ? p.retry_at : null,
          })
        }
        return { head, projections }
      })

      /** The named projections, each known; or every one. */
      const resolveNames = Effect.fn("Projections.resolveNames")(function* (
        names: ReadonlyArray<string> | undefined,
      ) {
        const known = (yield* q<{ name: string }>(
          "select name from chronicle.projections order by name",
        )).map((r) => r.name)
        if (names === undefined || names.length === 0) return known
        const unknown = names.find((n) => !known.includes(n))
        if (unknown !== undefined)
          return yield* new NotFound({ entity: "projection", id: `${unknown} (known: ${known.join(", ")})` })
        return [...new Set(names)]
      })

      const getRun = Effect.fn("Projections.run")(function* (runId: string) {
        if (!isUuid(runId)) return yield* new NotFound({ entity: "projection run", id: runId })
        const [row] = yield* q<RunRow>(
          `select ${RUN_COLUMNS} from chronicle.projection_runs r where r.id = $1`,
          [runId],
        )
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
          bound === null
            ? "select count(*)::text as n from chronicle.events"
            : "select $1::bigint::text as n",
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

      /**
       * The completed snapshot `label`, if it can seed a rebuild of `names`: it holds each of
       * them, built with the version registered now, its tables match the live ones, and it
       * holds every event up to its bound. Called under the registrars' lock.
       */
      const seedOf = Effect.fn("Projections.seedOf")(function* (label: string, names: ReadonlyArray<string>) {
        const [snapshot] = yield* q<{
          id: string
          state: RunState
          projections: Array<string>
          versions: Record<string, number> | null
          target_schema: string
          bound: string | null
          events_done: string
        }>(
          `select id::text, state, projections, versions, target_schema, bound_seq::text as bound,
                  events_done::text
             from chronicle.projection_runs
            where kind = 'snapshot' and label = $1
            order by state = 'completed' desc, started_at desc
            limit 1`,
          [label],
        )
        if (snapshot === undefined || snapshot.state === "dropped")
          return yield* new NotFound({ entity: "snapshot", id: label })
        const refuse = (state: string, reason: string) =>
          new InvalidTransition({ entity: "snapshot", id: label, state, action: "rebuild from", reason })
        if (snapshot.state === "running" || snapshot.state === "cancelling")
          return yield* refuse(
            "building",
            `it is still being built (run ${snapshot.id}); rebuild from it once it has completed`,
          )
        if (snapshot.state !== "completed")
          return yield* refuse(
            snapshot.state,
            `it never completed (run ${snapshot.id}); build it again, or rebuild from the log`,
          )
        const missing = names.filter((n) => !snapshot.projections.includes(n))
        if (missing.length > 0)
          return yield* new InvalidCommand({
            path: "fromSnapshot",
            reason: `snapshot ${label} holds ${snapshot.projections.join(", ")}, not ${missing.join(", ")}; name only projections it holds, or rebuild the others from the log`,
          })
        if (snapshot.versions === null)
          return yield* refuse(
            "versions unknown",
            "it was built before snapshots recorded the versions of their projections; rebuild from the log",
          )
        const current = yield* q<{ name: string; version: number }>(
          "select name, version from chronicle.projections where name = any ($1::text[]) order by name",
          [names],
        )
        const stale = current.filter((p) => snapshot.versions![p.name] !== p.version)
        if (stale.length > 0)
          return yield* refuse(
            `built with ${stale.map((p) => `${p.name} v${snapshot.versions![p.name] ?? "?"}`).join(", ")}`,
            `${stale.map((p) => `${p.name} is now at v${p.version}`).join(", ")}; rebuild from the log, or from a snapshot built since`,
          )
        const [mismatch] = yield* q<{ tables: Array<string> }>(
          `select chronicle.projection_tables_mismatch($1, array(
             select unnest(p.tables) from chronicle.projections p where p.name = any ($2::text[]))) as tables`,
          [snapshot.target_schema, names],
        )
        if ((mismatch?.tables.length ?? 0) > 0)
          return yield* refuse(
            "tables differ",
            `its copy of ${mismatch!.tables.join(", ")} in ${snapshot.target_schema} is missing or differs from the live definition; rebuild from the log`,
          )
        if (snapshot.bound === null)
          return yield* refuse(
            "before the log's order",
            "it was built before the log had its own order, so no cursor says where it ends; rebuild from the log",
          )
        // A seq bound holds every event up to it: nothing can commit below it later.
        return {
          runId: snapshot.id,
          bound: snapshot.bound,
          events: Number(snapshot.events_done),
        } satisfies SnapshotSeed
      })

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
              const seed =
                options.fromSnapshot === undefined ? null : yield* seedOf(options.fromSnapshot, names)
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

      /** The seq of the last event an as-of selector designates (the snapshot's bound, inclusive). */
      const resolveAsOf = Effect.fn("Projections.resolveAsOf")(function* (asOf: AsOf) {
        yield* store.sequenceAll()
        const [head] = yield* q<{ last_seq: string }>("select last_seq::text from chronicle.sequencer")
        const last = BigInt(head?.last_seq ?? "0")
        if ("cursor" in asOf) {
          const seq = yield* decodeCursor(asOf.cursor)
          if (seq > last)
            return yield* new InvalidCommand({
              path: "asOf.cursor",
              reason: `is ahead of the log, whose head is ${last}; a snapshot is of what has happened`,
            })
          return seq.toString()
        }
        if ("checkpointId" in asOf) {
          if (!isUuid(asOf.checkpointId))
            return yield* new NotFound({ entity: "checkpoint", id: asOf.checkpointId })
          // The checkpoint marks its session at `version`: the bound is that event's place.
          const [row] = yield* q<{ seq: string | null }>(
            `select q.seq::text as seq
               from chronicle.checkpoints c
               join chronicle.events e on e.stream_id = 'session-' || c.session_id and e.stream_version = c.version
               left join chronicle.event_seq q on q.global_position = e.global_position
              where c.id = $1`,
            [asOf.checkpointId],
          )
          if (row === undefined) return yield* new NotFound({ entity: "checkpoint", id: asOf.checkpointId })
          if (row.seq === null)
            return yield* new InvalidTransition({
              entity: "checkpoint",
              id: asOf.checkpointId,
              state: "not yet ordered",
              action: "snapshot as of",
              reason: "its event has just committed and is not in the log's order yet; try again in a moment",
            })
          return row.seq
        }
        const at = new Date(asOf.timestamp)
        if (Number.isNaN(at.getTime()))
          return yield* new InvalidCommand({
            path: "asOf.timestamp",
            reason: "must be an ISO-8601 timestamp",
          })
        // The longest stretch of the log's order whose events were all recorded by then.
        const [row] = yield* q<{ seq: string }>(
          `select coalesce((select min(q.seq) - 1 from chronicle.event_seq q
                              join chronicle.events e on e.global_position = q.global_position
                             where e.recorded_at > $1::timestamptz),
                           (select last_seq from chronicle.sequencer))::text as seq`,
          [at.toISOString()],
        )
        return row?.seq ?? "0"
      })

      const startSnapshot = Effect.fn("Projections.startSnapshot")(function* (options: {
        readonly label: string
        readonly asOf: AsOf
        readonly projections?: ReadonlyArray<string>
      }) {
        if (!SNAPSHOT_LABEL.test(options.label))
          return yield* new InvalidCommand({
            path: "label",
            reason: "must start with a lower-case letter and hold only a-z, 0-9 and _ (at most 40)",
          })
        const names = yield* resolveNames(options.projections)
        const bound = yield* resolveAsOf(options.asOf)
        const id = randomUUID()
        yield* db
          .transaction(
            Effect.gen(function* () {
              yield* q("select pg_advisory_xact_lock(hashtext('chronicle.projection_runs'))")
              const [taken] = yield* q<{ id: string }>(
                `select id::text from chronicle.projection_runs
                  where kind = 'snapshot' and label = $1 and state in ('running', 'cancelling', 'completed')`,
                [options.label],
              )
              if (taken !== undefined)
                return yield* new InvalidTransition({
                  entity: "snapshot",
                  id: options.label,
                  state: "exists",
                  action: "create",
                  reason: "a snapshot with this label exists; drop it first or choose another label",
                })
              yield* insertRun({
                id,
                kind: "snapshot",
                names,
                label: options.label,
                schema: `analytics_asof_${options.label}`,
                asOf: options.asOf,
                bound,
                total: yield* countEvents(bound),
                seed: null,
              })
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

      const execute = Effect.fn("Projections.execute")(function* (
        runId: string,
        options: ExecuteOptions = {},
      ) {
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
        yield* q(
          "update chronicle.projection_runs set state = 'cancelling', updated_at = now() where id = $1",
          [runId],
        )
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

      const snapshots = Effect.fn("Projections.snapshots")(function* () {
        const rows = yield* q<RunRow>(
          `select ${RUN_COLUMNS} from chronicle.projection_runs r
            where r.kind = 'snapshot' and r.state = 'completed' order by r.started_at desc`,
        )
        return rows.map(
          (row): Snapshot => ({
            label: row.label ?? "",
            schema: row.target_schema,
            projections: row.projections,
            asOf: row.as_of,
            asOfCursor: row.as_of_cursor,
            events: Number(row.events_done),
            versions: row.versions,
            createdAt: row.finished_at ?? row.started_at,
          }),
        )
      })

      const dropSnapshot = Effect.fn("Projections.dropSnapshot")(function* (label: string) {
        const [row] = yield* q<{ id: string; target_schema: string }>(
          `select id::text, target_schema from chronicle.projection_runs
            where kind = 'snapshot' and label = $1 and state = 'completed'`,
          [label],
        )
        if (row === undefined) return yield* new NotFound({ entity: "snapshot", id: label })
        yield* db
          .transaction(
            Effect.gen(function* () {
              yield* q("select pg_advisory_xact_lock(hashtext('chronicle.projection_runs'))")
              const [reader] = yield* q<{ id: string }>(
                `select id::text from chronicle.projection_runs
                  where source_run = $1 and state in ('running', 'cancelling') and seeded_at is null
                  limit 1`,
                [row.id],
              )
              if (reader !== undefined)
                return yield* new InvalidTransition({
                  entity: "snapshot",
                  id: label,
                  state: "in use",
                  action: "drop",
                  reason: `rebuild run ${reader.id} has not copied it yet; drop it once that run is past preparing, or cancel the run`,
                })
              yield* q("select chronicle.drop_projection_schema($1)", [row.id])
              yield* q(
                "update chronicle.projection_runs set state = 'dropped', updated_at = now() where id = $1",
                [row.id],
              )
            }),
          )
          .pipe(Effect.catchTag("SqlError", Effect.die))
      })

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

      return Projections.of({
        status,
        startRebuild,
        startSnapshot,
        execute,
        launch,
        cancel,
        run: getRun,
        runs,
        snapshots,
        dropSnapshot,
        tick,
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
