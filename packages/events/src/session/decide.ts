/**
 * The session deciders: `startSession` and `forkSession` begin a session; `decideSession`
 * decides the lifecycle commands (archive, delete, expire) itself and hands every other
 * command, on a session open to writes, to `decideWrite` (decide-write.ts).
 */
import { Result } from "effect"
import type { SessionEvent } from "../catalog.ts"
import type { InvalidCommand, InvalidTransition } from "../errors.ts"
import type { JsonObject } from "../primitives.ts"
import type { SessionCommand, SessionDecision, SessionSnapshot } from "./commands.ts"
import { decideWrite } from "./decide-write.ts"
import { accept, invalid, refuse } from "./decision.ts"
import type { SessionForked, SessionStarted } from "./event-of.ts"

/** Why an archived or deleted session takes no appends (an expired one is reopened instead). */
export const closedReason = (status: "archived" | "deleted"): string => {
  switch (status) {
    case "archived":
      return "the session is archived, and an archived session is read-only"
    case "deleted":
      return "the session is deleted, and a deleted session is read-only"
  }
}

/** What each content command is called in an error message: "Cannot <action> session <id> …". */
export const actionOf: Record<
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
