/**
 * The event catalog. Every event type is defined once, here, as an Effect Schema whose
 * `type` field is its tag; the TypeScript types are derived from the schemas. In the log
 * the `type` is the event's type column and the other fields are its `data`.
 *
 * Streams:
 * - `session-<id>`  a session's whole story (SessionEvent)
 * - `job-<id>`      a background job, its tasks and the artifacts it produced (JobEvent)
 * - `file-<id>`     a stored file: name, MIME type, size and the SHA-256 of its bytes (FileEvent)
 * - `sandbox-<id>`  a remote execution sandbox attached to a session (SandboxEvent)
 * - `graph-<id>`    an agent graph's thread: its checkpoints and pending writes (GraphEvent, graph.ts)
 *
 * Field conventions: ids are lower-case UUIDs; optional values are `null`, never absent,
 * so that a stored event always has the same keys; timestamps are ISO-8601 strings.
 */
import { Schema } from "effect"
import { GraphEvent } from "./graph.ts"
import {
  ArtifactKind,
  Fraction,
  IsoTimestamp,
  Json,
  JsonObject,
  MessageRole,
  MimeType,
  Name,
  NonNegativeInt,
  PositiveInt,
  SandboxStatus,
  Sha256,
  TaskStatus,
  Text,
  Title,
  ToolRunStatus,
  Uuid,
} from "./primitives.ts"

// ----- session stream ---------------------------------------------------------------------

/** First event of a new session. */
export const SessionStarted = Schema.Struct({
  type: Schema.tag("SessionStarted"),
  sessionId: Uuid,
  ownerId: Uuid,
  title: Title,
  metadata: JsonObject,
  /** A client-chosen key, unique per owner (a thread or continuation id), or null. */
  externalKey: Schema.NullOr(Name(200)),
})

/**
 * First event of a session forked from another. Its content starts as the parent's
 * effective content as of `atVersion`; `title` and `metadata` are the parent's as of then
 * unless the fork overrode them.
 */
export const SessionForked = Schema.Struct({
  type: Schema.tag("SessionForked"),
  sessionId: Uuid,
  ownerId: Uuid,
  parentId: Uuid,
  atVersion: PositiveInt,
  checkpointId: Schema.NullOr(Uuid),
  title: Title,
  metadata: JsonObject,
  externalKey: Schema.NullOr(Name(200)),
})

/** Changes the title, the metadata (replaced whole), or both. An absent field is unchanged; a null title clears it. */
export const SessionUpdated = Schema.Struct({
  type: Schema.tag("SessionUpdated"),
  title: Schema.optionalKey(Title),
  metadata: Schema.optionalKey(JsonObject),
})

export const SessionArchived = Schema.Struct({
  type: Schema.tag("SessionArchived"),
  reason: Schema.NullOr(Text(1000)),
})

/** Soft deletion: the events stay; the session reads as deleted and takes no more appends. */
export const SessionDeleted = Schema.Struct({
  type: Schema.tag("SessionDeleted"),
  reason: Schema.NullOr(Text(1000)),
})

/** Appended by the retention sweep when a session was idle longer than the TTL. */
export const SessionExpired = Schema.Struct({
  type: Schema.tag("SessionExpired"),
  idleSince: IsoTimestamp,
  ttlHours: Schema.Finite,
})

/**
 * Appended by the first write to an expired session, just before that write's own events:
 * expiry marks a session idle, it never ends the conversation. `command` names the write
 * (AppendMessages, RecordToolRun, RollBack, …). Archived and deleted sessions are never reopened.
 */
export const SessionReopened = Schema.Struct({
  type: Schema.tag("SessionReopened"),
  command: Name(100),
})

/**
 * Recorded by an erasure (`chronicle purge`, the retention policy): the payloads of versions 1
 * to `throughVersion` were redacted, irreversibly, and the session reads as deleted. Only the
 * service can purge; the event is the audit record of it.
 */
export const SessionPurged = Schema.Struct({
  type: Schema.tag("SessionPurged"),
  reason: Schema.NullOr(Text(1000)),
  throughVersion: PositiveInt,
})

export const MessageAppended = Schema.Struct({
  type: Schema.tag("MessageAppended"),
  messageId: Uuid,
  /** 1-based position in the session's effective message list when it was appended. */
  seq: PositiveInt,
  role: MessageRole,
  /** `""` when the content is kept in the blob store (see `metadata["$chronicle.large"]`). */
  content: Schema.String,
  /**
   * The message's metadata. A message with a large value also holds
   * `"$chronicle.large": { content?, metadata? }`, references `{ sha256, size, mediaType }` into
   * the blob store (the metadata is then only that key when the metadata itself is large).
   */
  metadata: JsonObject,
  /** When the message was originally written (imports); null means when it was recorded. */
  createdAt: Schema.NullOr(IsoTimestamp),
})

