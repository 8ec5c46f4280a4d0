/** Files attached to a session: attach, detach, and the attached files now or as of a version. */
import { NotFound, type SessionCommand } from "@chronicle/events"
import { isUuid } from "@chronicle/store"
import { Effect } from "effect"
import type { Actor } from "../actor.ts"
import type { CommandOptions } from "../command.ts"
import { decodePageCursor, pageLimit, toPage } from "../paging.ts"
import { EFFECTIVE, effectiveAttachments } from "../queries.ts"
import { pageKey } from "../row-schema.ts"
import { toAttachedFile, toFileInfo } from "../rows.ts"
import { executeSessionCommand } from "../session/command.ts"
import { loadSession, resolveAsOf } from "../session/load.ts"
import { type ListInput, query } from "./read.ts"
import { one } from "./recorded.ts"

const isAttached = (sessionId: string, fileId: string) =>
  query(
    `select 1 from chronicle.sessions s
      where s.id = $1::uuid and exists (${effectiveAttachments("s.effective")} and f.file_id = $2::uuid)`,
    [sessionId, fileId],
  ).pipe(Effect.map((rows) => rows.length > 0))

export const attachFile = Effect.fn("Content.attachFile")(function* (
  actor: Actor,
  sessionId: string,
  fileId: string,
  options?: CommandOptions,
) {
  if (!isUuid(fileId)) return yield* new NotFound({ entity: "file", id: fileId })
  yield* executeSessionCommand(
    actor,
    sessionId,
    (snapshot) =>
      Effect.gen(function* () {
        const files = yield* query(
          `select id::text, owner_id::text, sha256, name, mime_type, size, created_at
             from chronicle.files where id = $1::uuid`,
          [fileId],
        )
        const file = files[0] === undefined ? undefined : toFileInfo(files[0])
        // Only the session owner's files can be attached; others' files do not exist for it.
        if (file === undefined || file.ownerId !== snapshot.ownerId) {
          return yield* new NotFound({ entity: "file", id: fileId })
        }
        return {
          type: "AttachFile",
          file: {
            fileId,
            ownerId: file.ownerId,
            sha256: file.sha256,
            name: file.name,
            mimeType: file.mimeType,
            size: file.size,
          },
          attached: yield* isAttached(sessionId, fileId),
        } satisfies SessionCommand
      }),
    options,
  )
  const rows = yield* query(
    `select f.*, f.session_id::text as session_id, f.file_id::text as file_id
       from chronicle.sessions s cross join lateral (${effectiveAttachments("s.effective")} and f.file_id = $2::uuid) f
      where s.id = $1::uuid`,
    [sessionId, fileId],
  )
  return yield* one(rows.map(toAttachedFile))
})

export const detachFile = Effect.fn("Content.detachFile")(function* (
  actor: Actor,
  sessionId: string,
  fileId: string,
  options?: CommandOptions,
) {
  if (!isUuid(fileId)) return yield* new NotFound({ entity: "file", id: fileId })
  yield* executeSessionCommand(
    actor,
    sessionId,
    () =>
      Effect.map(
        isAttached(sessionId, fileId),
        (attached): SessionCommand => ({ type: "DetachFile", fileId, attached }),
      ),
    options,
  )
})

const attachedFileKey = pageKey("attached file", { version: "number", file_id: "text" })

export const listAttachedFiles = Effect.fn("Content.listAttachedFiles")(function* (
  actor: Actor,
  sessionId: string,
  input: ListInput,
) {
  yield* loadSession(actor, sessionId)
  const asOf = yield* resolveAsOf(actor, sessionId, input.asOf)
  const limit = yield* pageLimit(input.limit)
  // A fork copies every attachment to version 1, so the version alone does not order a page.
  const after = yield* decodePageCursor(input.cursor, ["number", "uuid"] as const)
  const rows = yield* query(
    `select f.*, f.session_id::text as session_id, f.file_id::text as file_id
       from chronicle.sessions s
       cross join lateral (${effectiveAttachments(EFFECTIVE)}) f
      where s.id = $1::uuid and ($3::int is null or (f.version, f.file_id) > ($3::int, $5::uuid))
      order by f.version, f.file_id
      limit $4`,
    [sessionId, asOf, after?.[0] ?? null, limit + 1, after?.[1] ?? null],
  )
  return toPage(rows, limit, toAttachedFile, attachedFileKey, "asc", input.maxBytes)
})
