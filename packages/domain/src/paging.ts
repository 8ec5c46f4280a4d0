import { InvalidCommand, isIsoInstant } from "@chronicle/events"
import { isUuid } from "@chronicle/store"
import { Effect, Schema } from "effect"
import { MalformedRow, Num } from "./row-schema.ts"

export const DEFAULT_LIMIT = 50
export const MAX_LIMIT = 500

export interface PageRequest {
  readonly cursor?: string | null | undefined
  readonly limit?: number | undefined
  /**
   * The most bytes of JSON the page's items may take; the page ends early, with a cursor,
   * once they reach it (it always holds at least one item). Unset: no byte limit.
   */
  readonly maxBytes?: number | undefined
}

/** The limit of a list request, checked: 1..500, default 50. */
export const pageLimit = (limit: number | undefined) =>
  limit === undefined
    ? Effect.succeed(DEFAULT_LIMIT)
    : Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT
      ? Effect.succeed(limit)
      : Effect.fail(
          new InvalidCommand({ path: "limit", reason: `must be a whole number from 1 to ${MAX_LIMIT}` }),
        )

/**
 * Which end a list starts from. A cursor remembers it: a newest-first (`desc`) cursor is its
 * key behind a `"desc"` marker, so each order's cursors continue only a listing in that order.
 */
export type PageOrder = "asc" | "desc"

const DESC = "desc"

/** Cursors are opaque to clients: base64url of a small JSON array. */
export const encodePageCursor = (key: ReadonlyArray<string | number>, order: PageOrder = "asc"): string =>
  Buffer.from(JSON.stringify(order === "desc" ? [DESC, ...key] : key)).toString("base64url")

/**
 * The kinds of value a cursor key holds: a version, seq or number (a Postgres integer), a
 * timestamp or a UUID. Each is checked, so a tampered cursor is the client's mistake, not a
 * query that fails in the database.
 */
export type CursorKeyKind = "number" | "timestamp" | "uuid"

const MAX_INT4 = 2_147_483_647

const isKeyOfKind = (value: unknown, kind: CursorKeyKind): boolean => {
  switch (kind) {
    case "number":
      return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_INT4
    case "timestamp":
      // A cursor's time was written by the database: one it could not read back was made up.
      return isIsoInstant(value)
    case "uuid":
      return typeof value === "string" && isUuid(value)
  }
}

/**
 * The key a cursor holds, checked against `shape`. A list that takes an `order` passes it: a
 * cursor handed out in the other order is then refused saying so. For any other list, a
 * newest-first cursor is simply not one it handed out.
 */
export const decodePageCursor = <K extends ReadonlyArray<CursorKeyKind>>(
  cursor: string | null | undefined,
  shape: K,
  order?: PageOrder,
): Effect.Effect<
  { -readonly [I in keyof K]: K[I] extends "number" ? number : string } | null,
  InvalidCommand
> => {
  if (cursor === null || cursor === undefined) return Effect.succeed(null)
  // Built only for a refusal: an error captures a stack trace, which a valid cursor never needs.
  const invalid = () =>
    Effect.fail(new InvalidCommand({ path: "cursor", reason: "is not a cursor this list handed out" }))
  try {
    const decoded = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown
    if (!Array.isArray(decoded)) return invalid()
    const handedOutBy: PageOrder = decoded[0] === DESC ? "desc" : "asc"
    const key = handedOutBy === "desc" ? decoded.slice(1) : decoded
    if (key.length !== shape.length || key.some((v, i) => !isKeyOfKind(v, shape[i]!))) return invalid()
    if (handedOutBy !== (order ?? "asc")) {
      if (order === undefined) return invalid()
      // Following it would restart the listing from the wrong end: refused, never a wrong page.
      return Effect.fail(
        new InvalidCommand({
          path: "cursor",
          reason: `was handed out by a listing in ${handedOutBy} order; continue it with order "${handedOutBy}"`,
        }),
      )
    }
    return Effect.succeed(key as never)
  } catch {
    return invalid()
  }
}

