/**
 * What one request may cost. Two bounds, so that no request (and no caller) can make the
 * server hold more than a known amount of memory:
 *
 * - **A response budget** (`Limits.maxResponseBytes`): the queries of one HTTP request (a
 *   tRPC batch) run one after the other and draw on one budget of bytes. A list page is
 *   given what is left (at most `maxPageBytes`) and ends early, with a cursor, when it is
 *   reached; an answer that no longer fits is refused (`ResponseTooLarge`), the calls before
 *   it keep theirs. The first answer of a request always fits: single items are bounded by
 *   their own limits, which the configuration keeps below the budget.
 * - **Concurrency per caller** (`maxConcurrentQueries`, `maxSubscriptions`): a user running
 *   more queries at once, or holding more subscriptions, is refused with 429. The service
 *   role is the operator's own key and is not limited.
 */
import type { Principal } from "./auth.ts"

/** The UTF-8 size of a value as JSON. */
export const jsonBytes = (value: unknown): number =>
  value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value), "utf8")

/** What a page leaves for the JSON around its items (the envelope, the cursor, tRPC's wrapper). */
export const PAGE_ENVELOPE_BYTES = 1024

/** The budget of one request: its queries take their turns and draw on it. */
export class ResponseBudget {
  /** Bytes the answers so far took. */
  used = 0
  /** Answers given so far. */
  answered = 0
  private tail: Promise<unknown> = Promise.resolve()
  readonly limit: number

  constructor(limit: number) {
    this.limit = limit
  }

  get remaining(): number {
    return this.limit - this.used
  }

  /** Runs `work` once every earlier query of the request has finished. */
  turn<A>(work: () => Promise<A>): Promise<A> {
    const run = this.tail.then(work, work)
    this.tail = run.catch(() => undefined)
    return run
  }

  /** The bytes a list page may take now: what is left, at most `maxPageBytes`. */
  pageBytes(maxPageBytes: number): number {
    return Math.max(1, Math.min(maxPageBytes, this.remaining - PAGE_ENVELOPE_BYTES))
  }

  /** Whether an answer of `size` bytes fits: the first of a request always does. */
  fits(size: number): boolean {
    return this.answered === 0 || size <= this.remaining
  }

  spend(size: number) {
    this.used += size
    this.answered++
  }
}

/** Who a limit per caller counts: a user; null for the service role, which is not limited. */
export const callerKey = (principal: Principal): string | null =>
  principal.kind === "user" ? principal.userId : null

/** Counts what each caller holds (running queries, open subscriptions) across requests. */
export class CallerGate {
  private readonly held = new Map<string, number>()

  /** Takes a slot for `key`, or returns null when it holds `limit` already (0: no limit). */
  acquire(key: string | null, limit: number): (() => void) | null {
    if (key === null || limit <= 0) return () => {}
    const now = this.held.get(key) ?? 0
    if (now >= limit) return null
    this.held.set(key, now + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.held.get(key) ?? 1) - 1
      if (left <= 0) this.held.delete(key)
      else this.held.set(key, left)
    }
  }

  /** How many slots `key` holds. */
  count(key: string): number {
    return this.held.get(key) ?? 0
  }
}
