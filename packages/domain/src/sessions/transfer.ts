/**
 * A session in and out: its export (the session and its events, paged, pinned to one version)
 * and the import of a conversation kept elsewhere as a new session.
 */
import { type ChronicleEvent, decideSession, type SessionSnapshot } from "@chronicle/events"
import type { JsonObject } from "@chronicle/events/types"
import { Database, EventStore, EventTooLarge } from "@chronicle/store"
import { Effect } from "effect"
import { v7 as uuidv7 } from "uuid"
import { type Actor, ownerFor } from "../actor.ts"
import { budgetParam, decodePageCursor, type PageRequest, pageLimit, toPage } from "../paging.ts"
import { sessionStreamId } from "../queries.ts"
import type { Session } from "../rows.ts"
import { currentSession, loadSession } from "../session/load.ts"
import { appendChunk, type CreateSessionInput, createStream, firstEvent, keyTaken } from "./start.ts"

export interface ImportedMessage {
  readonly role: "user" | "assistant" | "system" | "tool"
  readonly content: string
  readonly metadata?: JsonObject | undefined
  readonly createdAt?: string | null | undefined
}

export interface ImportConversationInput extends CreateSessionInput {
  readonly messages: ReadonlyArray<ImportedMessage>
}

export interface SessionExport {
  readonly format: "chronicle.session.v1"
  /** The session at the version the export is pinned to (the first page's current one). */
  readonly session: Session
  readonly events: ReadonlyArray<{
    readonly eventId: string
    readonly version: number
    readonly type: string
    readonly schemaVersion: number
    readonly data: unknown
    readonly metadata: unknown
    readonly recordedAt: string
  }>
  /**
   * Pass as `cursor` for the next page; null on the last. Every page of one export ends at
   * the version the first page saw, so events appended meanwhile are not half-exported.
   */
  readonly nextCursor: string | null
}

/**
 * Events per append of an import: the store's batch limit. An import of up to 5,000 messages
 * is several appends in one transaction.
 */
export const IMPORT_CHUNK = 500

export const exportSession = Effect.fn("Sessions.export")(function* (
  actor: Actor,
  id: string,
  page: PageRequest,
) {
  const store = yield* EventStore
  const limit = yield* pageLimit(page.limit)
  // [the next version to export, the version the export is pinned to]
  const at = yield* decodePageCursor(page.cursor, ["number", "number"] as const)
  const session =
    at === null ? yield* currentSession(actor, id) : (yield* loadSession(actor, id, at[1])).session
  const pinned = at?.[1] ?? session.version
  const read = yield* store
    .readStream(sessionStreamId(id), {
      fromVersion: at?.[0] ?? 1,
      toVersion: pinned,
      limit: limit + 1,
      maxBytes: budgetParam(page.maxBytes) ?? undefined,
    })
    .pipe(Effect.orDie)
  const events = toPage(
    read.events,
    limit,
    (e) => ({
      eventId: e.eventId,
      version: e.version,
      type: e.type,
      schemaVersion: e.schemaVersion,
      data: e.data,
      metadata: e.metadata,
      recordedAt: e.recordedAt.toISOString(),
    }),
    (e) => [e.version + 1, pinned],
    "asc",
    page.maxBytes,
    read.nextVersion !== undefined,
  )
  return {
    format: "chronicle.session.v1",
    session,
    events: events.items,
    nextCursor: events.nextCursor,
  } satisfies SessionExport
})

export const importConversation = Effect.fn("Sessions.importConversation")(function* (
  actor: Actor,
  input: ImportConversationInput,
) {
  const db = yield* Database
  const ownerId = yield* ownerFor(actor)
  const key = input.externalKey ?? null
  const started = firstEvent(ownerId, input)
  const sessionId = started.sessionId
  const snapshot: SessionSnapshot = {
    id: sessionId,
    ownerId,
    status: "active",
    version: 1,
    title: started.title,
    metadata: started.metadata,
    counts: { messages: 0, revisions: 0, drafts: 0, holes: 0, files: 0, toolRuns: 0 },
    headCursor: "",
  }
  const messages =
    input.messages.length === 0
      ? []
      : yield* Effect.fromResult(
          decideSession(
            {
              type: "AppendMessages",
              messages: input.messages.map((m) => ({
                messageId: uuidv7(),
                role: m.role,
                content: m.content,
                metadata: m.metadata ?? {},
                createdAt: m.createdAt ?? null,
              })),
            },
            snapshot,
          ),
        )
  // One transaction of appends of at most IMPORT_CHUNK events each (the store's batch
  // limit): the import is all or nothing, and a reader never sees half of it.
  const events: ReadonlyArray<ChronicleEvent> = [started, ...messages]
  const chunks = Array.from({ length: Math.ceil(events.length / IMPORT_CHUNK) }, (_, i) =>
    events.slice(i * IMPORT_CHUNK, (i + 1) * IMPORT_CHUNK),
  )
  yield* db
    .transaction(
      Effect.forEach(
        chunks,
        (chunk, i) =>
          (i === 0
            ? createStream(actor, ownerId, sessionId, chunk)
            : appendChunk(actor, sessionId, chunk, i * IMPORT_CHUNK)
          ).pipe(
            // Named as the caller wrote it: events[k] of chunk i is messages[i * chunk + k - 1]
            // (the first event, the session's start, holds its title and metadata).
            Effect.catchTag("EventTooLarge", (e) => {
              const k = Number(/^events\[(\d+)\]/.exec(e.path)?.[1] ?? Number.NaN)
              const index = i * IMPORT_CHUNK + k - 1
              const path = !Number.isInteger(k) ? e.path : index < 0 ? "metadata" : `messages[${index}]`
              return Effect.fail(new EventTooLarge({ ...e, path }))
            }),
          ),
        { discard: true },
      ),
    )
    .pipe(
      // A database failure inside it is not the caller's doing.
      Effect.catchTag("SqlError", Effect.die),
      Effect.catchTag("VersionConflict", () => Effect.fail(keyTaken(sessionId, key, "import"))),
    )
  return yield* currentSession(actor, sessionId)
})
