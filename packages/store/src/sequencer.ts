/**
 * The sequencer's worker: gives committed events their place in the log's order by calling
 * chronicle.sequence_events() (supabase/schemas/01_log.sql), which does the ordering itself.
 *
 * One process per database does it at a time: the one holding the lease on the sequencer's row
 * (renewed while it runs, taken over when it lapses). That process sequences right after its own
 * appends commit (passes at least `minPassIntervalMs` apart while they keep coming, unless a
 * reader waits for them), and polls for the appends of other processes; the embedded database
 * has one process, which always holds it. Correctness never rests on the lease: a pass locks the
 * sequencer's row, so two processes that both believe they hold it only take turns.
 */
import { randomUUID } from "node:crypto"
import { Deferred, Duration, Effect, Queue, Schedule, Scope } from "effect"
import { Database } from "./database.ts"

export interface SequencerOptions {
  /** Idle polls for events other processes appended, while holding the lease. */
  readonly pollIntervalMs: number
  /** How long the lease lasts unless renewed; a process that dies is replaced after it. */
  readonly leaseSeconds: number
  /** Most events one pass's batch sequences (one transaction). */
  readonly batchSize: number
  /**
   * The least time from the start of one pass to the start of the next, unless a reader waits
   * for its own appends (`flush`): appends that commit meanwhile share the next pass, so a
   * writer does not pay a pass (a round trip and a commit) per append. It delays the live tail
   * by at most this much. 0: a pass right after every commit.
   */
  readonly minPassIntervalMs: number
}

export interface Sequencer {
  /** This process committed events: sequence them now (when it holds the lease). */
  readonly poke: Effect.Effect<void>
  /**
   * Returns once every event this process committed before the call is sequenced: the reads
   * that follow see its own appends. Immediate when it has appended nothing since.
   */
  readonly flush: Effect.Effect<void>
  /**
   * Returns once every event committed before the call is sequenced, whoever appended it (an
   * import or a tool writing through SQL pokes nobody) and whoever holds the lease: this process
   * runs the passes itself (they take the sequencer's row lock, so it only takes turns).
   */
  readonly catchUp: Effect.Effect<void>
  /** The id this process's sequencer notifies with (payload of `chronicle_events`). */
  readonly origin: string
}

interface Tick {
  readonly sequenced: number
  readonly more: boolean
  /** The batch began its pass: the pass's snapshot is later than the call. */
  readonly fresh: boolean
}

/**
 * Starts the worker in the current scope. `onSequenced` runs after every batch this process
 * sequenced (its subscribers read on); other processes hear of it by NOTIFY.
 */
