import { Effect } from "effect"
import { InvalidCursor } from "./errors.ts"

/**
 * A position in the whole log: the writing transaction's id and the event's global
 * position. Readers order events by this pair and resume strictly after it. Outside the
 * store it is an opaque string.
 */
export interface LogPosition {
  readonly transactionId: bigint
  readonly globalPosition: bigint
}

export type Cursor = string

export const START: LogPosition = { transactionId: 0n, globalPosition: 0n }

const PATTERN = /^(0|[1-9][0-9]{0,19}):(0|[1-9][0-9]{0,19})$/

export const encodeCursor = (p: LogPosition): Cursor => `${p.transactionId}:${p.globalPosition}`

export const decodeCursor = (cursor: Cursor): Effect.Effect<LogPosition, InvalidCursor> => {
  const match = PATTERN.exec(cursor)
  if (!match) return Effect.fail(new InvalidCursor({ cursor }))
  const transactionId = BigInt(match[1]!)
  const globalPosition = BigInt(match[2]!)
  if (transactionId >= 2n ** 64n || globalPosition >= 2n ** 63n)
    return Effect.fail(new InvalidCursor({ cursor }))
  return Effect.succeed({ transactionId, globalPosition })
}

export const compareCursors = (a: LogPosition, b: LogPosition): number =>
  a.transactionId === b.transactionId
    ? Number(a.globalPosition - b.globalPosition)
    : a.transactionId < b.transactionId
      ? -1
      : 1
