/**
 * Point-in-time snapshots: registering one as of a cursor, a checkpoint or a time, listing and
 * dropping them, and checking that one can seed a rebuild.
 */
import { randomUUID } from "node:crypto"
import { InvalidCommand, InvalidTransition, NotFound } from "@chronicle/events"
import { decodeCursor } from "@chronicle/store"
import { Effect } from "effect"
import { type EngineContext, isUuid } from "./context.ts"
import { RUN_COLUMNS, type RunRecords, type RunRow, type SnapshotSeed } from "./records.ts"
import { type AsOf, type RunState, SNAPSHOT_LABEL, type Snapshot } from "./types.ts"

export const makeSnapshots = ({ db, store, q }: EngineContext, records: RunRecords) => {
  const { resolveNames, getRun, countEvents, insertRun } = records

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

  return { seedOf, startSnapshot, snapshots, dropSnapshot }
}

export type Snapshots = ReturnType<typeof makeSnapshots>
