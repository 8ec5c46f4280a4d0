/** Decides the writes on an active session: content, attachments, tool runs, checkpoints, rollbacks. */
import { Result } from "effect"
import type { SessionEvent } from "../catalog.ts"
import { NotFound } from "../errors.ts"
import type {
  ArchiveSession,
  DeleteSession,
  ExpireSession,
  SessionCommand,
  SessionDecision,
  SessionSnapshot,
} from "./commands.ts"
import { actionOf } from "./decide.ts"
import { accept, invalid, refuse } from "./decision.ts"
import { absurd } from "./fold.ts"

export type WriteCommand = Exclude<SessionCommand, ArchiveSession | DeleteSession | ExpireSession>

/** Decides a write on an active session. */
export const decideWrite = (command: WriteCommand, state: SessionSnapshot): SessionDecision => {
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
