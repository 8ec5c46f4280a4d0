/**
 * Decoding rows as the drivers return them, with Schema. Each read-model row shape has its
 * schema next to the aggregate that reads it (rows.ts for the shared shapes); a row that does
 * not match is a defect (the read model and its reader disagree), named with the row's shape,
 * its id and the column that failed. Internal to the domain: not exported from the package.
 */
import { Schema } from "effect"

/** A row as a driver returns it: columns by name, not yet decoded. */
export type Row = Record<string, unknown>

// postgres.js returns integers wider than 32 bits and numerics in text (PGlite: numerics),
// timestamps in Dates (text when a query formats them with to_char).

/** A number column: a number, or its text (bigint, numeric). */
export const Num = Schema.Union([Schema.Number, Schema.String])
/** A timestamp column. */
export const Time = Schema.Union([Schema.Date, Schema.String])
/** A nullable text column (absent from a select: null). */
export const Text = Schema.optional(Schema.NullOr(Schema.String))
/** A nullable number column (absent from a select: null). */
export const OptionalNum = Schema.optional(Schema.NullOr(Num))
/** A nullable timestamp column (absent from a select: null). */
export const OptionalTime = Schema.optional(Schema.NullOr(Time))
/** A jsonb column that may be absent from a select or null. */
export const OptionalJson = Schema.optional(Schema.NullOr(Schema.Json))

export const num = (value: number | string) => Number(value)
export const numOrNull = (value: number | string | null | undefined) =>
  value === null || value === undefined ? null : Number(value)

/** A row that does not decode: what the read model holds disagrees with its reader. */
export class MalformedRow extends Error {
  constructor(shape: string, id: unknown, cause: unknown) {
    super(
      `malformed ${shape} row ${JSON.stringify(id) ?? String(id)}: ${cause instanceof Error ? cause.message : String(cause)}`,
    )
    this.name = "MalformedRow"
  }
}

/**
 * Decodes rows of one shape; a malformed row throws (a defect in the effect reading it). The
 * message names the shape, the row's `idColumn` and the column that failed (`at ["column"]`).
 */
export const decoder = <S extends Schema.Top & { readonly DecodingServices: never }>(
  shape: string,
  idColumn: string,
  schema: S,
) => {
  const decode = Schema.decodeUnknownSync(schema)
  return (row: Row): S["Type"] => {
    try {
      return decode(row)
    } catch (error) {
      throw new MalformedRow(shape, row[idColumn], error)
    }
  }
}

/**
 * The key of a page's last row, for its cursor: the columns named, in order, each text (a
 * `cursorTime`, an id) or a number (a version, a seq). A row without them is malformed.
 */
export const pageKey = (shape: string, columns: Readonly<Record<string, "text" | "number">>) => {
  const names = Object.keys(columns)
  const decode = decoder(
    `${shape} page key`,
    names[names.length - 1] ?? "",
    Schema.Struct(
      Object.fromEntries(names.map((name) => [name, columns[name] === "number" ? Num : Schema.String])),
    ),
  )
  return (row: Row): ReadonlyArray<string | number> => {
    const key = decode(row)
    return names.map((name) => (columns[name] === "number" ? Number(key[name]) : String(key[name])))
  }
}
