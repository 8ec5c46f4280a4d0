/** The projection engine's public types: what `Projections` reports and takes. */
import type { InvalidCommand, InvalidTransition, NotFound } from "@chronicle/events"
import type { Head, InvalidCursor, SqlError } from "@chronicle/store"
import type { Effect } from "effect"

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
  /** preparing → copying → catching-up → indexing → catching-up → swapping → done. */
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