/** An IR revision, numbered 1..n among the session's effective revisions. */
export const RevisionAdded = Schema.Struct({
  type: Schema.tag("RevisionAdded"),
  revisionId: Uuid,
  number: PositiveInt,
  ir: Json,
  note: Schema.NullOr(Text(10_000)),
})

export const DraftRecorded = Schema.Struct({
  type: Schema.tag("DraftRecorded"),
  draftId: Uuid,
  code: Schema.String,
  language: Name(100),
  valid: Schema.Boolean,
  /** Validation metrics: test counts, timings, scores. */
  metrics: JsonObject,
  /** The number of the effective revision this draft was generated from, if any. */
  revisionNumber: Schema.NullOr(PositiveInt),
})

export const HoleResolved = Schema.Struct({
  type: Schema.tag("HoleResolved"),
  resolutionId: Uuid,
  holeId: Name(200),
  value: Json,
  confidence: Fraction,
})

export const FileAttached = Schema.Struct({
  type: Schema.tag("FileAttached"),
  fileId: Uuid,
  sha256: Sha256,
  name: Name(255),
  mimeType: MimeType,
  size: NonNegativeInt,
})

export const FileDetached = Schema.Struct({
  type: Schema.tag("FileDetached"),
  fileId: Uuid,
})

export const ToolRunRecorded = Schema.Struct({
  type: Schema.tag("ToolRunRecorded"),
  toolRunId: Uuid,
  tool: Name(200),
  /** A value kept in the blob store is `{ "$chronicle.large": { sha256, size, mediaType } }`. */
  input: Json,
  output: Json,
  status: ToolRunStatus,
  durationMs: Schema.NullOr(NonNegativeInt),
  error: Schema.NullOr(Text(10_000)),
})

/**
 * Marks the session's state at stream version `version` (the version just before this
 * event) so it can be read as of, rolled back to or forked from. `cursor` is the global
 * cursor of the event at `version`.
 */
export const CheckpointCreated = Schema.Struct({
  type: Schema.tag("CheckpointCreated"),
  checkpointId: Uuid,
  version: PositiveInt,
  cursor: Schema.String,
  label: Schema.NullOr(Text(200)),
})

/**
 * Makes the effective history the effective history as of `toVersion`, followed by the
 * events after this one. Nothing is deleted from the log.
 */
export const SessionRolledBack = Schema.Struct({
  type: Schema.tag("SessionRolledBack"),
  toVersion: PositiveInt,
  checkpointId: Schema.NullOr(Uuid),
})

// ----- job stream -------------------------------------------------------------------------

export const JobCreated = Schema.Struct({
  type: Schema.tag("JobCreated"),
  jobId: Uuid,
  ownerId: Uuid,
  jobType: Name(100),
  input: Json,
  parentJobId: Schema.NullOr(Uuid),
  sessionId: Schema.NullOr(Uuid),
})

export const JobStarted = Schema.Struct({
  type: Schema.tag("JobStarted"),
  worker: Schema.NullOr(Text(200)),
})

export const JobProgressed = Schema.Struct({
  type: Schema.tag("JobProgressed"),
  progress: Fraction,
  message: Schema.NullOr(Text(2000)),
})

export const JobPaused = Schema.Struct({
  type: Schema.tag("JobPaused"),
  reason: Schema.NullOr(Text(1000)),
})

export const JobResumed = Schema.Struct({
  type: Schema.tag("JobResumed"),
})

export const JobCompleted = Schema.Struct({
  type: Schema.tag("JobCompleted"),
  output: Json,
})

export const JobFailed = Schema.Struct({
  type: Schema.tag("JobFailed"),
  error: Text(10_000),
  details: Json,
})

export const JobCancelled = Schema.Struct({
  type: Schema.tag("JobCancelled"),
  reason: Schema.NullOr(Text(1000)),
})

export const TaskAdded = Schema.Struct({
  type: Schema.tag("TaskAdded"),
  taskId: Uuid,
  name: Name(200),
  input: Json,
})

/** A task's new status; output, error and progress replace the previous values. */
export const TaskUpdated = Schema.Struct({
  type: Schema.tag("TaskUpdated"),
  taskId: Uuid,
  status: TaskStatus,
  output: Json,
  error: Schema.NullOr(Text(10_000)),
  progress: Schema.NullOr(Fraction),
})

/** A file the job produced: generated code, a log, an output. */
export const ArtifactRecorded = Schema.Struct({
  type: Schema.tag("ArtifactRecorded"),
  artifactId: Uuid,
  fileId: Uuid,
  kind: ArtifactKind,
  name: Name(255),
  sha256: Sha256,
  mimeType: MimeType,
  size: NonNegativeInt,
})

/**
 * Recorded by an erasure of the job's owner or of its session (`chronicle purge`): the payloads
 * of versions 1 to `throughVersion` were redacted, irreversibly (inputs, outputs, errors,
 * progress messages, task inputs and outputs, artifact names blanked; ids, states, versions and
 * times kept). The job keeps its state. Only the service can purge.
 */
