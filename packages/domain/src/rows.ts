/**
 * The shapes the domain returns (and the API serves), and the mapping from read-model rows.
 * Timestamps are ISO-8601 strings and ids are UUID strings, so every shape is plain JSON.
 */
import type {
  ArtifactKind,
  JobState,
  Json,
  JsonObject,
  MessageRole,
  SandboxStatus,
  SessionStatus,
  TaskStatus,
  ToolRunStatus,
} from "@chronicle/events/types"
import type { MessageLarge, ToolRunLarge } from "./large-values.ts"

export interface Counts {
  readonly messages: number
  readonly revisions: number
  readonly drafts: number
  readonly holes: number
  readonly files: number
  readonly toolRuns: number
}

export interface Session {
  readonly id: string
  readonly ownerId: string
  readonly title: string | null
  readonly status: SessionStatus
  readonly metadata: JsonObject
  /** The stream version this view reflects: the current one, or the as-of version. */
  readonly version: number
  readonly parentId: string | null
  readonly parentVersion: number | null
  readonly externalKey: string | null
  readonly counts: Counts
  readonly createdAt: string
  readonly updatedAt: string
  readonly lastActivityAt: string
}

export interface Message {
  readonly id: string
  readonly sessionId: string
  readonly seq: number
  readonly role: MessageRole
  readonly content: string
  readonly metadata: JsonObject
  readonly version: number
  readonly createdAt: string
  /** The values stored in the blob table, with their sizes: left out (`""`, `{}`) when asked to. */
  readonly large?: MessageLarge
}

export interface Revision {
  readonly id: string
  readonly sessionId: string
  readonly number: number
  readonly ir: Json
  readonly note: string | null
  readonly version: number
  readonly createdAt: string
}

export interface Draft {
  readonly id: string
  readonly sessionId: string
  readonly code: string
  readonly language: string
  readonly valid: boolean
  readonly metrics: JsonObject
  readonly revisionNumber: number | null
  readonly version: number
  readonly createdAt: string
}

export interface HoleResolution {
  readonly id: string
  readonly sessionId: string
  readonly holeId: string
  readonly value: Json
  readonly confidence: number
  readonly version: number
  readonly createdAt: string
}

export interface ToolRun {
  readonly id: string
  readonly sessionId: string
  readonly tool: string
  readonly input: Json
  readonly output: Json
  readonly status: ToolRunStatus
  readonly durationMs: number | null
  readonly error: string | null
  readonly version: number
  readonly createdAt: string
  /** The values stored in the blob table, with their sizes: left out (null) when asked to. */
  readonly large?: ToolRunLarge
}

export interface Checkpoint {
  readonly id: string
  readonly sessionId: string
  /** The session version the checkpoint marks. */
  readonly version: number
  readonly label: string | null
  readonly cursor: string
  readonly createdAt: string
}

export interface FileInfo {
  readonly id: string
  readonly ownerId: string
  readonly sha256: string
  readonly name: string
  readonly mimeType: string
  readonly size: number
  readonly createdAt: string
}

export interface AttachedFile {
  readonly fileId: string
  readonly sessionId: string
  readonly sha256: string
  readonly name: string
  readonly mimeType: string
  readonly size: number
  readonly version: number
  readonly attachedAt: string
}

export interface Job {
  readonly id: string
  readonly ownerId: string
  readonly sessionId: string | null
  readonly parentJobId: string | null
  readonly type: string
  readonly state: JobState
  readonly input: Json
  readonly output: Json
  readonly error: string | null
  readonly errorDetails: Json
  readonly progress: number | null
  readonly progressMessage: string | null
  readonly version: number
  readonly createdAt: string
  readonly updatedAt: string
  readonly startedAt: string | null
  readonly finishedAt: string | null
}

export interface Task {
  readonly id: string
  readonly jobId: string
  readonly name: string
  readonly status: TaskStatus
  readonly input: Json
  readonly output: Json
  readonly error: string | null
  readonly progress: number | null
  readonly createdAt: string
  readonly updatedAt: string
}

export interface Artifact {
  readonly id: string
  readonly jobId: string
  readonly sessionId: string | null
  readonly fileId: string
  readonly kind: ArtifactKind
  readonly name: string
  readonly sha256: string
  readonly mimeType: string
  readonly size: number
  readonly createdAt: string
}

