/**
 * The command path (../command.ts) for a session's stream: the state is the session's snapshot,
 * loaded from the read model or left by the last command, and `decideSession` decides.
 */
import {
  decideSession,
  type Forbidden,
  type InvalidCommand,
  type InvalidTransition,
  type NotFound,
  type SessionCommand,
  type SessionSnapshot,
} from "@chronicle/events"
import type { BatchTooLarge, EventTooLarge, IdempotencyConflict, VersionConflict } from "@chronicle/store"
import { Effect } from "effect"
import { type Actor, ensureVisible } from "../actor.ts"
import { type CommandOptions, type RecordedDomainEvent, runCommand } from "../command.ts"
import { type LoadedSession, sessionStreamId } from "../queries.ts"
import { loadSession } from "./load.ts"

/** Every way a session command or read can fail. */
export type SessionsError =
  | NotFound
  | InvalidCommand
  | InvalidTransition
  | Forbidden
  | VersionConflict
  | BatchTooLarge
  | EventTooLarge
  | IdempotencyConflict

export const snapshotOf = (loaded: LoadedSession): SessionSnapshot => ({
  id: loaded.session.id,
  ownerId: loaded.session.ownerId,
  status: loaded.session.status,
  version: loaded.session.version,
  title: loaded.session.title,
  metadata: loaded.session.metadata,
  counts: loaded.session.counts,
  headCursor: loaded.headCursor,
})

/**
 * The session as the content events of a command leave it, for the next command to decide on
 * without reading it back; undefined (read it again) after anything that is more than a count,
 * a title or a status (a rollback recomputes the effective history).
 */
export const advanceSession = (
  state: SessionSnapshot,
  events: ReadonlyArray<RecordedDomainEvent>,
): SessionSnapshot | undefined => {
  let next = state
  for (const { event, version, globalPosition } of events) {
    const counts = next.counts
    const moved = { ...next, version, headCursor: String(globalPosition) }
    switch (event.type) {
      case "MessageAppended":
        next = { ...moved, counts: { ...counts, messages: counts.messages + 1 } }
        break
      case "RevisionAdded":
        next = { ...moved, counts: { ...counts, revisions: counts.revisions + 1 } }
        break
      case "DraftRecorded":
        next = { ...moved, counts: { ...counts, drafts: counts.drafts + 1 } }
        break
      case "HoleResolved":
        next = { ...moved, counts: { ...counts, holes: counts.holes + 1 } }
        break
      case "ToolRunRecorded":
        next = { ...moved, counts: { ...counts, toolRuns: counts.toolRuns + 1 } }
        break
      case "FileAttached":
        next = { ...moved, counts: { ...counts, files: counts.files + 1 } }
        break
      case "FileDetached":
        next = { ...moved, counts: { ...counts, files: counts.files - 1 } }
        break
      case "CheckpointCreated":
        next = moved
        break
      case "SessionUpdated":
        next = {
          ...moved,
          ...(event.title !== undefined ? { title: event.title } : {}),
          ...(event.metadata !== undefined ? { metadata: event.metadata } : {}),
        }
        break
      case "SessionArchived":
        next = { ...moved, status: "archived" }
        break
      case "SessionDeleted":
        next = { ...moved, status: "deleted" }
        break
      case "SessionExpired":
        next = { ...moved, status: "expired" }
        break
      case "SessionReopened":
        next = { ...moved, status: "active" }
        break
      case "SessionPurged":
        next = { ...moved, status: "deleted" }
        break
      default:
        return undefined
    }
  }
  return next
}

/**
 * Runs a session command: load, decide with the pure decider, append expecting the loaded
 * version, retrying on a concurrent append. `build` turns the snapshot into the command,
 * looking up any facts the decider needs.
 */
export const executeSessionCommand = <E, R>(
  actor: Actor,
  id: string,
  build: (snapshot: SessionSnapshot) => Effect.Effect<SessionCommand, E, R>,
  options?: CommandOptions,
  /** What the caller asked for (the idempotency key's fingerprint). */
  input?: unknown,
) =>
  runCommand({
    actor,
    streamId: sessionStreamId(id),
    load: Effect.map(loadSession(actor, id), snapshotOf),
    authorize: (state: SessionSnapshot) => ensureVisible(actor, state.ownerId, "session", id),
    advance: advanceSession,
    build,
    decide: decideSession,
    options,
    input,
  })
