/**
 * Group commit: appends of different callers, each its own transaction, share one transaction
 * and one WAL flush when they arrive while others are being committed.
 *
 * An append that finds a free slot runs at once, alone (chronicle.append_events): an idle server
 * adds no wait. Appends that arrive while every slot is busy queue, and the next free slot takes
 * all of them (up to `maxGroup`) as one call of chronicle.append_group, which runs each append in
 * a subtransaction of its own: each keeps its atomicity, its version check and its own error (a
 * conflicting append never fails its neighbours), and they commit together. A group's commit
 * costs one round trip and one flush for all of them, which is what lets concurrent writers go
 * past one transaction per append.
 */
import { Deferred, Effect, Scope } from "effect"
import {
  type AppendResult,
  type AppendRow,
  classifyAppendError,
  expectedCode,
  runAppend,
  toAppendResult,
  type ValidatedAppend,
} from "./append.ts"
import type { DatabaseService } from "./database.ts"
import { type AppendError, SqlError } from "./errors.ts"

export interface GroupCommitOptions {
  /** Appends committed at once, alone or as groups (each on a connection of its own). */
  readonly slots: number
  /** Most appends in one group (each is a subtransaction; Postgres caches 64 per transaction). */
  readonly maxGroup: number
}

interface Waiting {
  readonly streamId: string
  readonly batch: ValidatedAppend
  readonly done: Deferred.Deferred<AppendResult, AppendError>
}

interface GroupRow extends AppendRow {
  readonly append: number
  readonly error_code: string | null
  readonly error_message: string | null
  readonly error_detail: string | null
}

/** SQLSTATEs of a transaction that lost to another (a deadlock, a serialization failure): worth retrying alone. */
const TRANSIENT = new Set(["40P01", "40001"])

export const makeGroupCommitter = (db: DatabaseService, options: GroupCommitOptions) =>
  Effect.gen(function* () {
    const scope = yield* Scope.Scope
    let busy = 0
    const queue: Array<Waiting> = []

    /** Commits one group and settles each of its appends with its own outcome. */
    const commitGroup = (group: ReadonlyArray<Waiting>) =>
      Effect.gen(function* () {
        const payload = group.map((w) => ({
          stream_id: w.streamId,
          stream_type: w.batch.category,
          expected_version: expectedCode(w.batch.expected),
          events: w.batch.rows,
          owner_id: w.batch.ownerId ?? null,
        }))
        const rows = yield* db
          .query<GroupRow>(
            `select append, event_id::text, stream_version, global_position::text, recorded_at, duplicate,
                  error_code, error_message, error_detail
             from chronicle.append_group($1::text::jsonb)`,
            [JSON.stringify(payload)],
          )
          .pipe(Effect.exit)
        if (rows._tag === "Failure") {
          // The group as a whole failed (the connection went away): every append with it.
          for (const w of group) yield* Deferred.failCause(w.done, rows.cause as never)
          return
        }
        for (const [i, w] of group.entries()) {
          const own = rows.value.filter((r) => r.append === i)
          const error = own.find((r) => r.error_code !== null)
          if (error === undefined) {
            yield* Deferred.succeed(w.done, toAppendResult(w.streamId, own))
            continue
          }
          const sqlError = new SqlError({
            code: error.error_code!,
            reason: error.error_message ?? "",
            ...(error.error_detail ? { detail: error.error_detail } : {}),
          })
          // Lost to a concurrent transaction: once more, alone.
          const outcome = TRANSIENT.has(sqlError.code ?? "")
            ? runAppend(db, w.streamId, w.batch)
            : classifyAppendError(sqlError, w.streamId, w.batch.expected, w.batch.rows)
          yield* Deferred.complete(w.done, outcome)
        }
      })

    /** Hands free slots to the queue: all of it (up to maxGroup) as one group per slot. */
    const drain: Effect.Effect<void> = Effect.suspend(() => {
      const starts: Array<Effect.Effect<unknown, never, never>> = []
      while (busy < options.slots && queue.length > 0) {
        const group = queue.splice(0, options.maxGroup)
        busy++
        starts.push(
          Effect.forkIn(
            (group.length === 1
              ? Deferred.complete(group[0]!.done, runAppend(db, group[0]!.streamId, group[0]!.batch))
              : commitGroup(group)
            ).pipe(
              Effect.ensuring(
                Effect.suspend(() => {
                  busy--
                  return drain
                }),
              ),
            ),
            scope,
          ),
        )
      }
      return Effect.all(starts, { discard: true })
    })

    /** Appends a validated batch in a transaction of its own, alone or in a group. */
    const append = (streamId: string, batch: ValidatedAppend): Effect.Effect<AppendResult, AppendError> =>
      Effect.suspend(() => {
        if (busy < options.slots && queue.length === 0) {
          busy++
          return runAppend(db, streamId, batch).pipe(
            Effect.ensuring(
              Effect.suspend(() => {
                busy--
                return drain
              }),
            ),
          )
        }
        return Effect.gen(function* () {
          const done = yield* Deferred.make<AppendResult, AppendError>()
          queue.push({ streamId, batch, done })
          yield* drain
          return yield* Deferred.await(done)
        })
      })

    return { append }
  })
