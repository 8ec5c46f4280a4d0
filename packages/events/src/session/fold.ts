/**
 * `foldSession` folds a session's effective history into a `SessionView`. It is the oracle the
 * SQL read models are compared against, so it is written to be plainly right rather than fast:
 * compute E(X), then apply, in version order, every event that counts as of X. `timeline`
 * marks the content events of abandoned branches as reverted.
 */
import { isContentEvent } from "../catalog.ts"
import type { JsonObject, SessionStatus } from "../primitives.ts"
import { assertContiguous } from "../recorded.ts"
import type { SessionForked } from "./event-of.ts"
import { assertVersionInRange, effectiveVersions, inVersionRanges } from "./history.ts"
import type {
  AttachedFileRow,
  CheckpointRow,
  DraftRow,
  HoleResolutionRow,
  MessageRow,
  ResolveParent,
  RevisionRow,
  SessionEventRecord,
  SessionFoldOptions,
  SessionView,
  ToolRunRow,
} from "./views.ts"

export interface Building {
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

export const emptyBuilding = (): Building => ({
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
export const forkedContent = (parent: SessionView) => ({
  messages: parent.messages.map((row) => ({ ...row, version: 1 })),
  revisions: parent.revisions.map((row) => ({ ...row, version: 1 })),
  drafts: parent.drafts.map((row) => ({ ...row, version: 1 })),
  holeResolutions: parent.holeResolutions.map((row) => ({ ...row, version: 1 })),
  files: parent.files.map((row) => ({ ...row, version: 1 })),
  toolRuns: parent.toolRuns.map((row) => ({ ...row, version: 1 })),
})

export const resolveForkParent = (event: SessionForked, parent: ResolveParent | undefined): SessionView => {
  if (parent === undefined) {
    throw new Error(
      `session ${event.sessionId} is a fork of ${event.parentId}; folding it needs the parent's state`,
    )
  }
  return parent(event.parentId, event.atVersion)
}

/** Applies one event that counts as of the read version. */
export const evolve = (
  state: Building,
  record: SessionEventRecord,
  parent: ResolveParent | undefined,
): void => {
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

export const absurd = (value: never): never => {
  throw new Error(`unexpected event ${JSON.stringify(value)}`)
}

export const byVersion = <R extends { readonly version: number }>(a: R, b: R) => a.version - b.version

export const finish = (state: Building, version: number, asOf: number): SessionView => {
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

export const assertFirstEvent = (events: ReadonlyArray<SessionEventRecord>): void => {
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
