/**
 * `indexSession` folds the log once into an index that answers any as-of read by filtering; it
 * follows the read models' definitions (rows filtered by E(X)) and is tested against the fold.
 */
import type { JsonObject } from "../primitives.ts"
import { assertContiguous } from "../recorded.ts"
import {
  absurd,
  assertFirstEvent,
  type Building,
  emptyBuilding,
  evolve,
  finish,
  type TimelineEntry,
  timeline,
} from "./fold.ts"
import { assertVersionInRange, canonical, inVersionRanges, rollbackTarget } from "./history.ts"
import type { ResolveParent, SessionEventRecord, SessionView, VersionRange } from "./views.ts"

/** A session folded once, answering reads as of any version. */
export interface SessionIndex {
  /** The current version. */
  readonly version: number
  readonly effectiveVersions: (x: number) => ReadonlyArray<VersionRange>
  /** The view as of version x (1..version). */
  readonly asOf: (x: number) => SessionView
  readonly current: () => SessionView
  readonly timeline: () => ReadonlyArray<TimelineEntry>
}

export interface Setting {
  readonly version: number
  readonly title?: { readonly value: string | null }
  readonly metadata?: JsonObject
}

/**
 * Indexes a session's log once. Each as-of read then costs one walk of the rollback chain
 * (binary search per step) plus one filter of the stored rows, following the read models'
 * definitions: a row counts iff its version is effective; an attachment iff no effective
 * detachment of the same file comes later; tool runs iff their version <= X.
 */
export const indexSession = (
  events: ReadonlyArray<SessionEventRecord>,
  parent?: ResolveParent,
): SessionIndex => {
  assertContiguous(events, "indexSession")
  assertFirstEvent(events)
  const n = events.length

  const rollbackVersions: Array<number> = []
  const rollbackTargets: Array<number> = []
  const settings: Array<Setting> = []
  const detachments: Array<{ readonly fileId: string; readonly version: number }> = []
  // Every row of every branch, plus identity, lifecycle and checkpoints (which are never reverted).
  // Updates and detachments are kept aside: as-of reads pick the effective ones.
  const all = emptyBuilding()

  for (const record of events) {
    const { version, event } = record
    switch (event.type) {
      case "SessionStarted":
      case "SessionForked":
        evolve(all, record, parent)
        settings.push({ version, title: { value: event.title }, metadata: event.metadata })
        break
      case "SessionUpdated":
        settings.push({
          version,
          ...("title" in event ? { title: { value: event.title ?? null } } : {}),
          ...(event.metadata !== undefined ? { metadata: event.metadata } : {}),
        })
        break
      case "FileDetached":
        detachments.push({ fileId: event.fileId, version })
        break
      case "SessionRolledBack":
        rollbackVersions.push(version)
        rollbackTargets.push(rollbackTarget(record))
        break
      case "SessionArchived":
      case "SessionDeleted":
      case "SessionExpired":
      case "SessionReopened":
      case "SessionPurged":
      case "CheckpointCreated":
      case "MessageAppended":
      case "RevisionAdded":
      case "DraftRecorded":
      case "HoleResolved":
      case "FileAttached":
      case "ToolRunRecorded":
        evolve(all, record, parent)
        break
      default:
        absurd(event)
    }
  }

  /** Index of the latest rollback with version <= cur, or -1. */
  const latestRollback = (cur: number): number => {
    let lo = 0
    let hi = rollbackVersions.length - 1
    let found = -1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (rollbackVersions[mid]! <= cur) {
        found = mid
        lo = mid + 1
      } else hi = mid - 1
    }
    return found
  }

  const ranges = (x: number): Array<VersionRange> => {
    assertVersionInRange(x, n, 0)
    const out: Array<VersionRange> = []
    let cur = x
    while (cur >= 1) {
      const i = latestRollback(cur)
      if (i < 0) {
        out.push([1, cur])
        break
      }
      out.push([rollbackVersions[i]!, cur])
      cur = rollbackTargets[i]!
    }
    return canonical(out)
  }

  const asOf = (x: number): SessionView => {
    assertVersionInRange(x, n, 1)
    const effective = ranges(x)
    const isEffective = (v: number) => inVersionRanges(effective, v)
    const state: Building = { ...all }
    for (let i = settings.length - 1; i >= 0; i--) {
      const setting = settings[i]!
      if (setting.title !== undefined && isEffective(setting.version)) {
        state.title = setting.title.value
        break
      }
    }
    for (let i = settings.length - 1; i >= 0; i--) {
      const setting = settings[i]!
      if (setting.metadata !== undefined && isEffective(setting.version)) {
        state.metadata = setting.metadata
        break
      }
    }
    state.messages = all.messages.filter((row) => isEffective(row.version))
    state.revisions = all.revisions.filter((row) => isEffective(row.version))
    state.drafts = all.drafts.filter((row) => isEffective(row.version))
    state.holeResolutions = all.holeResolutions.filter((row) => isEffective(row.version))
    state.files = all.files.filter(
      (row) =>
        isEffective(row.version) &&
        !detachments.some(
          (detached) =>
            detached.fileId === row.fileId && detached.version > row.version && isEffective(detached.version),
        ),
    )
    state.toolRuns = all.toolRuns.filter((row) => row.version <= x)
    return finish(state, n, x)
  }

  return {
    version: n,
    effectiveVersions: ranges,
    asOf,
    current: () => asOf(n),
    timeline: () => timeline(events),
  }
}
