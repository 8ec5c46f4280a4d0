/** A session's effective history: E(X), the versions that count as of version X (docs/DOMAIN.md). */
import type { SessionEvent } from "../catalog.ts"
import { assertContiguous } from "../recorded.ts"
import type { VersionRange } from "./views.ts"

export const rollbackTarget = (record: {
  readonly version: number
  readonly event: SessionEvent
}): number => {
  if (record.event.type !== "SessionRolledBack") return Number.NaN
  const target = record.event.toVersion
  // A rollback must point strictly backwards, or the chain below would never end.
  if (!(Number.isInteger(target) && target >= 1 && target < record.version)) {
    throw new RangeError(
      `SessionRolledBack at version ${record.version} points to version ${target}; it must be 1..${record.version - 1}`,
    )
  }
  return target
}

export const assertVersionInRange = (x: number, n: number, lowest: number): void => {
  if (!(Number.isInteger(x) && x >= lowest && x <= n)) {
    throw new RangeError(`version ${x} is not between ${lowest} and ${n}, the session's current version`)
  }
}

/** Sorts ranges ascending and joins touching ones, so that each E(X) has exactly one spelling. */
export const canonical = (descending: ReadonlyArray<VersionRange>): Array<VersionRange> => {
  const out: Array<[number, number]> = []
  for (const [from, to] of [...descending].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1]
    if (last !== undefined && from <= last[1] + 1) last[1] = Math.max(last[1], to)
    else out.push([from, to])
  }
  return out
}

/**
 * E(X) as sorted, disjoint, non-adjacent inclusive ranges (the same set an int4multirange holds),
 * by walking the rollback chain backwards from X as docs/DOMAIN.md describes. X = 0 gives [].
 */
export const effectiveVersions = (
  events: ReadonlyArray<{ readonly version: number; readonly event: SessionEvent }>,
  x: number,
): Array<VersionRange> => {
  assertContiguous(events, "effectiveVersions")
  assertVersionInRange(x, events.length, 0)
  const ranges: Array<VersionRange> = []
  let cur = x
  while (cur >= 1) {
    let rollback = 0
    for (let v = cur; v >= 1; v--) {
      if (events[v - 1]!.event.type === "SessionRolledBack") {
        rollback = v
        break
      }
    }
    if (rollback === 0) {
      ranges.push([1, cur])
      break
    }
    // The rollback event and everything after it up to cur, then whatever was effective at its target.
    ranges.push([rollback, cur])
    cur = rollbackTarget(events[rollback - 1]!)
  }
  return canonical(ranges)
}

/** Whether version `v` lies in one of the ranges. */
export const inVersionRanges = (ranges: ReadonlyArray<VersionRange>, v: number): boolean =>
  ranges.some(([from, to]) => from <= v && v <= to)