/**
 * A timestamp column as a cursor key, to the microsecond. JS Dates stop at milliseconds, so a
 * key read from one would sort rows of the same millisecond on the wrong side of the cursor.
 * Queries take the key back as `$n::text::timestamptz`: a parameter typed timestamptz would be
 * sent through a Date by the driver, losing the microseconds again.
 */
export const cursorTime = (column: string) =>
  `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

/** The UTF-8 size of a value as JSON. */
const jsonBytes = (value: unknown): number =>
  value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value), "utf8")

/** What a row takes besides its large columns, in the estimate `budgeted` sums. */
export const ROW_OVERHEAD_BYTES = 256

/**
 * Wraps a paged query so the database returns only the rows that fit a byte budget, and
 * never sends the rest. `query` orders and limits its rows as the page does and selects
 * `page_bytes`, an estimate of a row's size in JSON that needs no detoasting where it can
 * (`octet_length` of text; jsonb is measured as text). `budgetParam` is the budget's
 * parameter (`$7`); null means no budget. The first row is always returned. The rows carry
 * `page_row` and `page_rows` (how many rows the query had), so `toPage` can tell a page cut
 * by the budget from the last page.
 */
export const budgeted = (query: string, budgetParam: string) =>
  `select w.* from (
     select q.*,
            row_number() over () as page_row,
            count(*) over () as page_rows,
            sum(q.page_bytes) over (rows between unbounded preceding and current row) as page_through
       from (${query}) q
   ) w
   where w.page_row = 1 or ${budgetParam}::bigint is null or w.page_through <= ${budgetParam}::bigint
   order by w.page_row`

/** The budget as a query parameter: null for none. */
export const budgetParam = (maxBytes: number | undefined): number | null =>
  maxBytes === undefined || !Number.isFinite(maxBytes) ? null : Math.max(1, Math.floor(maxBytes))

/** The columns `budgeted` adds to a page's rows (rows read otherwise have none). */
const decodeBudgetColumns = Schema.decodeUnknownSync(
  Schema.Struct({ page_row: Schema.optional(Num), page_rows: Schema.optional(Num) }),
)

/** Whether the byte budget cut a `budgeted` query's rows short, as its last row says. */
const cutByBudget = (last: unknown): boolean => {
  if (last === undefined) return false
  try {
    const { page_row, page_rows } = decodeBudgetColumns(last)
    return page_row !== undefined && Number(page_row) < Number(page_rows)
  } catch (error) {
    throw new MalformedRow("budgeted page", undefined, error)
  }
}

/**
 * Builds a page from `limit + 1` rows: the extra row, when present, says there is more.
 * With `maxBytes`, the page ends at the last item that fits it (at least one); a query
 * wrapped in `budgeted` may also have stopped early, which its rows say (or `cutByRead`, for
 * rows read otherwise: true when the read stopped before the rows ran out).
 */
export const toPage = <Row, A>(
  rows: ReadonlyArray<Row>,
  limit: number,
  map: (row: Row) => A,
  keyOf: (row: Row) => ReadonlyArray<string | number>,
  order: PageOrder = "asc",
  maxBytes?: number,
  cutByRead?: boolean,
) => {
  const cutByQuery = cutByRead ?? cutByBudget(rows.at(-1))
  const candidates = rows.slice(0, limit)
  const items: Array<A> = []
  let bytes = 0
  for (const row of candidates) {
    const item = map(row)
    if (maxBytes !== undefined) {
      const size = jsonBytes(item) + 1
      if (items.length > 0 && bytes + size > maxBytes) break
      bytes += size
    }
    items.push(item)
  }
  const more = rows.length > limit || cutByQuery || items.length < candidates.length
  const lastRow = candidates[items.length - 1]
  return {
    items,
    nextCursor: more && lastRow !== undefined ? encodePageCursor(keyOf(lastRow), order) : null,
  }
}
