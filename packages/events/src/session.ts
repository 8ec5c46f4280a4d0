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
export { indexSession, type SessionIndex } from "./session/as-of-index.ts"
export type {
  AddRevision,
  AppendMessages,
  ArchiveSession,
  AttachFile,
  CreateCheckpoint,
  DeleteSession,
  DetachFile,
  ExpireSession,
  NewMessage,
  RecordDraft,
  RecordToolRun,
  ResolveHole,
  RollBack,
  SessionCommand,
  SessionDecision,
  SessionError,
  SessionSnapshot,
  StoredFile,
  UpdateSession,
} from "./session/commands.ts"
export { decideSession, type ForkSessionInput, forkSession, startSession } from "./session/decide.ts"
export { foldSession, type TimelineEntry, timeline } from "./session/fold.ts"
export { effectiveVersions, inVersionRanges } from "./session/history.ts"
export type {
  AttachedFileRow,
  CheckpointRow,
  DraftRow,
  HoleResolutionRow,
  MessageRow,
  ResolveParent,
  RevisionRow,
  SessionCounts,
  SessionEventRecord,
  SessionFoldOptions,
  SessionView,
  ToolRunRow,
  VersionRange,
} from "./session/views.ts"
