/** What the session fold and index answer: a session as of a version, and its rows. */
import type { SessionEvent } from "../catalog.ts"
import type { Json, JsonObject, MessageRole, SessionStatus, ToolRunStatus } from "../primitives.ts"
import type { RecordedEvent } from "../recorded.ts"

/** A session event as read from the `session-<id>` stream. */
export type SessionEventRecord = RecordedEvent<SessionEvent>

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