export interface Sandbox {
  readonly id: string
  readonly sessionId: string
  readonly ownerId: string
  readonly provider: string
  readonly externalId: string
  readonly url: string | null
  readonly status: SandboxStatus
  readonly metadata: JsonObject
  readonly createdAt: string
  readonly updatedAt: string
  readonly startedAt: string | null
  readonly endedAt: string | null
}

export interface TimelineEntry {
  readonly eventId: string
  readonly version: number
  readonly type: string
  readonly data: Json
  readonly metadata: JsonObject
  readonly recordedAt: string
  /** True for a content event on a branch a rollback abandoned. */
  readonly reverted: boolean
}

/** A page of a cursor-paginated list. `nextCursor` is null at the end. */
export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
}

export const iso = (value: unknown): string =>
  value instanceof Date ? value.toISOString() : new Date(value as string).toISOString()
export const isoOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : iso(value)

type Row = Record<string, unknown>

export const toSession = (r: Row): Session => ({
  id: r.id as string,
  ownerId: r.owner_id as string,
  title: (r.title as string | null) ?? null,
  status: r.status as SessionStatus,
  metadata: r.metadata as JsonObject,
  version: Number(r.version),
  parentId: (r.parent_id as string | null) ?? null,
  parentVersion:
    r.parent_version === null || r.parent_version === undefined ? null : Number(r.parent_version),
  externalKey: (r.external_key as string | null) ?? null,
  counts: {
    messages: Number(r.message_count),
    revisions: Number(r.revision_count),
    drafts: Number(r.draft_count),
    holes: Number(r.hole_count),
    files: Number(r.file_count),
    toolRuns: Number(r.tool_run_count),
  },
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
  lastActivityAt: iso(r.last_activity_at),
})

export const toMessage = (r: Row): Message => ({
  id: r.message_id as string,
  sessionId: r.session_id as string,
  seq: Number(r.seq),
  role: r.role as MessageRole,
  content: r.content as string,
  metadata: r.metadata as JsonObject,
  version: Number(r.version),
  createdAt: iso(r.created_at),
})

export const toRevision = (r: Row): Revision => ({
  id: r.revision_id as string,
  sessionId: r.session_id as string,
  number: Number(r.number),
  ir: r.ir as Json,
  note: (r.note as string | null) ?? null,
  version: Number(r.version),
  createdAt: iso(r.created_at),
})

export const toDraft = (r: Row): Draft => ({
  id: r.draft_id as string,
  sessionId: r.session_id as string,
  code: r.code as string,
  language: r.language as string,
  valid: r.valid as boolean,
  metrics: r.metrics as JsonObject,
  revisionNumber: r.revision_number === null ? null : Number(r.revision_number),
  version: Number(r.version),
  createdAt: iso(r.created_at),
})

export const toHoleResolution = (r: Row): HoleResolution => ({
  id: r.resolution_id as string,
  sessionId: r.session_id as string,
  holeId: r.hole_id as string,
  value: r.value as Json,
  confidence: Number(r.confidence),
  version: Number(r.version),
  createdAt: iso(r.created_at),
})

export const toToolRun = (r: Row): ToolRun => ({
  id: r.tool_run_id as string,
  sessionId: r.session_id as string,
  tool: r.tool as string,
  input: r.input as Json,
  output: r.output as Json,
  status: r.status as ToolRunStatus,
  durationMs: r.duration_ms === null ? null : Number(r.duration_ms),
  error: (r.error as string | null) ?? null,
  version: Number(r.version),
  createdAt: iso(r.created_at),
})

// ----- the same shapes from the events that created them (no read of the read model) --------

/** When the log recorded an event, as the read models hold it. */
interface Recorded {
  readonly version: number
  readonly recordedAt: string
}

interface MessageEvent {
  readonly messageId: string
  readonly seq: number
  readonly role: MessageRole
  readonly content: string
  readonly metadata: JsonObject
  readonly createdAt: string | null
}

export const messageOf = (sessionId: string, e: MessageEvent, r: Recorded): Message => ({
  id: e.messageId,
  sessionId,
  seq: e.seq,
  role: e.role,
  content: e.content,
  metadata: e.metadata,
  version: r.version,
  createdAt: e.createdAt === null ? r.recordedAt : iso(e.createdAt),
})

export const revisionOf = (
  sessionId: string,
  e: {
    readonly revisionId: string
    readonly number: number
    readonly ir: Json
    readonly note: string | null
  },
  r: Recorded,
): Revision => ({
  id: e.revisionId,
  sessionId,
  number: e.number,
  ir: e.ir,
  note: e.note,
  version: r.version,
  createdAt: r.recordedAt,
})

