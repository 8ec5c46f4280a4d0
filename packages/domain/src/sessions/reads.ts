/** Reading sessions: one by id (now or as of a point in its history) or by external key, and pages of them. */
import { InvalidCommand, NotFound } from "@chronicle/events"
import type { SessionStatus } from "@chronicle/events/types"
import { Database, isUuid } from "@chronicle/store"
import { Effect } from "effect"
import { type Actor, listScope, ownerFor } from "../actor.ts"
import {
  budgeted,
  budgetParam,
  cursorTime,
  decodePageCursor,
  type PageRequest,
  pageLimit,
  ROW_OVERHEAD_BYTES,
  toPage,
} from "../paging.ts"
import { pageKey } from "../row-schema.ts"
import { toSession } from "../rows.ts"
import { type AsOf, currentSession, loadSession, resolveAsOf } from "../session/load.ts"
import { sessionIdForKey } from "./start.ts"

export interface ListSessionsInput extends PageRequest {
  readonly status?: SessionStatus | undefined
  readonly parentId?: string | undefined
  /**
   * Text found, case-insensitively, in the title or the external key, or at the start of the
   * id. Trimmed; 1 to 200 characters. `%`, `_` and `\` match themselves.
   */
  readonly search?: string | undefined
  /** Created at or after: an ISO date (from its start, UTC) or an ISO timestamp. */
  readonly createdFrom?: string | undefined
  /** Created at or before: an ISO date (the whole day, UTC) or an ISO timestamp. */
  readonly createdTo?: string | undefined
}

export const MAX_SEARCH_LENGTH = 200

/** The search text as a LIKE pattern's body: wildcards and the escape character taken literally. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`)

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))$/

/**
 * A bound of a creation-date filter: the instant it starts at, as text Postgres reads back
 * exactly (the fraction cut to microseconds, Postgres' precision), and how long it lasts — a
 * date is a whole UTC day, a timestamp one unit of its last digit — so that an inclusive upper
 * bound takes in what a client sees: a session shown as created at 10:00:00.123Z was created
 * at 10:00:00.123456, which `createdTo: "…T10:00:00.123Z"` must include.
 */
interface Instant {
  readonly text: string
  readonly micros: bigint
  readonly spanMicros: bigint
}

const DAY_MICROS = 86_400_000_000n

const parseInstant = (value: string, path: string): Effect.Effect<Instant, InvalidCommand> => {
  const invalid = new InvalidCommand({
    path,
    reason: "must be an ISO date (2026-11-24) or an ISO timestamp with a time zone (2026-11-24T10:00:00Z)",
  })
  const date = DATE.exec(value)
  const time = date === null ? TIMESTAMP.exec(value) : null
  const parts = date ?? time
  if (parts === null) return Effect.fail(invalid)
  const [year, month, day, hour, minute, second] = Array.from({ length: 6 }, (_, i) =>
    Number(parts[i + 1] ?? 0),
  ) as [number, number, number, number, number, number]
  const fraction = (time?.[7] ?? "").slice(0, 6)
  const offsetMinutes =
    time === null || time[8] === "Z"
      ? 0
      : (time[9] === "-" ? -1 : 1) * (Number(time[10]) * 60 + Number(time[11]))
  const utc = new Date(0)
  utc.setUTCFullYear(year, month - 1, day)
  utc.setUTCHours(hour, minute, second)
  const valid =
    year >= 1 &&
    utc.getUTCFullYear() === year &&
    utc.getUTCMonth() === month - 1 &&
    utc.getUTCDate() === day &&
    utc.getUTCHours() === hour &&
    utc.getUTCMinutes() === minute &&
    utc.getUTCSeconds() === second &&
    // Postgres reads offsets up to ±15:59 (real zones stay within ±14:00).
    (time === null || time[8] === "Z" || (Number(time[10]) <= 15 && Number(time[11]) <= 59))
  if (!valid) return Effect.fail(invalid)
  const micros =
    BigInt(utc.getTime() - offsetMinutes * 60_000) * 1000n + BigInt(fraction.padEnd(6, "0") || "0")
  if (date !== null) return Effect.succeed({ text: `${value}T00:00:00Z`, micros, spanMicros: DAY_MICROS })
  const text = value.replace(/\.\d+/, fraction === "" ? "" : `.${fraction}`)
  return Effect.succeed({ text, micros, spanMicros: 10n ** BigInt(6 - fraction.length) })
}

