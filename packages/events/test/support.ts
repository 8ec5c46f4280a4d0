import { Result, Schema } from "effect"
import { expect } from "vitest"
import {
  type ResolveParent,
  SessionEvent,
  type SessionEventRecord,
  type SessionSnapshot,
  type SessionView,
} from "../src/index.ts"

/** A lower-case UUID that reads as its number: uuid(7) = 00000000-0000-4000-8000-000000000007. */
export const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`

export const OWNER = uuid(0xa11ce)
export const OTHER_OWNER = uuid(0xb0b)
export const SHA = "a".repeat(64)

/** Deterministic recording times: version v of stream s is recorded at second v of minute s. */
export const at = (version: number, stream = 0): string =>
  new Date(Date.UTC(2026, 0, 1, 0, stream, 0) + version * 1000).toISOString()

/** Numbers events 1..n with recording times. */
export const record = (events: ReadonlyArray<SessionEvent>, stream = 0): Array<SessionEventRecord> =>
  events.map((event, index) => ({ version: index + 1, event, recordedAt: at(index + 1, stream) }))

/** Appends events to a log, numbering them after its last version. */
export const append = (
  log: Array<SessionEventRecord>,
  events: ReadonlyArray<SessionEvent>,
  stream = 0,
): Array<SessionEventRecord> => {
  for (const event of events) {
    const version = log.length + 1
    log.push({ version, event, recordedAt: at(version, stream) })
  }
  return log
}

/** The snapshot the domain would load from the read model for this view. */
export const snapshotOf = (view: SessionView): SessionSnapshot => ({
  id: view.id,
  ownerId: view.ownerId,
  status: view.status,
  version: view.version,
  title: view.title,
  metadata: view.metadata,
  counts: view.counts,
  headCursor: `cursor-${view.id}-${view.version}`,
})

/** What a rollback reverts: title, metadata and the content lists (tool runs are never reverted). */
export const revertible = (view: SessionView) => ({
  title: view.title,
  metadata: view.metadata,
  messages: view.messages,
  revisions: view.revisions,
  drafts: view.drafts,
  holeResolutions: view.holeResolutions,
  files: view.files,
})

/** Everything a view says as of its version, leaving out the current-only fields. */
export const asOfContent = (view: SessionView) => ({
  ...revertible(view),
  toolRuns: view.toolRuns,
  counts: view.counts,
})

/** A resolver over a fixed set of parent logs. */
export const parents =
  (
    logs: Record<string, ReadonlyArray<SessionEventRecord>>,
    fold: (log: ReadonlyArray<SessionEventRecord>, x: number) => SessionView,
  ): ResolveParent =>
  (parentId, atVersion) => {
    const log = logs[parentId]
    if (log === undefined) throw new Error(`no parent ${parentId}`)
    return fold(log, atVersion)
  }

/** Unwraps a successful decision, failing the test with the error otherwise. */
export const ok = <A, E>(result: Result.Result<A, E>): A => {
  if (Result.isFailure(result)) throw new Error(`expected success, got ${String(result.failure)}`)
  return result.success
}

/** Asserts a refused decision: its tag and that its message names the problem. */
export const refused = <A, E extends { readonly _tag: string; readonly message: string }>(
  result: Result.Result<A, E>,
  tag: E["_tag"],
  message: RegExp,
): E => {
  if (Result.isSuccess(result))
    throw new Error(`expected ${tag}, got success ${JSON.stringify(result.success)}`)
  expect(result.failure._tag).toBe(tag)
  expect(result.failure.message).toMatch(message)
  return result.failure
}

const decodeSessionEvent = Schema.decodeUnknownSync(SessionEvent)

/** Events a decider emits must be valid catalog events. */
export const assertValidSessionEvents = (events: ReadonlyArray<SessionEvent>): void => {
  for (const event of events) decodeSessionEvent(event)
}
