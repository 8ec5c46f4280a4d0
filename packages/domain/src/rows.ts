/**
 * The shapes the domain returns (and the API serves), and the mapping from read-model rows.
 * Timestamps are ISO-8601 strings and ids are UUID strings, so every shape is plain JSON.
 */

import {
  ArtifactKind as ArtifactKindSchema,
  JobState as JobStateSchema,
  JsonObject as JsonObjectSchema,
  MessageRole as MessageRoleSchema,
  SandboxStatus as SandboxStatusSchema,
  SessionStatus as SessionStatusSchema,
  TaskStatus as TaskStatusSchema,
  ToolRunStatus as ToolRunStatusSchema,
} from "@chronicle/events"
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
import { Schema } from "effect"
import type { MessageLarge, ToolRunLarge } from "./large-values.ts"
import {
  decoder,
  Num,
  num,
  numOrNull,
  OptionalJson,
  OptionalNum,
  OptionalTime,
  type Row,
  Text,
  Time,
} from "./row-schema.ts"

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
  value instanceof Date
    ? value.toISOString()
    : new Date(typeof value === "number" ? value : String(value)).toISOString()
export const isoOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : iso(value)

// ----- rows as the drivers return them: each shape decoded with its Schema (row-schema.ts) -----

const decodeSession = decoder(
  "session",
  "id",
  Schema.Struct({
    id: Schema.String,
    owner_id: Schema.String,
    title: Text,
    status: SessionStatusSchema,
    metadata: JsonObjectSchema,
    version: Num,
    parent_id: Text,
    parent_version: OptionalNum,
    external_key: Text,
    message_count: Num,
    revision_count: Num,
    draft_count: Num,
    hole_count: Num,
    file_count: Num,
    tool_run_count: Num,
    created_at: Time,
    updated_at: Time,
    last_activity_at: Time,
  }),
)

export const toSession = (row: Row): Session => {
  const r = decodeSession(row)
  return {
    id: r.id,
    ownerId: r.owner_id,
    title: r.title ?? null,
    status: r.status,
    metadata: r.metadata,
    version: num(r.version),
    parentId: r.parent_id ?? null,
    parentVersion: numOrNull(r.parent_version),
    externalKey: r.external_key ?? null,
    counts: {
      messages: num(r.message_count),
      revisions: num(r.revision_count),
      drafts: num(r.draft_count),
      holes: num(r.hole_count),
      files: num(r.file_count),
      toolRuns: num(r.tool_run_count),
    },
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    lastActivityAt: iso(r.last_activity_at),
  }
}

const decodeMessage = decoder(
  "message",
  "message_id",
  Schema.Struct({
    message_id: Schema.String,
    session_id: Schema.String,
    seq: Num,
    role: MessageRoleSchema,
    content: Schema.String,
    metadata: JsonObjectSchema,
    version: Num,
    created_at: Time,
  }),
)

export const toMessage = (row: Row): Message => {
  const r = decodeMessage(row)
  return {
    id: r.message_id,
    sessionId: r.session_id,
    seq: num(r.seq),
    role: r.role,
    content: r.content,
    metadata: r.metadata,
    version: num(r.version),
    createdAt: iso(r.created_at),
  }
}

const decodeRevision = decoder(
  "revision",
  "revision_id",
  Schema.Struct({
    revision_id: Schema.String,
    session_id: Schema.String,
    number: Num,
    ir: Schema.Json,
    note: Text,
    version: Num,
    created_at: Time,
  }),
)

export const toRevision = (row: Row): Revision => {
  const r = decodeRevision(row)
  return {
    id: r.revision_id,
    sessionId: r.session_id,
    number: num(r.number),
    ir: r.ir,
    note: r.note ?? null,
    version: num(r.version),
    createdAt: iso(r.created_at),
  }
}

const decodeDraft = decoder(
  "draft",
  "draft_id",
  Schema.Struct({
    draft_id: Schema.String,
    session_id: Schema.String,
    code: Schema.String,
    language: Schema.String,
    valid: Schema.Boolean,
    metrics: JsonObjectSchema,
    revision_number: OptionalNum,
    version: Num,
    created_at: Time,
  }),
)

export const toDraft = (row: Row): Draft => {
  const r = decodeDraft(row)
  return {
    id: r.draft_id,
    sessionId: r.session_id,
    code: r.code,
    language: r.language,
    valid: r.valid,
    metrics: r.metrics,
    revisionNumber: numOrNull(r.revision_number),
    version: num(r.version),
    createdAt: iso(r.created_at),
  }
}

const decodeHoleResolution = decoder(
  "hole resolution",
  "resolution_id",
  Schema.Struct({
    resolution_id: Schema.String,
    session_id: Schema.String,
    hole_id: Schema.String,
    value: Schema.Json,
    confidence: Num,
    version: Num,
    created_at: Time,
  }),
)

export const toHoleResolution = (row: Row): HoleResolution => {
  const r = decodeHoleResolution(row)
  return {
    id: r.resolution_id,
    sessionId: r.session_id,
    holeId: r.hole_id,
    value: r.value,
    confidence: num(r.confidence),
    version: num(r.version),
    createdAt: iso(r.created_at),
  }
}

const decodeToolRun = decoder(
  "tool run",
  "tool_run_id",
  Schema.Struct({
    tool_run_id: Schema.String,
    session_id: Schema.String,
    tool: Schema.String,
    input: Schema.Json,
    output: Schema.Json,
    status: ToolRunStatusSchema,
    duration_ms: OptionalNum,
    error: Text,
    version: Num,
    created_at: Time,
  }),
)

