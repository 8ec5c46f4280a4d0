/** Reading a session's content rows: one query, now or as of a version, paged and within a byte budget. */
import { NotFound } from "@chronicle/events"
import { Database, isUuid } from "@chronicle/store"
import { Effect, Schema } from "effect"
import { type Actor, ensureVisible } from "../actor.ts"
import type { LargeContent } from "../large-values.ts"
import {
  budgeted,
  budgetParam,
  decodePageCursor,
  type PageOrder,
  type PageRequest,
  pageLimit,
  ROW_OVERHEAD_BYTES,
  toPage,
} from "../paging.ts"
import { EFFECTIVE } from "../queries.ts"
import { decoder, pageKey } from "../row-schema.ts"
import { type AsOf, loadSession, resolveAsOf } from "../session/load.ts"

export interface ListInput extends PageRequest {
  readonly asOf?: AsOf | undefined
}

export interface LargeListInput extends ListInput {
  /** `include` (default): large values read back from the blob table; `omit`: their references only. */
  readonly largeContent?: LargeContent | undefined
}

/** A read of the read models; a database failure here is a defect, not the caller's error. */
export const query = (text: string, params: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const db = yield* Database
    return yield* db.query(text, params).pipe(Effect.orDie)
  })

/** The owner of the session a page of content belongs to, on each of its rows. */
const decodeSessionOwner = decoder(
  "session content",
  "session_id",
  Schema.Struct({ session_owner: Schema.String }),
)

/** Each list's page key, built (a schema compiled) once per table and keys, not per page. */
const pageKeys = new Map<string, ReturnType<typeof pageKey>>()
const contentKey = (table: string, [k1, k2]: readonly [string] | readonly [string, string]) => {
  const name = `${table}(${k1},${k2 ?? ""})`
  let key = pageKeys.get(name)
  if (key === undefined) {
    key = pageKey(table, k2 === undefined ? { [k1]: "number" } : { [k1]: "number", [k2]: "text" })
    pageKeys.set(name, key)
  }
  return key
}

/**
 * Rows of `table` visible in the session now or as of a version, ordered and paged by
 * `keys`: a number (seq, number) or a version and an id (rows a fork copied all share
 * version 1; their UUIDv7 ids keep them in recording order). `desc` walks the same keys
 * backwards, newest first.
 */
export const listVisible = <A>(
  actor: Actor,
  sessionId: string,
  input: ListInput,
  spec: {
    readonly table: string
    readonly keys: readonly [string] | readonly [string, string]
    readonly map: (row: Record<string, unknown>) => A
    /** The row's size in JSON, estimated in SQL over `t` (its large columns). */
    readonly size: string
    /** Tool runs are never reverted: as of X they are those recorded at or before X. */
    readonly neverReverted?: boolean
    readonly holeId?: string | undefined
    /** Only for lists that take an `order`; the others list oldest first. */
    readonly order?: PageOrder | undefined
  },
) =>
  Effect.gen(function* () {
    // A current read checks the session in the page's own statement; an as-of read
    // resolves its version against the session first.
    const current = input.asOf === undefined
    if (!current) yield* loadSession(actor, sessionId)
    else if (!isUuid(sessionId)) return yield* new NotFound({ entity: "session", id: sessionId })
    const asOf = current ? null : yield* resolveAsOf(actor, sessionId, input.asOf)
    const limit = yield* pageLimit(input.limit)
    const order = spec.order ?? "asc"
    const [k1, k2] = spec.keys
    const after =
      k2 === undefined
        ? yield* decodePageCursor(input.cursor, ["number"] as const, spec.order)
        : yield* decodePageCursor(input.cursor, ["number", "uuid"] as const, spec.order)
    const visible = spec.neverReverted
      ? "($2::int is null or t.version <= $2::int)"
      : "s.effective @> t.version"
    const [beyond, direction] = order === "desc" ? ["<", " desc"] : [">", ""]
    // Two statements, with and without a cursor, rather than one with `$3 is null or …`: that
    // `or` keeps the page's key off the index in a generic plan, and each page would read the
    // session's whole list past the cursor and sort it to keep 101 rows.
    const afterClause =
      after === null
        ? "$3::int is null and $4::text is null"
        : k2 === undefined
          ? `t.${k1} ${beyond} $3::int and $4::text is null`
          : `(t.${k1}, t.${k2}) ${beyond} ($3::int, $4::uuid)`
    const found = yield* query(
      // The session's owner, and the page: one row at least when the session exists (its
      // columns null when the page is empty). The effective set once per query (`offset 0`
      // keeps the planner from inlining it into a call per row: as of a version, that was a
      // refold per message). Rows past the byte budget never leave the database.
      budgeted(
        `select s.owner_id::text as session_owner, t.*, t.session_id::text as session_id${k2 ? `, t.${k2}::text as ${k2}` : ""},
                ${spec.size} + ${ROW_OVERHEAD_BYTES} as page_bytes
           from (select s.id, s.owner_id, ${spec.neverReverted ? "s.effective" : EFFECTIVE} as effective
                   from chronicle.sessions s where s.id = $1::uuid offset 0) s
           left join lateral (
             select t.* from chronicle.${spec.table} t
              where t.session_id = s.id and ${visible} and ${afterClause}
                ${spec.holeId === undefined ? "" : "and t.hole_id = $7::text"}
              order by t.${k1}${direction}${k2 ? `, t.${k2}${direction}` : ""}
              limit $5) t on true
          order by t.${k1}${direction}${k2 ? `, t.${k2}${direction}` : ""}`,
        "$6",
      ),
      [
        sessionId,
        asOf,
        after?.[0] ?? null,
        after?.[1] ?? null,
        limit + 1,
        budgetParam(input.maxBytes),
        ...(spec.holeId === undefined ? [] : [spec.holeId]),
      ],
    )
    if (found[0] === undefined) return yield* new NotFound({ entity: "session", id: sessionId })
    yield* ensureVisible(actor, decodeSessionOwner(found[0]).session_owner, "session", sessionId)
    const rows = found.filter((r) => r.session_id !== null)
    return toPage(rows, limit, spec.map, contentKey(spec.table, spec.keys), order, input.maxBytes)
  })
