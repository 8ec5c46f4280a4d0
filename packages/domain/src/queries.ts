/**
 * Read-model queries shared by the services. Each read the API needs is one indexed query.
 *
 * `$1` is always the session id; as-of reads pass the version as `$2` (null = current).
 * The effective set of versions is the session row's `effective` for a current read, or
 * `chronicle.effective_versions(id, version)` as of a version.
 */
import { Database } from "@chronicle/store"
import { Effect, Schema } from "effect"
import { decoder, Time } from "./row-schema.ts"
import { iso, type Session, toSession } from "./rows.ts"

/** The effective version set, current or as of `$2`. Needs `s` = the session row. */
export const EFFECTIVE = `(case when $2::int is null then s.effective else chronicle.effective_versions(s.id, $2::int) end)`

/** Attachments effective under `range`: attached at an effective version, not detached at a later effective one. */
export const effectiveAttachments = (range: string) => `
  select f.* from chronicle.session_files f
   where f.session_id = s.id and ${range} @> f.version
     and not exists (
       select 1 from chronicle.session_file_detachments d
        where d.session_id = f.session_id and d.file_id = f.file_id
          and d.version > f.version and ${range} @> d.version)`

const SESSION_COLUMNS = `s.id::text, s.owner_id::text, s.status, s.parent_id::text, s.parent_version, s.external_key,
  s.created_at, s.updated_at, s.last_activity_at, s.head_cursor`

/** What a command needs of the session row besides the session: where its stream's head is. */
const decodeSessionHead = decoder(
  "session",
  "id",
  Schema.Struct({ head_cursor: Schema.String, updated_at: Time }),
)

/** The session as it is now, or as of version `asOf` (counters, title and metadata as of then). */
export const selectSession = (sessionId: string, asOf: number | null) =>
  Effect.gen(function* () {
    const db = yield* Database
    const rows = yield* db
      .query(
        asOf === null
          ? `select ${SESSION_COLUMNS}, s.title, s.metadata, s.version, s.message_count, s.revision_count,
                    s.draft_count, s.hole_count, s.file_count, s.tool_run_count
               from chronicle.sessions s where s.id = $1::uuid and $2::int is null`
          : `select ${SESSION_COLUMNS}, $2::int as version,
                    (select u.title from chronicle.session_updates u
                      where u.session_id = s.id and u.title_set and r.e @> u.version
                      order by u.version desc limit 1) as title,
                    (select u.metadata from chronicle.session_updates u
                      where u.session_id = s.id and u.metadata_set and r.e @> u.version
                      order by u.version desc limit 1) as metadata,
                    (select count(*) from chronicle.messages m where m.session_id = s.id and r.e @> m.version) as message_count,
                    (select count(*) from chronicle.revisions v where v.session_id = s.id and r.e @> v.version) as revision_count,
                    (select count(*) from chronicle.drafts d where d.session_id = s.id and r.e @> d.version) as draft_count,
                    (select count(*) from chronicle.hole_resolutions h where h.session_id = s.id and r.e @> h.version) as hole_count,
                    (select count(*) from (${effectiveAttachments("r.e")}) a) as file_count,
                    (select count(*) from chronicle.tool_runs t where t.session_id = s.id and t.version <= $2::int) as tool_run_count
               from chronicle.sessions s
               cross join lateral (select chronicle.effective_versions(s.id, $2::int) as e) r
              where s.id = $1::uuid`,
        [sessionId, asOf],
      )
      .pipe(Effect.orDie)
    const row = rows[0]
    if (row === undefined) return undefined
    const head = decodeSessionHead(row)
    return { session: toSession(row), headCursor: head.head_cursor, updatedAt: iso(head.updated_at) }
  })

export type LoadedSession = NonNullable<Effect.Success<ReturnType<typeof selectSession>>>

export const sessionStreamId = (id: string) => `session-${id}`
export const jobStreamId = (id: string) => `job-${id}`
export const fileStreamId = (id: string) => `file-${id}`
export const sandboxStreamId = (id: string) => `sandbox-${id}`

export type { Session }
