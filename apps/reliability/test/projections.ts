/**
 * Reading the read models' state in a way that holds for both shapes of
 * `projections.status` (one inline set of tables, or a registry of projections each with
 * its tables and state), so the fault tests outlive a change of projection engine.
 */
import type { ChronicleClient } from "@chronicle/client"
import { eventually, withSql } from "./support.ts"

interface Table {
  readonly name: string
  readonly rows: number
}
interface RegistryStatus {
  readonly projections: ReadonlyArray<{
    readonly name: string
    readonly state?: string
    readonly lagEvents?: number
    readonly tables: ReadonlyArray<Table | string>
  }>
}

const isRegistry = (status: unknown): status is RegistryStatus =>
  typeof status === "object" && status !== null && Array.isArray((status as RegistryStatus).projections)

/** The names of every read-model table the status lists. */
export const readModelTables = (status: unknown): ReadonlyArray<string> => {
  const names = isRegistry(status)
    ? status.projections.flatMap((p) => p.tables.map((t) => (typeof t === "string" ? t : t.name)))
    : ((status as { tables?: ReadonlyArray<Table> }).tables ?? []).map((t) => t.name)
  return [...new Set(names)].sort()
}

/** A digest of every row of each table (order-independent), by table. */
export const readModelFingerprint = (url: string, tables: ReadonlyArray<string>) =>
  withSql(url, async (sql) => {
    const out: Record<string, string> = {}
    for (const table of tables) {
      const [row] = await sql.unsafe<Array<{ n: number; digest: string | null }>>(
        `select count(*)::int as n, md5(string_agg(t::text, E'\\n' order by t::text)) as digest
           from chronicle."${table.replaceAll('"', '""')}" t`,
      )
      out[table] = `${row!.n}:${row!.digest ?? ""}`
    }
    return out
  })

/**
 * Waits until no rebuild runs in the database, every committed event has its place in the log's
 * order (a projection's lag is counted in that order: an event the sequencer has yet to place is
 * not behind yet), and, where the status reports it, every projection is live and caught up.
 */
export const rebuildSettled = (client: ChronicleClient, url: string) =>
  eventually("the projections to settle", async () => {
    const busy = await withSql(
      url,
      (sql) => sql`select 1 from pg_stat_activity
                    where datname = current_database() and pid <> pg_backend_pid()
                      and state <> 'idle' and query ilike '%rebuild%'
                    union all
                    select 1 from chronicle.events e
                     where not exists (select 1 from chronicle.event_seq q where q.global_position = e.global_position)
                    limit 1`,
    )
    if (busy.length > 0) return undefined
    const status: unknown = await client.projections.status.query()
    if (isRegistry(status)) {
      const settled = status.projections.every(
        (p) => (p.state === undefined || p.state === "live") && (p.lagEvents ?? 0) === 0,
      )
      return settled ? true : undefined
    }
    return true
  })