export const toToolRun = (row: Row): ToolRun => {
  const r = decodeToolRun(row)
  return {
    id: r.tool_run_id,
    sessionId: r.session_id,
    tool: r.tool,
    input: r.input,
    output: r.output,
    status: r.status,
    durationMs: numOrNull(r.duration_ms),
    error: r.error ?? null,
    version: num(r.version),
    createdAt: iso(r.created_at),
  }
}

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

const decodeCheckpoint = decoder(
  "checkpoint",
  "id",
  Schema.Struct({
    id: Schema.String,
    session_id: Schema.String,
    version: Num,
    label: Text,
    cursor: Schema.String,
    created_at: Time,
  }),
)

export const toCheckpoint = (row: Row): Checkpoint => {
  const r = decodeCheckpoint(row)
  return {
    id: r.id,
    sessionId: r.session_id,
    version: num(r.version),
    label: r.label ?? null,
    cursor: r.cursor,
    createdAt: iso(r.created_at),
  }
}

const decodeFileInfo = decoder(
  "file",
  "id",
  Schema.Struct({
    id: Schema.String,
    owner_id: Schema.String,
    sha256: Schema.String,
    name: Schema.String,
    mime_type: Schema.String,
    size: Num,
    created_at: Time,
  }),
)

export const toFileInfo = (row: Row): FileInfo => {
  const r = decodeFileInfo(row)
  return {
    id: r.id,
    ownerId: r.owner_id,
    sha256: r.sha256,
    name: r.name,
    mimeType: r.mime_type,
    size: num(r.size),
    createdAt: iso(r.created_at),
  }
}

const decodeAttachedFile = decoder(
  "attached file",
  "file_id",
  Schema.Struct({
    file_id: Schema.String,
    session_id: Schema.String,
    sha256: Schema.String,
    name: Schema.String,
    mime_type: Schema.String,
    size: Num,
    version: Num,
    attached_at: Time,
  }),
)

export const toAttachedFile = (row: Row): AttachedFile => {
  const r = decodeAttachedFile(row)
  return {
    fileId: r.file_id,
    sessionId: r.session_id,
    sha256: r.sha256,
    name: r.name,
    mimeType: r.mime_type,
    size: num(r.size),
    version: num(r.version),
    attachedAt: iso(r.attached_at),
  }
}

const decodeJob = decoder(
  "job",
  "id",
  Schema.Struct({
    id: Schema.String,
    owner_id: Schema.String,
    session_id: Text,
    parent_job_id: Text,
    job_type: Schema.String,
    state: JobStateSchema,
    input: Schema.Json,
    output: OptionalJson,
    error: Text,
    error_details: OptionalJson,
    progress: OptionalNum,
    progress_message: Text,
    version: Num,
    created_at: Time,
    updated_at: Time,
    started_at: OptionalTime,
    finished_at: OptionalTime,
  }),
)

export const toJob = (row: Row): Job => {
  const r = decodeJob(row)
  return {
    id: r.id,
    ownerId: r.owner_id,
    sessionId: r.session_id ?? null,
    parentJobId: r.parent_job_id ?? null,
    type: r.job_type,
    state: r.state,
    input: r.input,
    output: r.output ?? null,
    error: r.error ?? null,
    errorDetails: r.error_details ?? null,
    progress: numOrNull(r.progress),
    progressMessage: r.progress_message ?? null,
    version: num(r.version),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
  }
}

const decodeTask = decoder(
  "task",
  "task_id",
  Schema.Struct({
    task_id: Schema.String,
    job_id: Schema.String,
    name: Schema.String,
    status: TaskStatusSchema,
    input: Schema.Json,
    output: OptionalJson,
    error: Text,
    progress: OptionalNum,
    created_at: Time,
    updated_at: Time,
  }),
)

export const toTask = (row: Row): Task => {
  const r = decodeTask(row)
  return {
    id: r.task_id,
    jobId: r.job_id,
    name: r.name,
    status: r.status,
    input: r.input,
    output: r.output ?? null,
    error: r.error ?? null,
    progress: numOrNull(r.progress),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  }
}

const decodeArtifact = decoder(
  "artifact",
  "artifact_id",
  Schema.Struct({
    artifact_id: Schema.String,
    job_id: Schema.String,
    session_id: Text,
    file_id: Schema.String,
    kind: ArtifactKindSchema,
    name: Schema.String,
    sha256: Schema.String,
    mime_type: Schema.String,
    size: Num,
    created_at: Time,
  }),
)

export const toArtifact = (row: Row): Artifact => {
  const r = decodeArtifact(row)
  return {
    id: r.artifact_id,
    jobId: r.job_id,
    sessionId: r.session_id ?? null,
    fileId: r.file_id,
    kind: r.kind,
    name: r.name,
    sha256: r.sha256,
    mimeType: r.mime_type,
    size: num(r.size),
    createdAt: iso(r.created_at),
  }
}

const decodeSandbox = decoder(
  "sandbox",
  "id",
  Schema.Struct({
    id: Schema.String,
    session_id: Schema.String,
    owner_id: Schema.String,
    provider: Schema.String,
    external_id: Schema.String,
    url: Text,
    status: SandboxStatusSchema,
    metadata: JsonObjectSchema,
    created_at: Time,
    updated_at: Time,
    started_at: OptionalTime,
    ended_at: OptionalTime,
  }),
)

export const toSandbox = (row: Row): Sandbox => {
  const r = decodeSandbox(row)
  return {
    id: r.id,
    sessionId: r.session_id,
    ownerId: r.owner_id,
    provider: r.provider,
    externalId: r.external_id,
    url: r.url ?? null,
    status: r.status,
    metadata: r.metadata,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    startedAt: isoOrNull(r.started_at),
    endedAt: isoOrNull(r.ended_at),
  }
}
