/**
 * The live tail, one per process: a single reader follows the head of the log's order and keeps
 * the latest events in memory, and every subscription that is caught up is served from there —
 * its filters (types, streams, owner) applied in memory. So however many subscriptions a
 * process holds, the database sees one reader per wake-up (a batch sequenced here, another
 * process's NOTIFY, or the poll), and an idle subscription costs it nothing. A subscription
 * further behind than what the tail keeps reads its own pages until it catches up.
 */
import { Effect, PubSub, Ref, Schedule, Scope } from "effect"
import type { DatabaseService } from "./database.ts"

export interface TailOptions {
  /** Most events kept in memory. */
  readonly maxEvents: number
  /** Most bytes (estimated) kept in memory. */
  readonly maxBytes: number
  /** Events the tail reads per query. */
  readonly page: number
  /** The tail reads at least this often while anyone follows it. */
  readonly pollIntervalMs: number
}

export interface Kept<E> {
  readonly seq: bigint
  readonly ownerId: string | null
  readonly bytes: number
  readonly event: E
}

export interface TailRow {
  readonly seq: string
  readonly owner_id: string | null
  readonly bytes: number
}

/**
 * `read(after, limit)` reads events of the log after a seq, in order, with their owner and
 * size. `wakeups` fires when there may be more.
 */
export const makeTail = <E, R extends TailRow>(
  db: DatabaseService,
  options: TailOptions,
  query: { readonly text: string; readonly params: (after: bigint, limit: number) => ReadonlyArray<unknown> },
  toEvent: (row: R) => E,
  wakeups: PubSub.PubSub<void>,
) =>
  Effect.gen(function* () {
    const scope = yield* Scope.Scope
    /** The events kept, oldest first; everything after `from` up to `to` is in it. */
    let kept: Array<Kept<E>> = []
    let bytes = 0
    let from = -1n
    let to = -1n
    let followers = 0
    let running = false
    const updates = yield* PubSub.sliding<void>(1)
    const reads = yield* Ref.make(0)

    const headNow = db
      .query<{ last_seq: string }>("select last_seq::text from chronicle.sequencer")
      .pipe(Effect.map(([row]) => BigInt(row?.last_seq ?? "0")))

    /** Reads everything after `to`, keeping it and dropping the oldest beyond the limits. */
    const catchUp = Effect.gen(function* () {
      for (;;) {
        const rows = yield* db.query<R>(query.text, query.params(to, options.page))
        yield* Ref.update(reads, (n) => n + 1)
        for (const row of rows) {
          const seq = BigInt(row.seq)
          kept.push({ seq, ownerId: row.owner_id, bytes: row.bytes, event: toEvent(row) })
          bytes += row.bytes
          to = seq
        }
        let drop = 0
        while (
          kept.length - drop > options.maxEvents ||
          (bytes > options.maxBytes && kept.length - drop > 1)
        ) {
          bytes -= kept[drop]!.bytes
          drop++
        }
        if (drop > 0) {
          from = kept[drop - 1]!.seq
          kept = kept.slice(drop)
        }
        if (rows.length > 0) yield* PubSub.publish(updates, undefined)
        if (rows.length < options.page) return
      }
    })

    const follow = Effect.gen(function* () {
      const wake = yield* PubSub.subscribe(wakeups)
      while (followers > 0) {
        yield* catchUp.pipe(
          Effect.tapError((error) => Effect.logWarning("the live tail's read failed; retrying", error)),
          Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
          Effect.orDie,
        )
        yield* PubSub.take(wake).pipe(Effect.timeoutOption(options.pollIntervalMs))
      }
      running = false
    }).pipe(Effect.scoped)

    /** A subscription starts following: the tail runs while anyone does. */
    const join = Effect.gen(function* () {
      followers++
      if (!running) {
        // Nobody followed until now: start at the head (what was kept may be long stale).
        running = true
        kept = []
        bytes = 0
        to = yield* headNow.pipe(
          Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
          Effect.orDie,
        )
        from = to
        yield* Effect.forkIn(follow, scope)
      }
    })

    const leave = Effect.sync(() => {
      followers--
    })

    /**
     * The kept events after `after` that `matches`, at most `limit`, and the seq the caller has
     * looked through; undefined when `after` is older than what is kept (read the log instead).
     */
    const after = (
      cursor: bigint,
      limit: number,
      matches: (e: Kept<E>) => boolean,
    ): { readonly events: ReadonlyArray<E>; readonly through: bigint } | undefined => {
      if (cursor < from) return undefined
      const events: Array<E> = []
      let through = cursor
      // The kept events are in seq order: the first one past the cursor, by bisection.
      let lo = 0
      let hi = kept.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (kept[mid]!.seq <= cursor) lo = mid + 1
        else hi = mid
      }
      let i = lo
      if (i === kept.length) return { events, through: to > cursor ? to : cursor }
      for (; i < kept.length && events.length < limit; i++) {
        const k = kept[i]!
        if (matches(k)) events.push(k.event)
        through = k.seq
      }
      if (i === kept.length && to > through) through = to
      return { events, through }
    }

    return {
      join,
      leave,
      after,
      updates,
      /** How many queries the tail has made (for the tests that count a subscriber's cost). */
      reads: Ref.get(reads),
    }
  })