/** The checked filters of `sessions.list`. */
const listFilters = Effect.fn("Sessions.listFilters")(function* (input: ListSessionsInput) {
  const search = input.search?.trim()
  if (search !== undefined && (search.length === 0 || search.length > MAX_SEARCH_LENGTH)) {
    return yield* new InvalidCommand({
      path: "search",
      reason: `must hold 1 to ${MAX_SEARCH_LENGTH} characters besides surrounding spaces`,
    })
  }
  const from = input.createdFrom === undefined ? null : yield* parseInstant(input.createdFrom, "createdFrom")
  const to = input.createdTo === undefined ? null : yield* parseInstant(input.createdTo, "createdTo")
  if (from !== null && to !== null && from.micros >= to.micros + to.spanMicros) {
    return yield* new InvalidCommand({ path: "createdFrom", reason: "must not be after `createdTo`" })
  }
  return {
    pattern: search === undefined ? null : likeLiteral(search),
    from: from?.text ?? null,
    to: to?.text ?? null,
    toSpan: to === null ? null : to.spanMicros.toString(),
  }
})

export const get = Effect.fn("Sessions.get")(function* (actor: Actor, id: string, asOf?: AsOf) {
  const version = yield* resolveAsOf(actor, id, asOf)
  const loaded = yield* loadSession(actor, id, version)
  return loaded.session
})

export const getByKey = Effect.fn("Sessions.getByKey")(function* (actor: Actor, externalKey: string) {
  const ownerId = yield* ownerFor(actor)
  return yield* currentSession(actor, sessionIdForKey(ownerId, externalKey)).pipe(
    Effect.catchTag("NotFound", () =>
      Effect.fail(new NotFound({ entity: "session with external key", id: externalKey })),
    ),
  )
})

const sessionKey = pageKey("session", { cursor_at: "text", id: "text" })

export const list = Effect.fn("Sessions.list")(function* (actor: Actor, input: ListSessionsInput) {
  const db = yield* Database
  const limit = yield* pageLimit(input.limit)
  const after = yield* decodePageCursor(input.cursor, ["timestamp", "uuid"] as const)
  if (input.parentId !== undefined && !isUuid(input.parentId)) {
    return yield* new InvalidCommand({ path: "parentId", reason: "must be a UUID" })
  }
  const filters = yield* listFilters(input)
  // Newest first, keyed by (created_at, id): the filters only drop rows, so the keyset
  // pages through the matches with no gap and no duplicate.
  const rows = yield* db
    .query(
      budgeted(
        `select s.id::text, s.owner_id::text, s.title, s.status, s.metadata, s.version, s.parent_id::text,
              s.parent_version, s.external_key, s.message_count, s.revision_count, s.draft_count,
              s.hole_count, s.file_count, s.tool_run_count, s.created_at, s.updated_at, s.last_activity_at,
              ${cursorTime("s.created_at")} as cursor_at,
              octet_length(s.metadata::text) + coalesce(octet_length(s.title), 0)
                + coalesce(octet_length(s.external_key), 0) + ${ROW_OVERHEAD_BYTES} as page_bytes
         from chronicle.sessions s
        where ($1::uuid is null or s.owner_id = $1::uuid)
          and (case when $2::text is null then s.status <> 'deleted' else s.status = $2::text end)
          and ($3::uuid is null or s.parent_id = $3::uuid)
          and ($4::text is null or (s.created_at, s.id) < ($4::text::timestamptz, $5::uuid))
          and ($7::text is null
               or lower(s.title) like '%' || lower($7::text) || '%' escape '\\'
               or lower(s.external_key) like '%' || lower($7::text) || '%' escape '\\'
               or s.id::text like lower($7::text) || '%' escape '\\')
          and ($8::text is null or s.created_at >= $8::text::timestamptz)
          and ($9::text is null
               or s.created_at < $9::text::timestamptz + $10::bigint * interval '1 microsecond')
        order by s.created_at desc, s.id desc
        limit $6`,
        "$11",
      ),
      [
        listScope(actor),
        input.status ?? null,
        input.parentId ?? null,
        after?.[0] ?? null,
        after?.[1] ?? null,
        limit + 1,
        filters.pattern,
        filters.from,
        filters.to,
        filters.toSpan,
        budgetParam(input.maxBytes),
      ],
    )
    .pipe(Effect.orDie)
  return toPage(rows, limit, toSession, sessionKey, "asc", input.maxBytes)
})
