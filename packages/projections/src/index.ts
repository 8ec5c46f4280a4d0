/**
 * The built-in read models. Their inline projections are SQL (supabase/migrations/
 * supabase/schemas/03_read_models.sql): an AFTER INSERT trigger on chronicle.events folds every
 * event into the tables below inside the append's transaction. This module names those
 * tables and reads them in ways every driver returns alike.
 */
import { Database } from "@chronicle/store"
import { Effect } from "effect"

/** Every table the projections write, with the columns that order its rows (its key). */
export const READ_MODEL_TABLES = {
  sessions: ["id"],
  session_rollbacks: ["session_id", "version"],
  session_updates: ["session_id", "version"],
  messages: ["session_id", "message_id"],
  revisions: ["session_id", "revision_id"],
  drafts: ["session_id", "draft_id"],
  hole_resolutions: ["session_id", "resolution_id"],
  session_files: ["session_id", "file_id", "version"],
  session_file_detachments: ["session_id", "file_id", "version"],
  tool_runs: ["session_id", "tool_run_id"],
  checkpoints: ["id"],
  files: ["id"],
  jobs: ["id"],
  tasks: ["job_id", "task_id"],
  artifacts: ["job_id", "artifact_id"],
  sandboxes: ["id"],
} as const satisfies Record<string, ReadonlyArray<string>>

export type ReadModelTable = keyof typeof READ_MODEL_TABLES

export const readModelTables = Object.keys(READ_MODEL_TABLES) as ReadonlyArray<ReadModelTable>

/** A row as JSON: uuids, timestamps and ranges as strings, numbers as numbers, jsonb as is. */
export type JsonRow = { readonly [column: string]: unknown }

/**
 * Every row of the given read models, ordered by key, as JSON (the same on every driver).
 * Two dumps are equal iff the tables hold the same rows.
 */
export const dumpReadModels = Effect.fn("Projections.dumpReadModels")(function* (
  tables: ReadonlyArray<ReadModelTable> = readModelTables,
  schema = "chronicle",
) {
  const db = yield* Database
  const dump: Partial<Record<ReadModelTable, ReadonlyArray<JsonRow>>> = {}
  for (const table of tables) {
    const order = READ_MODEL_TABLES[table].map((c) => `t.${c}`).join(", ")
    const [row] = yield* db.query<{ rows: ReadonlyArray<JsonRow> }>(
      `select coalesce(jsonb_agg(to_jsonb(t) order by ${order}), '[]'::jsonb) as rows from "${schema}".${table} t`,
    )
    dump[table] = row?.rows ?? []
  }
  return dump
})

/**
 * Empties the read models and projects the whole log again, in one transaction; returns
 * the number of events projected.
 */
export const rebuildReadModels = Effect.fn("Projections.rebuildReadModels")(function* () {
  const db = yield* Database
  const [row] = yield* db.transaction(
    db.query<{ events: string }>("select chronicle.rebuild_read_models()::text as events"),
  )
  return Number(row?.events ?? 0)
})

/** A set of versions as half-open ranges [from, to), in order. */
export type VersionRanges = ReadonlyArray<readonly [from: number, to: number]>

/** Parses an int4multirange's text form, such as `{[1,3),[5,6)}`. */
export const parseMultirange = (text: string): VersionRanges => {
  const ranges: Array<readonly [number, number]> = []
  for (const match of text.matchAll(/\[(-?\d+),(-?\d+)\)/g)) {
    ranges.push([Number(match[1]), Number(match[2])])
  }
  return ranges
}

/** The versions of a set of ranges, in order. */
export const versionsOf = (ranges: VersionRanges): ReadonlyArray<number> =>
  ranges.flatMap(([from, to]) => Array.from({ length: to - from }, (_, i) => from + i))

/** E(at): the versions of a session's effective history as of version `at`. */
export const effectiveVersions = Effect.fn("Projections.effectiveVersions")(function* (
  sessionId: string,
  at: number,
) {
  const db = yield* Database
  const [row] = yield* db.query<{ effective: string }>(
    "select chronicle.effective_versions($1::uuid, $2::integer)::text as effective",
    [sessionId, at],
  )
  return parseMultirange(row?.effective ?? "{}")
})
export * from "./service.ts"
