import { InvalidCommand } from "@chronicle/events"
import { Effect } from "effect"

export const DEFAULT_LIMIT = 50
export const MAX_LIMIT = 500

export interface PageRequest {
  readonly cursor?: string | null | undefined
  readonly limit?: number | undefined
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

/** Cursors are opaque to clients: base64url of a small JSON array. */
export const encodePageCursor = (key: ReadonlyArray<string | number>): string =>
  Buffer.from(JSON.stringify(key)).toString("base64url")

export const decodePageCursor = <K extends ReadonlyArray<"string" | "number">>(
  cursor: string | null | undefined,
  shape: K,
): Effect.Effect<
  { -readonly [I in keyof K]: K[I] extends "string" ? string : number } | null,
  InvalidCommand
> => {
  if (cursor === null || cursor === undefined) return Effect.succeed(null)
  const invalid = new InvalidCommand({ path: "cursor", reason: "is not a cursor this list handed out" })
  try {
    const key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown
    if (
      !Array.isArray(key) ||
      key.length !== shape.length ||
      key.some((v, i) => typeof v !== shape[i] || (typeof v === "number" && !Number.isFinite(v)))
    ) {
      return Effect.fail(invalid)
    }
    return Effect.succeed(key as never)
  } catch {
    return Effect.fail(invalid)
  }
}

/** Builds a page from `limit + 1` rows: the extra row, when present, says there is more. */
export const toPage = <Row, A>(
  rows: ReadonlyArray<Row>,
  limit: number,
  map: (row: Row) => A,
  keyOf: (row: Row) => ReadonlyArray<string | number>,
) => {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return {
    items: items.map(map),
    nextCursor: rows.length > limit && last !== undefined ? encodePageCursor(keyOf(last)) : null,
  }
}
