/** The session commands, and what deciding one yields. */
import type { Result } from "effect"
import type { SessionEvent } from "../catalog.ts"
import type { InvalidCommand, InvalidTransition, NotFound } from "../errors.ts"
import type { Json, JsonObject, MessageRole, SessionStatus, ToolRunStatus } from "../primitives.ts"
import type { SessionCounts } from "./views.ts"

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