export const JobPurged = Schema.Struct({
  type: Schema.tag("JobPurged"),
  reason: Schema.NullOr(Text(1000)),
  throughVersion: PositiveInt,
})

// ----- file stream ------------------------------------------------------------------------

/** A stored file. The bytes live once in the blob table under their SHA-256. */
export const FileUploaded = Schema.Struct({
  type: Schema.tag("FileUploaded"),
  fileId: Uuid,
  ownerId: Uuid,
  sha256: Sha256,
  name: Name(255),
  mimeType: MimeType,
  size: NonNegativeInt,
})

/**
 * Recorded by an erasure of the file's owner: the upload's name was redacted and the bytes are
 * deleted unless another, unpurged file has the same. Only the service can purge.
 */
export const FilePurged = Schema.Struct({
  type: Schema.tag("FilePurged"),
  reason: Schema.NullOr(Text(1000)),
})

// ----- sandbox stream ---------------------------------------------------------------------

/** A remote execution sandbox (an E2B instance, say) starting for a session. */
export const SandboxRegistered = Schema.Struct({
  type: Schema.tag("SandboxRegistered"),
  sandboxId: Uuid,
  sessionId: Uuid,
  ownerId: Uuid,
  provider: Name(100),
  externalId: Name(500),
  url: Schema.NullOr(Text(2000)),
  metadata: JsonObject,
})

/** starting → running → stopped | failed | expired (starting may also go straight to an end). */
export const SandboxStatusChanged = Schema.Struct({
  type: Schema.tag("SandboxStatusChanged"),
  status: SandboxStatus,
  reason: Schema.NullOr(Text(1000)),
  url: Schema.NullOr(Text(2000)),
})

/**
 * Recorded by an erasure of the sandbox's owner or of its session (`chronicle purge`): the
 * payloads of versions 1 to `throughVersion` were redacted (metadata, URLs, reasons; ids,
 * statuses, versions and times kept). The sandbox keeps its status. Only the service can purge.
 */
export const SandboxPurged = Schema.Struct({
  type: Schema.tag("SandboxPurged"),
  reason: Schema.NullOr(Text(1000)),
  throughVersion: PositiveInt,
})

// ----- unions -----------------------------------------------------------------------------

export const SessionEvent = Schema.Union([
  SessionStarted,
  SessionForked,
  SessionUpdated,
  SessionArchived,
  SessionDeleted,
  SessionExpired,
  SessionReopened,
  SessionPurged,
  MessageAppended,
  RevisionAdded,
  DraftRecorded,
  HoleResolved,
  FileAttached,
  FileDetached,
  ToolRunRecorded,
  CheckpointCreated,
  SessionRolledBack,
]).pipe(Schema.toTaggedUnion("type"))
export type SessionEvent = typeof SessionEvent.Type

export const JobEvent = Schema.Union([
  JobCreated,
  JobStarted,
  JobProgressed,
  JobPaused,
  JobResumed,
  JobCompleted,
  JobFailed,
  JobCancelled,
  TaskAdded,
  TaskUpdated,
  ArtifactRecorded,
  JobPurged,
]).pipe(Schema.toTaggedUnion("type"))
export type JobEvent = typeof JobEvent.Type

export const FileEvent = Schema.Union([FileUploaded, FilePurged]).pipe(Schema.toTaggedUnion("type"))
export type FileEvent = typeof FileEvent.Type

export const SandboxEvent = Schema.Union([SandboxRegistered, SandboxStatusChanged, SandboxPurged]).pipe(
  Schema.toTaggedUnion("type"),
)
export type SandboxEvent = typeof SandboxEvent.Type

export const ChronicleEvent = Schema.Union([
  ...SessionEvent.members,
  ...JobEvent.members,
  ...FileEvent.members,
  ...SandboxEvent.members,
  ...GraphEvent.members,
]).pipe(Schema.toTaggedUnion("type"))
export type ChronicleEvent = typeof ChronicleEvent.Type
export type EventType = ChronicleEvent["type"]

/** Session events that are content: a rollback reverts them. The rest are never reverted. */
export const CONTENT_EVENT_TYPES = [
  "SessionUpdated",
  "MessageAppended",
  "RevisionAdded",
  "DraftRecorded",
  "HoleResolved",
  "FileAttached",
  "FileDetached",
] as const satisfies ReadonlyArray<SessionEvent["type"]>

export const isContentEvent = (type: string): boolean =>
  (CONTENT_EVENT_TYPES as ReadonlyArray<string>).includes(type)

/** Stream categories (the part of a stream id before the UUID). */
export const STREAM_CATEGORIES = ["session", "job", "file", "sandbox", "graph"] as const
export type StreamCategory = (typeof STREAM_CATEGORIES)[number]
