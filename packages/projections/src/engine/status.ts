/** The registry's state: each projection, its tables, how far behind the log it is. */
import { Effect } from "effect"
import { type EngineContext, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS } from "./context.ts"
import type { ProjectionInfo, ProjectionMode, ProjectionState } from "./types.ts"

export const makeStatus = ({ store, q }: EngineContext) => {
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
  return status
}
