import { createHash } from "node:crypto"
import {
  type Forbidden,
  type InvalidCommand,
  NotFound,
  PayloadTooLarge,
  toStored,
  UnsupportedMediaType,
} from "@chronicle/events"
import { isUuid } from "@chronicle/store"
import { Context, Effect, Layer } from "effect"
import { v7 as uuidv7 } from "uuid"
import { type Actor, ensureVisible, listScope, ownerFor } from "./actor.ts"
import { mimeAllowed } from "./config.ts"
import { decodeBlobRow } from "./large-values.ts"
import { cursorTime, decodePageCursor, type PageRequest, pageLimit, toPage } from "./paging.ts"
import { fileStreamId } from "./queries.ts"
import { pageKey } from "./row-schema.ts"
import { type FileInfo, type Page, toFileInfo } from "./rows.ts"
import { layerServices } from "./services.ts"

export interface PutFileInput {
  readonly content: Uint8Array
  readonly name: string
  readonly mimeType: string
}

export interface FilesService {
  /** Stores the bytes once under their SHA-256 and records the file. */
  readonly put: (actor: Actor, input: PutFileInput) => Effect.Effect<FileInfo, FilesError>
  readonly get: (actor: Actor, id: string) => Effect.Effect<FileInfo, FilesError>
  readonly content: (
    actor: Actor,
    id: string,
  ) => Effect.Effect<{ readonly file: FileInfo; readonly content: Uint8Array }, FilesError>
  readonly list: (actor: Actor, page: PageRequest) => Effect.Effect<Page<FileInfo>, FilesError>
}

export type FilesError = NotFound | Forbidden | PayloadTooLarge | UnsupportedMediaType | InvalidCommand

const FILE_COLUMNS = "id::text, owner_id::text, sha256, name, mime_type, size, created_at"
const fileKey = pageKey("file", { cursor_at: "text", id: "text" })

/** Files: content-addressed bytes (stored once) and the file records that name them. */
export class Files extends Context.Service<Files, FilesService>()("@chronicle/domain/Files") {
  static readonly layer = Layer.effect(
    Files,
    Effect.gen(function* () {
      const { db, store, config, provide } = yield* layerServices
      const query = (text: string, params: ReadonlyArray<unknown>) =>
        db.query(text, params).pipe(Effect.orDie)

      const get = Effect.fn("Files.get")(function* (actor: Actor, id: string) {
        if (!isUuid(id)) return yield* new NotFound({ entity: "file", id })
        const rows = yield* query(`select ${FILE_COLUMNS} from chronicle.files where id = $1::uuid`, [id])
        if (rows[0] === undefined) return yield* new NotFound({ entity: "file", id })
        const file = toFileInfo(rows[0])
        yield* ensureVisible(actor, file.ownerId, "file", id)
        return file
      })

      const put = Effect.fn("Files.put")(function* (actor: Actor, input: PutFileInput) {
        const ownerId = yield* ownerFor(actor)
        if (input.content.byteLength > config.maxFileBytes) {
          return yield* new PayloadTooLarge({
            what: "The file",
            size: input.content.byteLength,
            limit: config.maxFileBytes,
          })
        }
        if (!mimeAllowed(input.mimeType, config.allowedMimeTypes)) {
          return yield* new UnsupportedMediaType({
            mimeType: input.mimeType,
            allowed: [...config.allowedMimeTypes],
          })
        }
        const sha256 = createHash("sha256").update(input.content).digest("hex")
        const fileId = uuidv7()
        const event = {
          type: "FileUploaded" as const,
          fileId,
          ownerId,
          sha256,
          name: input.name,
          mimeType: input.mimeType,
          size: input.content.byteLength,
        }
        yield* db
          .transaction(
            Effect.gen(function* () {
              // The same bytes uploaded twice are stored once.
              yield* query(
                `insert into chronicle.blobs (sha256, size, content) values ($1, $2, $3::bytea)
               on conflict (sha256) do nothing`,
                [sha256, input.content.byteLength, input.content],
              )
              yield* store.append(fileStreamId(fileId), [toStored(event)], {
                expectedVersion: "no_stream",
                ownerId,
              })
            }),
          )
          .pipe(Effect.orDie)
        return yield* get(actor, fileId)
      })

      const content = Effect.fn("Files.content")(function* (actor: Actor, id: string) {
        const file = yield* get(actor, id)
        const rows = yield* query("select sha256, content from chronicle.blobs where sha256 = $1", [
          file.sha256,
        ])
        // Only an erasure of the owner (chronicle purge --owner) deletes a file's bytes.
        if (rows[0] === undefined) return yield* new NotFound({ entity: "file content (erased)", id })
        return { file, content: new Uint8Array(decodeBlobRow(rows[0]).content) }
      })

      const list = Effect.fn("Files.list")(function* (actor: Actor, page: PageRequest) {
        const limit = yield* pageLimit(page.limit)
        const after = yield* decodePageCursor(page.cursor, ["timestamp", "uuid"] as const)
        const rows = yield* query(
          `select ${FILE_COLUMNS}, ${cursorTime("created_at")} as cursor_at from chronicle.files
            where ($1::uuid is null or owner_id = $1::uuid)
              and ($2::text is null or (created_at, id) < ($2::text::timestamptz, $3::uuid))
            order by created_at desc, id desc limit $4`,
          [listScope(actor), after?.[0] ?? null, after?.[1] ?? null, limit + 1],
        )
        return toPage(rows, limit, toFileInfo, fileKey, "asc", page.maxBytes)
      })

      return Files.of({
        put: (a, i) => provide(put(a, i)),
        get: (a, id) => provide(get(a, id)),
        content: (a, id) => provide(content(a, id)),
        list: (a, p) => provide(list(a, p)),
      })
    }),
  )
}
