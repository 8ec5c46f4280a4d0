import { Effect } from "effect"
import { InvalidCursor } from "./errors.ts"

/**
 * Where a reader of the whole log is: the seq of the last event it has been given (or read
 * past). Seqs are the log's own order (chronicle.event_seq): dense, assigned after commit, the
 * same after a dump and restore. Outside the store a cursor is an opaque string.
 */
export type Cursor = string

/** Before the first event. */
export const START = 0n

const SEQ = /^(0|[1-9][0-9]{0,18})$/
/** What readers handed out before the log had its own order: `<transaction id>:<position>`. */
const PRE_SEQUENCER = /^\d+:\d+$/

export const encodeCursor = (seq: bigint): Cursor => seq.toString()

export const decodeCursor = (cursor: Cursor): Effect.Effect<bigint, InvalidCursor> => {
  if (typeof cursor === "string" && SEQ.test(cursor)) {
    const seq = BigInt(cursor)
    if (seq < 2n ** 63n) return Effect.succeed(seq)
  }
  return Effect.fail(
    new InvalidCursor({
      cursor: String(cursor),
      ...(typeof cursor === "string" && PRE_SEQUENCER.test(cursor)
        ? {
            reason:
              "was handed out before the log had its own order (a transaction id and a position) and cannot be resumed; read again from the start, or from the head",
          }
        : {}),
    }),
  )
}
