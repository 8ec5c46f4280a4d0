/**
 * Sessions, in memory and without I/O:
 *
 * - `effectiveVersions` computes E(X), the effective history as of version X (docs/DOMAIN.md).
 * - `foldSession` folds a session's effective history into a `SessionView`. It is the oracle the
 *   SQL read models are compared against, so it is written to be plainly right rather than fast:
 *   compute E(X), then apply, in version order, every event that counts as of X.
 * - `indexSession` folds the log once into an index that answers any as-of read by filtering; it
 *   follows the read models' definitions (rows filtered by E(X)) and is tested against the fold.
 * - `timeline` marks the content events of abandoned branches as reverted.
 * - `decideSession`, `startSession` and `forkSession` are the deciders for session commands.
 */
import { Result } from "effect"
import { isContentEvent, type SessionEvent } from "./catalog.ts"
import { InvalidCommand, InvalidTransition, NotFound } from "./errors.ts"
import type { Json, JsonObject, MessageRole, SessionStatus, ToolRunStatus } from "./primitives.ts"
import { assertContiguous, type RecordedEvent } from "./recorded.ts"

type SessionEventOf<T extends SessionEvent["type"]> = Extract<SessionEvent, { readonly type: T }>

type SessionStarted = SessionEventOf<"SessionStarted">
type SessionForked = SessionEventOf<"SessionForked">

/** A session event as read from the `session-<id>` stream. */
export type SessionEventRecord = RecordedEvent<SessionEvent>

// ----- views --------------------------------------------------------------------------------

export interface SessionCounts {
  readonly messages: number
  readonly revisions: number
  readonly drafts: number
  /** Effective hole resolutions (rows, not distinct holes). */
  readonly holes: number
  /** Effective attachments. */
  readonly files: number
  readonly toolRuns: number
}

export interface MessageRow {
  readonly messageId: string
  readonly seq: number
  readonly role: MessageRole
  readonly content: string
  readonly metadata: JsonObject
  readonly version: number
  readonly createdAt: string
}

export interface RevisionRow {
  readonly revisionId: string
  readonly number: number
  readonly ir: Json
  readonly note: string | null
  readonly version: number
  readonly createdAt: string
}

export interface DraftRow {
  readonly draftId: string
  readonly code: string
  readonly language: string
  readonly valid: boolean
  readonly metrics: JsonObject
  readonly revisionNumber: number | null
  readonly version: number
  readonly createdAt: string
}

export interface HoleResolutionRow {
  readonly resolutionId: string
  readonly holeId: string
  readonly value: Json
  readonly confidence: number
  readonly version: number
  readonly createdAt: string
}

export interface AttachedFileRow {
  readonly fileId: string
  readonly sha256: string
  readonly name: string
  readonly mimeType: string
  readonly size: number
  readonly version: number
  readonly attachedAt: string
}

export interface ToolRunRow {
  readonly toolRunId: string
  readonly tool: string
  readonly input: Json
  readonly output: Json
  readonly status: ToolRunStatus
  readonly durationMs: number | null
  readonly error: string | null
  readonly version: number
  readonly createdAt: string
}

export interface CheckpointRow {
  readonly checkpointId: string
  /** The session version the checkpoint marks. */
  readonly version: number
  /** The version of the CheckpointCreated event itself (version + 1). */
  readonly eventVersion: number
  readonly label: string | null
  readonly cursor: string
  readonly createdAt: string
}

/**
 * A session read as of version `asOf`. Content (title, metadata, the lists and the counts) is as
 * of `asOf`; identity, status, version, creation time and checkpoints are the current ones.
 */
export interface SessionView {
  readonly id: string
  readonly ownerId: string
  readonly title: string | null
  readonly metadata: JsonObject
  readonly status: SessionStatus
  /** The session's current version (its number of events), whatever `asOf` is. */
  readonly version: number
  /** The version this view is read as of. */
  readonly asOf: number
  readonly createdAt: string
  readonly parentId: string | null
  readonly parentVersion: number | null
  readonly externalKey: string | null
  readonly messages: ReadonlyArray<MessageRow>
  readonly revisions: ReadonlyArray<RevisionRow>
  readonly drafts: ReadonlyArray<DraftRow>
  readonly holeResolutions: ReadonlyArray<HoleResolutionRow>
  readonly files: ReadonlyArray<AttachedFileRow>
  readonly toolRuns: ReadonlyArray<ToolRunRow>
  /** Every checkpoint of the session: checkpoints are never reverted. */
  readonly checkpoints: ReadonlyArray<CheckpointRow>
  readonly counts: SessionCounts
}