export const startSequencer = (options: SequencerOptions, onSequenced: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const db = yield* Database
    const scope = yield* Scope.Scope
    const origin = randomUUID()
    const pokes = yield* Queue.sliding<void>(1)
    // A reader waits for its own appends: the pass it needs does not wait for the spacing.
    const flushes = yield* Queue.sliding<void>(1)
    // Commits announced (pokes), how many of them a completed drain covers (a drain covers
    // the pokes before it began), and the readers waiting for a number to be covered.
    let requested = 0
    let covered = 0
    let waiting: Array<{ readonly upTo: number; readonly done: Deferred.Deferred<void> }> = []
    let holding = false
    let lastPassAt = Number.NEGATIVE_INFINITY

    const tick = db
      .query<{ sequenced: number; more: boolean; fresh: boolean }>(
        "select sequenced, more, fresh from chronicle.sequence_events($1, $2)",
        [options.batchSize, origin],
      )
      .pipe(
        Effect.map(
          ([row]) =>
            ({
              sequenced: row?.sequenced ?? 0,
              more: row?.more ?? false,
              fresh: row?.fresh ?? true,
            }) satisfies Tick,
        ),
      )

    /**
     * Batches until a pass that began now is complete: every event committed before the call is
     * then sequenced (a pass under way is pinned to an older snapshot, so it is finished first).
     */
    const upToNow = Effect.gen(function* () {
      let last: Tick
      do {
        last = yield* tick
        if (last.sequenced > 0) yield* onSequenced
      } while (last.more || !last.fresh)
    })

    /** Sequences up to now; then the readers waiting for the commits before it may read. */
    const drain = Effect.gen(function* () {
      const upTo = requested
      yield* upToNow
      covered = Math.max(covered, upTo)
      const served = waiting.filter((w) => w.upTo <= covered)
      waiting = waiting.filter((w) => w.upTo > covered)
      for (const w of served) yield* Deferred.succeed(w.done, undefined)
    }).pipe(
      Effect.tapError((error) => Effect.logWarning("sequencing failed; retrying", error)),
      Effect.retry(Schedule.min([Schedule.exponential("20 millis"), Schedule.spaced("2 seconds")])),
    )

    const acquire = db
      .query<{ lease_owner: string }>(
        `update chronicle.sequencer
            set lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)
          where lease_owner is null or lease_owner = $1 or lease_expires_at < now()
         returning lease_owner`,
        [origin, options.leaseSeconds],
      )
      .pipe(
        Effect.map((rows) => rows.length === 1),
        Effect.catch((error) =>
          Effect.as(Effect.logWarning("the sequencer's lease could not be taken", error), false),
        ),
      )

    const pending = db
      .query<{ pending: boolean }>("select chronicle.sequencer_pending() as pending")
      .pipe(Effect.map(([row]) => row?.pending === true))

    const renewEvery = Duration.seconds(options.leaseSeconds / 3)
    const loop = Effect.gen(function* () {
      let renewedAt = 0
      while (true) {
        if (Date.now() - renewedAt >= Duration.toMillis(renewEvery)) {
          holding = yield* acquire
          renewedAt = Date.now()
        }
        if (!holding) {
          // Another process sequences; readers waiting here are served by a pass of our own.
          if (waiting.length > 0) yield* drain
          // Look again once its lease could have lapsed.
          yield* Queue.take(pokes).pipe(Effect.timeoutOption(renewEvery))
          continue
        }
        if (requested > covered || (yield* pending.pipe(Effect.orElseSucceed(() => true)))) {
          const wait = lastPassAt + options.minPassIntervalMs - performance.now()
          if (wait >= 1 && waiting.length === 0) {
            yield* Queue.take(flushes).pipe(Effect.timeoutOption(Duration.millis(wait)))
          }
          // The pass below serves every reader waiting now: their wake-ups are spent.
          yield* Queue.clear(flushes)
          lastPassAt = performance.now()
          yield* drain
        }
        yield* Queue.take(pokes).pipe(Effect.timeoutOption(Duration.millis(options.pollIntervalMs)))
      }
    })
    yield* Effect.forkIn(loop, scope)

    // On shutdown: what this process appended is sequenced before it goes (so a short-lived
    // process, an import say, leaves no events waiting for another's poll), and the lease is
    // handed back, so another process takes over at once.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        if (requested > covered) yield* upToNow.pipe(Effect.timeout("10 seconds"), Effect.ignore)
        yield* db
          .query(
            "update chronicle.sequencer set lease_owner = null, lease_expires_at = null where lease_owner = $1",
            [origin],
          )
          .pipe(Effect.ignore)
      }),
    )

    const poke = Effect.gen(function* () {
      requested++
      yield* Queue.offer(pokes, undefined)
    })

    const flush: Effect.Effect<void> = Effect.suspend(() => {
      const upTo = requested
      if (covered >= upTo) return Effect.void
      if (!holding) {
        // Another process holds the lease: sequence here rather than wait for its poll.
        return upToNow.pipe(
          Effect.tap(() => Effect.sync(() => (covered = Math.max(covered, upTo)))),
          Effect.orDie,
        )
      }
      return Effect.gen(function* () {
        const done = yield* Deferred.make<void>()
        waiting.push({ upTo, done })
        yield* Queue.offer(pokes, undefined)
        yield* Queue.offer(flushes, undefined)
        yield* Deferred.await(done)
      })
    })

    const catchUp: Effect.Effect<void> = Effect.suspend(() => {
      const upTo = requested
      return upToNow.pipe(
        Effect.tap(() => Effect.sync(() => (covered = Math.max(covered, upTo)))),
        Effect.orDie,
      )
    })

    return { poke, flush, catchUp, origin } satisfies Sequencer
  })