export const draftOf = (
  sessionId: string,
  e: {
    readonly draftId: string
    readonly code: string
    readonly language: string
    readonly valid: boolean
    readonly metrics: JsonObject
    readonly revisionNumber: number | null
  },
  r: Recorded,
): Draft => ({
  id: e.draftId,
  sessionId,
  code: e.code,
  language: e.language,
  valid: e.valid,
  metrics: e.metrics,
  revisionNumber: e.revisionNumber,
  version: r.version,
  createdAt: r.recordedAt,
})

export const holeResolutionOf = (
  sessionId: string,
  e: {
    readonly resolutionId: string
    readonly holeId: string
    readonly value: Json
    readonly confidence: number
  },
  r: Recorded,
): HoleResolution => ({
  id: e.resolutionId,
  sessionId,
  holeId: e.holeId,
  value: e.value,
  confidence: e.confidence,
  version: r.version,
  createdAt: r.recordedAt,
})

export const toolRunOf = (
  sessionId: string,
  e: {
    readonly toolRunId: string
    readonly tool: string
    readonly input: Json
    readonly output: Json
    readonly status: ToolRunStatus
    readonly durationMs: number | null
    readonly error: string | null
  },
  r: Recorded,
): ToolRun => ({
  id: e.toolRunId,
  sessionId,
  tool: e.tool,
  input: e.input,
  output: e.output,
  status: e.status,
  durationMs: e.durationMs,
  error: e.error,
  version: r.version,
  createdAt: r.recordedAt,
})

export const toCheckpoint = (r: Row): Checkpoint => ({
  id: r.id as string,
  sessionId: r.session_id as string,
  version: Number(r.version),
  label: (r.label as string | null) ?? null,
  cursor: r.cursor as string,
  createdAt: iso(r.created_at),
})

export const toFileInfo = (r: Row): FileInfo => ({
  id: r.id as string,
  ownerId: r.owner_id as string,
  sha256: r.sha256 as string,
  name: r.name as string,
  mimeType: r.mime_type as string,
  size: Number(r.size),
  createdAt: iso(r.created_at),
})

export const toAttachedFile = (r: Row): AttachedFile => ({
  fileId: r.file_id as string,
  sessionId: r.session_id as string,
  sha256: r.sha256 as string,
  name: r.name as string,
  mimeType: r.mime_type as string,
  size: Number(r.size),
  version: Number(r.version),
  attachedAt: iso(r.attached_at),
})

export const toJob = (r: Row): Job => ({
  id: r.id as string,
  ownerId: r.owner_id as string,
  sessionId: (r.session_id as string | null) ?? null,
  parentJobId: (r.parent_job_id as string | null) ?? null,
  type: r.job_type as string,
  state: r.state as JobState,
  input: r.input as Json,
  output: (r.output as Json | undefined) ?? null,
  error: (r.error as string | null) ?? null,
  errorDetails: (r.error_details as Json | undefined) ?? null,
  progress: r.progress === null || r.progress === undefined ? null : Number(r.progress),
  progressMessage: (r.progress_message as string | null) ?? null,
  version: Number(r.version),
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
  startedAt: isoOrNull(r.started_at),
  finishedAt: isoOrNull(r.finished_at),
})

export const toTask = (r: Row): Task => ({
  id: r.task_id as string,
  jobId: r.job_id as string,
  name: r.name as string,
  status: r.status as TaskStatus,
  input: r.input as Json,
  output: (r.output as Json | undefined) ?? null,
  error: (r.error as string | null) ?? null,
  progress: r.progress === null || r.progress === undefined ? null : Number(r.progress),
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
})

export const toArtifact = (r: Row): Artifact => ({
  id: r.artifact_id as string,
  jobId: r.job_id as string,
  sessionId: (r.session_id as string | null) ?? null,
  fileId: r.file_id as string,
  kind: r.kind as ArtifactKind,
  name: r.name as string,
  sha256: r.sha256 as string,
  mimeType: r.mime_type as string,
  size: Number(r.size),
  createdAt: iso(r.created_at),
})

export const toSandbox = (r: Row): Sandbox => ({
  id: r.id as string,
  sessionId: r.session_id as string,
  ownerId: r.owner_id as string,
  provider: r.provider as string,
  externalId: r.external_id as string,
  url: (r.url as string | null) ?? null,
  status: r.status as SandboxStatus,
  metadata: r.metadata as JsonObject,
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
  startedAt: isoOrNull(r.started_at),
  endedAt: isoOrNull(r.ended_at),
})