/** The parent's view as of a version; needed to fold a forked session. */
export type ResolveParent = (parentId: string, atVersion: number) => SessionView

export interface SessionFoldOptions {
  /** Read as of this version (1..n); the current version when absent. */
  readonly asOf?: number
  /** For a forked session: resolves the parent's view as of the fork's version. */
  readonly parent?: ResolveParent
}

/** An inclusive range of versions `[from, to]`. */
export type VersionRange = readonly [from: number, to: number]

// ----- effective history --------------------------------------------------------------------

const rollbackTarget = (record: { readonly version: number; readonly event: SessionEvent }): number => {
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

const assertVersionInRange = (x: number, n: number, lowest: number): void => {
  if (!(Number.isInteger(x) && x >= lowest && x <= n)) {
    throw new RangeError(`version ${x} is not between ${lowest} and ${n}, the session's current version`)
  }
}

/** Sorts ranges ascending and joins touching ones, so that each E(X) has exactly one spelling. */
const canonical = (descending: ReadonlyArray<VersionRange>): Array<VersionRange> => {
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

// ----- the fold (oracle) --------------------------------------------------------------------

interface Building {
  id: string
  ownerId: string
  createdAt: string
  status: SessionStatus
  title: string | null
  metadata: JsonObject
  parentId: string | null
  parentVersion: number | null
  externalKey: string | null
  messages: Array<MessageRow>
  revisions: Array<RevisionRow>
  drafts: Array<DraftRow>
  holeResolutions: Array<HoleResolutionRow>
  files: Array<AttachedFileRow>
  toolRuns: Array<ToolRunRow>
  checkpoints: Array<CheckpointRow>
}

const emptyBuilding = (): Building => ({
  id: "",
  ownerId: "",
  createdAt: "",
  status: "active",
  title: null,
  metadata: {},
  parentId: null,
  parentVersion: null,
  externalKey: null,
  messages: [],
  revisions: [],
  drafts: [],
  holeResolutions: [],
  files: [],
  toolRuns: [],
  checkpoints: [],
})

/** The copied rows a fork child starts with: the parent's as-of content, moved to version 1. */
const forkedContent = (parent: SessionView) => ({
  messages: parent.messages.map((row) => ({ ...row, version: 1 })),
  revisions: parent.revisions.map((row) => ({ ...row, version: 1 })),
  drafts: parent.drafts.map((row) => ({ ...row, version: 1 })),
  holeResolutions: parent.holeResolutions.map((row) => ({ ...row, version: 1 })),
  files: parent.files.map((row) => ({ ...row, version: 1 })),
  toolRuns: parent.toolRuns.map((row) => ({ ...row, version: 1 })),
})

const resolveForkParent = (event: SessionForked, parent: ResolveParent | undefined): SessionView => {
  if (parent === undefined) {
    throw new Error(
      `session ${event.sessionId} is a fork of ${event.parentId}; folding it needs the parent's state`,
    )
  }
  return parent(event.parentId, event.atVersion)
}

/** Applies one event that counts as of the read version. */
const evolve = (state: Building, record: SessionEventRecord, parent: ResolveParent | undefined): void => {
  const { version, event, recordedAt } = record
  switch (event.type) {
    case "SessionStarted":
      state.id = event.sessionId
      state.ownerId = event.ownerId
      state.createdAt = recordedAt
      state.status = "active"
      state.title = event.title
      state.metadata = event.metadata
      state.externalKey = event.externalKey
      return
    case "SessionForked":
      state.id = event.sessionId
      state.ownerId = event.ownerId
      state.createdAt = recordedAt
      state.status = "active"
      state.title = event.title
      state.metadata = event.metadata
      state.externalKey = event.externalKey
      state.parentId = event.parentId
      state.parentVersion = event.atVersion
      Object.assign(state, forkedContent(resolveForkParent(event, parent)))
      return
    case "SessionUpdated":
      if ("title" in event) state.title = event.title ?? null
      if (event.metadata !== undefined) state.metadata = event.metadata
      return
    case "SessionArchived":
      state.status = "archived"
      return
    case "SessionDeleted":
      state.status = "deleted"
      return
    case "SessionExpired":
      state.status = "expired"
      return
    case "SessionReopened":
      state.status = "active"
      return
    case "SessionPurged":
      // The redacted events before it already read as empty content; the session is gone.
      state.status = "deleted"
      return
    case "MessageAppended":
      state.messages.push({
        messageId: event.messageId,
        seq: event.seq,
        role: event.role,
        content: event.content,
        metadata: event.metadata,
        version,
        createdAt: event.createdAt ?? recordedAt,
      })
      return
    case "RevisionAdded":
      state.revisions.push({
        revisionId: event.revisionId,
        number: event.number,
        ir: event.ir,
        note: event.note,
        version,
        createdAt: recordedAt,
      })
      return
    case "DraftRecorded":
      state.drafts.push({
        draftId: event.draftId,
        code: event.code,
        language: event.language,
        valid: event.valid,
        metrics: event.metrics,
        revisionNumber: event.revisionNumber,
        version,
        createdAt: recordedAt,
      })
      return
    case "HoleResolved":
      state.holeResolutions.push({
        resolutionId: event.resolutionId,
        holeId: event.holeId,
        value: event.value,
        confidence: event.confidence,
        version,
        createdAt: recordedAt,
      })
      return
    case "FileAttached":
      state.files.push({
        fileId: event.fileId,
        sha256: event.sha256,
        name: event.name,
        mimeType: event.mimeType,
        size: event.size,
        version,
        attachedAt: recordedAt,
      })
      return
    case "FileDetached":
      // Every attachment of this file so far is earlier than this detachment, so none is effective now.
      state.files = state.files.filter((row) => row.fileId !== event.fileId)
      return
    case "ToolRunRecorded":
      state.toolRuns.push({
        toolRunId: event.toolRunId,
        tool: event.tool,
        input: event.input,
        output: event.output,
        status: event.status,
        durationMs: event.durationMs,
        error: event.error,
        version,
        createdAt: recordedAt,
      })
      return
    case "CheckpointCreated":
      state.checkpoints.push({
        checkpointId: event.checkpointId,
        version: event.version,
        eventVersion: version,
        label: event.label,
        cursor: event.cursor,
        createdAt: recordedAt,
      })
      return
    case "SessionRolledBack":
      // Its effect is on E(X), which decided which events reach this function.
      return
    default:
      absurd(event)
  }
}

const absurd = (value: never): never => {
  throw new Error(`unexpected event ${JSON.stringify(value)}`)
}

const byVersion = <R extends { readonly version: number }>(a: R, b: R) => a.version - b.version

const finish = (state: Building, version: number, asOf: number): SessionView => {
  // Array.prototype.sort is stable: rows copied by a fork (all at version 1) keep the parent's order.
  const messages = [...state.messages].sort((a, b) => a.seq - b.seq || a.version - b.version)
  const revisions = [...state.revisions].sort((a, b) => a.number - b.number || a.version - b.version)
  const drafts = [...state.drafts].sort(byVersion)
  const holeResolutions = [...state.holeResolutions].sort(byVersion)
  const files = [...state.files].sort(byVersion)
  const toolRuns = [...state.toolRuns].sort(byVersion)
  const checkpoints = [...state.checkpoints].sort((a, b) => a.eventVersion - b.eventVersion)
  return {
    id: state.id,
    ownerId: state.ownerId,
    title: state.title,
    metadata: state.metadata,
    status: state.status,
    version,
    asOf,
    createdAt: state.createdAt,
    parentId: state.parentId,
    parentVersion: state.parentVersion,
    externalKey: state.externalKey,
    messages,
    revisions,
    drafts,
    holeResolutions,
    files,
    toolRuns,
    checkpoints,
    counts: {
      messages: messages.length,
      revisions: revisions.length,
      drafts: drafts.length,
      holes: holeResolutions.length,
      files: files.length,
      toolRuns: toolRuns.length,
    },
  }
}

const assertFirstEvent = (events: ReadonlyArray<SessionEventRecord>): void => {
  const first = events[0]?.event.type
  if (first !== "SessionStarted" && first !== "SessionForked") {
    throw new RangeError(
      `a session stream starts with SessionStarted or SessionForked, not ${first ?? "nothing"}`,
    )
  }
}

/**
 * Folds a session's effective history as of `options.asOf` (default: the current version):
 * a content event counts iff its version is in E(asOf), a tool run iff its version <= asOf, and
 * everything else (identity, lifecycle, checkpoints) always, since it is never reverted.
 */
export const foldSession = (
  events: ReadonlyArray<SessionEventRecord>,
  options: SessionFoldOptions = {},
): SessionView => {
  assertContiguous(events, "foldSession")
  assertFirstEvent(events)
  const n = events.length
  const x = options.asOf ?? n
  assertVersionInRange(x, n, 1)
  const ranges = effectiveVersions(events, x)
  const state = emptyBuilding()
  for (const record of events) {
    const type = record.event.type
    const counts = isContentEvent(type)
      ? inVersionRanges(ranges, record.version)
      : type === "ToolRunRecorded"
        ? record.version <= x
        : true
    if (counts) evolve(state, record, options.parent)
  }
  return finish(state, n, x)
}

// ----- timeline -----------------------------------------------------------------------------

export interface TimelineEntry extends SessionEventRecord {
  /** True for a content event outside the current effective history (an abandoned branch). */
  readonly reverted: boolean
}

/** Every event of the session, content events of abandoned branches marked `reverted`. */
export const timeline = (events: ReadonlyArray<SessionEventRecord>): Array<TimelineEntry> => {
  const ranges = effectiveVersions(events, events.length)
  return events.map((record) => ({
    ...record,
    reverted: isContentEvent(record.event.type) && !inVersionRanges(ranges, record.version),
  }))
}

// ----- the as-of index ----------------------------------------------------------------------

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

interface Setting {
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

// ----- deciders -----------------------------------------------------------------------------

/** What the domain loads from the `sessions` read model before deciding. */
export interface SessionSnapshot {
  readonly id: string
  readonly ownerId: string
  readonly status: SessionStatus
  readonly version: number
  readonly title: string | null
  readonly metadata: JsonObject
  readonly counts: SessionCounts
  /** The global cursor of the session's latest event. */
  readonly headCursor: string
}

export interface UpdateSession {
  readonly type: "UpdateSession"
  /** Absent: unchanged; null: cleared. */
  readonly title?: string | null
  /** Replaces the metadata whole. */
  readonly metadata?: JsonObject
}

export interface ArchiveSession {
  readonly type: "ArchiveSession"
  readonly reason: string | null
}

export interface DeleteSession {
  readonly type: "DeleteSession"
  readonly reason: string | null
}

/** Issued only by the retention sweep, for a session idle longer than the TTL. */
export interface ExpireSession {
  readonly type: "ExpireSession"
  readonly idleSince: string
  readonly ttlHours: number
}

export interface NewMessage {
  readonly messageId: string
  readonly role: MessageRole
  readonly content: string
  readonly metadata: JsonObject
  /** When it was originally written (imports); null: when recorded. */
  readonly createdAt: string | null
}

export interface AppendMessages {
  readonly type: "AppendMessages"
  readonly messages: ReadonlyArray<NewMessage>
}

export interface AddRevision {
  readonly type: "AddRevision"
  readonly revisionId: string
  readonly ir: Json
  readonly note: string | null
}

export interface RecordDraft {
  readonly type: "RecordDraft"
  readonly draftId: string
  readonly code: string
  readonly language: string
  readonly valid: boolean
  readonly metrics: JsonObject
  readonly revisionNumber: number | null
}

export interface ResolveHole {
  readonly type: "ResolveHole"
  readonly resolutionId: string
  readonly holeId: string
  readonly value: Json
  readonly confidence: number
  /** The hole's current effective resolution (latest in E(current)), or null if unresolved. */
  readonly current: { readonly confidence: number } | null
}

/** The stored file, as the domain found it in the `files` read model. */
export interface StoredFile {
  readonly fileId: string
  readonly ownerId: string
  readonly sha256: string
  readonly name: string
  readonly mimeType: string
  readonly size: number
}

export interface AttachFile {
  readonly type: "AttachFile"
  readonly file: StoredFile
  /** Whether the file is currently (effectively) attached to the session. */
  readonly attached: boolean
}

export interface DetachFile {
  readonly type: "DetachFile"
  readonly fileId: string
  /** Whether the file is currently (effectively) attached to the session. */
  readonly attached: boolean
}

export interface RecordToolRun {
  readonly type: "RecordToolRun"
  readonly toolRunId: string
  readonly tool: string
  readonly input: Json
  readonly output: Json
  readonly status: ToolRunStatus
  readonly durationMs: number | null
  readonly error: string | null
}

export interface CreateCheckpoint {
  readonly type: "CreateCheckpoint"
  readonly checkpointId: string
  readonly label: string | null
}

/** Roll back to a version; for a rollback to a checkpoint the domain passes its version and id. */
export interface RollBack {
  readonly type: "RollBack"
  readonly toVersion: number
  readonly checkpointId: string | null
}

export type SessionCommand =
  | UpdateSession
  | ArchiveSession
  | DeleteSession
  | ExpireSession
  | AppendMessages
  | AddRevision
  | RecordDraft
  | ResolveHole
  | AttachFile
  | DetachFile
  | RecordToolRun
  | CreateCheckpoint
  | RollBack

export type SessionError = InvalidTransition | InvalidCommand | NotFound
export type SessionDecision = Result.Result<ReadonlyArray<SessionEvent>, SessionError>

const accept = (...events: ReadonlyArray<SessionEvent>): SessionDecision => Result.succeed(events)

const refuse = (
  state: { readonly id: string; readonly status: SessionStatus },
  action: string,
  reason: string,
) =>
  Result.fail(new InvalidTransition({ entity: "session", id: state.id, state: state.status, action, reason }))

const invalid = (path: string, reason: string) => Result.fail(new InvalidCommand({ path, reason }))

/** Why an archived or deleted session takes no appends (an expired one is reopened instead). */
const closedReason = (status: "archived" | "deleted"): string => {
  switch (status) {
    case "archived":
      return "the session is archived, and an archived session is read-only"
    case "deleted":
      return "the session is deleted, and a deleted session is read-only"
  }
}

/** What each content command is called in an error message: "Cannot <action> session <id> …". */
const actionOf: Record<
  Exclude<SessionCommand["type"], "ArchiveSession" | "DeleteSession" | "ExpireSession">,
  string
> = {
  UpdateSession: "update",
  AppendMessages: "append messages to",
  AddRevision: "add a revision to",
  RecordDraft: "record a draft in",
  ResolveHole: "resolve a hole in",
  AttachFile: "attach a file to",
  DetachFile: "detach a file from",
  RecordToolRun: "record a tool run in",
  CreateCheckpoint: "create a checkpoint of",
  RollBack: "roll back",
}

/** Creates a session. */
export const startSession = (input: {
  readonly sessionId: string
  readonly ownerId: string
  readonly title: string | null
  readonly metadata: JsonObject
  readonly externalKey: string | null
}): SessionStarted => ({
  type: "SessionStarted",
  sessionId: input.sessionId,
  ownerId: input.ownerId,
  title: input.title,
  metadata: input.metadata,
  externalKey: input.externalKey,
})

export interface ForkSessionInput {
  readonly sessionId: string
  readonly ownerId: string
  readonly atVersion: number
  /** The checkpoint the fork was taken from, if it was named by checkpoint. */
  readonly checkpointId: string | null
  /** A new title for the child; absent: the parent's as of `atVersion`. */
  readonly title?: string | null
  /** New metadata for the child; absent: the parent's as of `atVersion`. */
  readonly metadata?: JsonObject
  readonly externalKey?: string | null
  /** The parent's title and metadata as of `atVersion`. */
  readonly parentAsOf: { readonly title: string | null; readonly metadata: JsonObject }
}

/** Forks a new session off `parent` as of `atVersion`; the child starts active. */
export const forkSession = (
  parent: SessionSnapshot,
  input: ForkSessionInput,
): Result.Result<SessionForked, InvalidTransition | InvalidCommand> => {
  // A deleted session is gone for its owner; forking would bring its content back.
  if (parent.status === "deleted") {
    return refuse(parent, "fork", "a deleted session cannot be forked")
  }
  // The child copies the parent's state as of a version the parent has reached.
  if (!(Number.isInteger(input.atVersion) && input.atVersion >= 1 && input.atVersion <= parent.version)) {
    return invalid(
      "atVersion",
      `cannot fork at version ${input.atVersion}: session ${parent.id} has versions 1 to ${parent.version}`,
    )
  }
  return Result.succeed({
    type: "SessionForked",
    sessionId: input.sessionId,
    ownerId: input.ownerId,
    parentId: parent.id,
    atVersion: input.atVersion,
    checkpointId: input.checkpointId,
    title: "title" in input ? (input.title ?? null) : input.parentAsOf.title,
    metadata: input.metadata ?? input.parentAsOf.metadata,
    externalKey: input.externalKey ?? null,
  })
}

/** Decides a command against the session's current state: the events to append, or why not. */
export const decideSession = (command: SessionCommand, state: SessionSnapshot): SessionDecision => {
  switch (command.type) {
    case "ArchiveSession":
      // Archiving is for live or idle sessions; a deleted one stays deleted, an archived one already is.
      if (state.status !== "active" && state.status !== "expired") {
        return refuse(
          state,
          "archive",
          state.status === "archived"
            ? "the session is already archived"
            : "a deleted session cannot be archived; only active or expired sessions can",
        )
      }
      return accept({ type: "SessionArchived", reason: command.reason })

    case "DeleteSession":
      // Soft deletion works from any status, once.
      if (state.status === "deleted") return refuse(state, "delete", "the session is already deleted")
      return accept({ type: "SessionDeleted", reason: command.reason })

    case "ExpireSession":
      // Only a live session can go idle; the sweep must not overwrite archived or deleted.
      if (state.status !== "active") {
        return refuse(state, "expire", `only an active session can expire; this one is ${state.status}`)
      }
      // A TTL of 0 means sessions never expire, so a sweep with it has nothing to do.
      if (!(Number.isFinite(command.ttlHours) && command.ttlHours > 0)) {
        return invalid(
          "ttlHours",
          `must be more than 0 hours (0 means never expire), got ${command.ttlHours}`,
        )
      }
      return accept({ type: "SessionExpired", idleSince: command.idleSince, ttlHours: command.ttlHours })

    default:
      break
  }

  // Everything else writes content, checkpoints or rollbacks. Expiry only marks a session idle:
  // the next write reopens it, recorded as SessionReopened just before the write's own events,
  // and is decided as on the active session. Archived and deleted sessions stay read-only.
  switch (state.status) {
    case "active":
      return decideWrite(command, state)
    case "expired":
      return Result.map(
        decideWrite(command, { ...state, status: "active" }),
        (events): ReadonlyArray<SessionEvent> => [
          { type: "SessionReopened", command: command.type },
          ...events,
        ],
      )
    case "archived":
    case "deleted":
      return refuse(state, actionOf[command.type], closedReason(state.status))
  }
}

type WriteCommand = Exclude<SessionCommand, ArchiveSession | DeleteSession | ExpireSession>

/** Decides a write on an active session. */
const decideWrite = (command: WriteCommand, state: SessionSnapshot): SessionDecision => {
  switch (command.type) {
    case "UpdateSession": {
      const setsTitle = "title" in command
      const setsMetadata = command.metadata !== undefined
      if (!setsTitle && !setsMetadata) {
        return invalid("title, metadata", "an update needs a new title, new metadata or both")
      }
      return accept({
        type: "SessionUpdated",
        ...(setsTitle ? { title: command.title ?? null } : {}),
        ...(setsMetadata ? { metadata: command.metadata } : {}),
      })
    }

    case "AppendMessages": {
      if (command.messages.length === 0) return invalid("messages", "at least one message is needed")
      const seen = new Map<string, number>()
      for (const [index, message] of command.messages.entries()) {
        const earlier = seen.get(message.messageId)
        if (earlier !== undefined) {
          return invalid(
            `messages[${index}].messageId`,
            `message id ${message.messageId} is already used by messages[${earlier}]`,
          )
        }
        seen.set(message.messageId, index)
      }
      // seq continues the effective list, so after a rollback it reuses the seq of a reverted message.
      return accept(
        ...command.messages.map(
          (message, index): SessionEvent => ({
            type: "MessageAppended",
            messageId: message.messageId,
            seq: state.counts.messages + index + 1,
            role: message.role,
            content: message.content,
            metadata: message.metadata,
            createdAt: message.createdAt,
          }),
        ),
      )
    }

    case "AddRevision":
      return accept({
        type: "RevisionAdded",
        revisionId: command.revisionId,
        number: state.counts.revisions + 1,
        ir: command.ir,
        note: command.note,
      })

    case "RecordDraft": {
      const n = command.revisionNumber
      // A draft may only cite a revision a reader can see now (reverted ones are not visible).
      if (n !== null && !(Number.isInteger(n) && n >= 1 && n <= state.counts.revisions)) {
        return refuse(
          state,
          actionOf.RecordDraft,
          state.counts.revisions === 0
            ? `the draft names revision ${n}, but the session has no revisions`
            : `the draft names revision ${n}, but the session's revisions are 1 to ${state.counts.revisions}`,
        )
      }
      return accept({
        type: "DraftRecorded",
        draftId: command.draftId,
        code: command.code,
        language: command.language,
        valid: command.valid,
        metrics: command.metrics,
        revisionNumber: n,
      })
    }

    case "ResolveHole":
      // A hole may be re-resolved, but never to a less confident answer than the one in force.
      if (command.current !== null && command.confidence < command.current.confidence) {
        return refuse(
          state,
          actionOf.ResolveHole,
          `hole ${command.holeId} is resolved with confidence ${command.current.confidence}; ` +
            `a new resolution needs at least that, not ${command.confidence}`,
        )
      }
      return accept({
        type: "HoleResolved",
        resolutionId: command.resolutionId,
        holeId: command.holeId,
        value: command.value,
        confidence: command.confidence,
      })

    case "AttachFile":
      // Another owner's file is invisible to this session's owner: not found, rather than forbidden.
      if (command.file.ownerId !== state.ownerId) {
        return Result.fail(new NotFound({ entity: "file", id: command.file.fileId }))
      }
      if (command.attached) {
        return refuse(state, actionOf.AttachFile, `file ${command.file.fileId} is already attached`)
      }
      return accept({
        type: "FileAttached",
        fileId: command.file.fileId,
        sha256: command.file.sha256,
        name: command.file.name,
        mimeType: command.file.mimeType,
        size: command.file.size,
      })

    case "DetachFile":
      if (!command.attached) return Result.fail(new NotFound({ entity: "attached file", id: command.fileId }))
      return accept({ type: "FileDetached", fileId: command.fileId })

    case "RecordToolRun":
      return accept({
        type: "ToolRunRecorded",
        toolRunId: command.toolRunId,
        tool: command.tool,
        input: command.input,
        output: command.output,
        status: command.status,
        durationMs: command.durationMs,
        error: command.error,
      })

    case "CreateCheckpoint":
      // The checkpoint marks the state as it is now: the version and cursor of the latest event.
      return accept({
        type: "CheckpointCreated",
        checkpointId: command.checkpointId,
        version: state.version,
        cursor: state.headCursor,
        label: command.label,
      })

    case "RollBack": {
      const t = command.toVersion
      // Rolling back goes strictly backwards to a version the session has had.
      if (!(Number.isInteger(t) && t >= 1 && t < state.version)) {
        return invalid(
          "toVersion",
          state.version === 1
            ? `cannot roll back to version ${t}: session ${state.id} is at version 1, with nothing before it`
            : `cannot roll back to version ${t}: it must be between 1 and ${state.version - 1} (session ${state.id} is at version ${state.version})`,
        )
      }
      return accept({ type: "SessionRolledBack", toVersion: t, checkpointId: command.checkpointId })
    }

    default:
      return absurd(command)
  }
}
