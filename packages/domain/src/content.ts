import { type ChronicleEvent, InvalidCommand, NotFound, type SessionCommand } from "@chronicle/events"
import type { Json, JsonObject, MessageRole, ToolRunStatus } from "@chronicle/events/types"
import { isUuid } from "@chronicle/store"
import { Context, Effect, Layer } from "effect"
import { v7 as uuidv7 } from "uuid"
import { type Actor, ensureVisible } from "./actor.ts"
import type { CommandOptions, CommandResult, RecordedDomainEvent } from "./command.ts"
import {
  type BlobContents,
  jsonRef,
  LARGE_KEY,
  type LargeContent,
  loadBlobs,
  messageRefs,
  type PendingBlob,
  putBlobs,
  reservedKeyIn,
  resolveJson,
  resolveMessage,
  storeJson,
  storeMessage,
} from "./large-values.ts"
import {
  budgeted,
  budgetParam,
  decodePageCursor,
  type PageOrder,
  type PageRequest,
  pageLimit,
  ROW_OVERHEAD_BYTES,
  toPage,
} from "./paging.ts"
import { EFFECTIVE, effectiveAttachments } from "./queries.ts"
import {
  type AttachedFile,
  type Draft,
  draftOf,
  type HoleResolution,
  holeResolutionOf,
  type Message,
  messageOf,
  type Page,
  type Revision,
  revisionOf,
  type ToolRun,
  toAttachedFile,
  toDraft,
  toHoleResolution,
  toMessage,
  toolRunOf,
  toRevision,
  toToolRun,
} from "./rows.ts"
import { layerServices } from "./services.ts"
import { type AsOf, executeSessionCommand, loadSession, resolveAsOf, type SessionsError } from "./sessions.ts"

export interface NewMessage {
  readonly role: MessageRole
  readonly content: string
  readonly metadata?: JsonObject | undefined
}

export interface RevisionInput {
  readonly ir: Json
  readonly note?: string | null
}

export interface DraftInput {
  readonly code: string
  readonly language: string
  readonly valid: boolean
  readonly metrics?: JsonObject
  /** The number of the effective revision the draft came from. */
  readonly revisionNumber?: number | null
}

export interface HoleInput {
  readonly holeId: string
  readonly value: Json
  readonly confidence: number
}

export interface ToolRunInput {
  readonly tool: string
  readonly input: Json
  readonly output?: Json
  readonly status: ToolRunStatus
  readonly durationMs?: number | null
  readonly error?: string | null
}

export interface ListInput extends PageRequest {
  readonly asOf?: AsOf | undefined
}

export interface LargeListInput extends ListInput {
  /** `include` (default): large values read back from the blob table; `omit`: their references only. */
  readonly largeContent?: LargeContent | undefined
}

export interface MessageListInput extends LargeListInput {
  /** `asc` (default): oldest first; `desc`: newest first, to read the end of a conversation. */
  readonly order?: PageOrder | undefined
}

export interface ContentService {
  readonly appendMessages: (
    actor: Actor,
    sessionId: string,
    messages: ReadonlyArray<NewMessage>,
    options?: CommandOptions,
  ) => Effect.Effect<ReadonlyArray<Message>, SessionsError>
  readonly listMessages: (
    actor: Actor,
    sessionId: string,
    input: MessageListInput,
  ) => Effect.Effect<Page<Message>, SessionsError>
  readonly addRevision: (
    actor: Actor,
    sessionId: string,
    input: RevisionInput,
    options?: CommandOptions,
  ) => Effect.Effect<Revision, SessionsError>
  readonly listRevisions: (
    actor: Actor,
    sessionId: string,
    input: ListInput,
  ) => Effect.Effect<Page<Revision>, SessionsError>
  readonly recordDraft: (
    actor: Actor,
    sessionId: string,
    input: DraftInput,
    options?: CommandOptions,
  ) => Effect.Effect<Draft, SessionsError>
  readonly listDrafts: (
    actor: Actor,
    sessionId: string,
    input: ListInput,
  ) => Effect.Effect<Page<Draft>, SessionsError>
  readonly resolveHole: (
    actor: Actor,
    sessionId: string,
    input: HoleInput,
    options?: CommandOptions,
  ) => Effect.Effect<HoleResolution, SessionsError>
  readonly listHoles: (
    actor: Actor,
    sessionId: string,
    input: ListInput & { readonly holeId?: string | undefined },
  ) => Effect.Effect<Page<HoleResolution>, SessionsError>
  readonly recordToolRun: (
    actor: Actor,
    sessionId: string,
    input: ToolRunInput,
    options?: CommandOptions,
  ) => Effect.Effect<ToolRun, SessionsError>
  readonly listToolRuns: (
    actor: Actor,
    sessionId: string,
    input: LargeListInput,
  ) => Effect.Effect<Page<ToolRun>, SessionsError>
  readonly attachFile: (
    actor: Actor,
    sessionId: string,
    fileId: string,
    options?: CommandOptions,
  ) => Effect.Effect<AttachedFile, SessionsError>
  readonly detachFile: (
    actor: Actor,
    sessionId: string,
    fileId: string,
    options?: CommandOptions,
  ) => Effect.Effect<void, SessionsError>
  readonly listAttachedFiles: (
    actor: Actor,
    sessionId: string,
    input: ListInput,
  ) => Effect.Effect<Page<AttachedFile>, SessionsError>
}

/** SQL: the size of the blob a stored value refers to at `path` under its marker (0 when none). */
const largeSize = (column: string, path: ReadonlyArray<string>) =>
  `coalesce((${column}->'${LARGE_KEY}'${path.map((p) => `->'${p}'`).join("")}->>'size')::bigint, 0)`

/** What is in a session: messages, revisions, drafts, hole resolutions, tool runs, attached files. */
export class Content extends Context.Service<Content, ContentService>()("@chronicle/domain/Content") {
  static readonly layer = Layer.effect(
    Content,
    Effect.gen(function* () {
      const { db, config, provide } = yield* layerServices

      const query = (text: string, params: ReadonlyArray<unknown>) =>
        db.query(text, params).pipe(Effect.orDie)

      /**
       * What a command created, from the events it recorded (for a retry: those the first attempt
       * recorded): the answer needs no read of the read model.
       */
      const created = <T extends ChronicleEvent["type"], A>(
        result: CommandResult,
        type: T,
        view: (event: Extract<ChronicleEvent, { readonly type: T }>, recorded: RecordedDomainEvent) => A,
      ): ReadonlyArray<A> =>
        result.events.flatMap((r) =>
          r.event.type === type ? [view(r.event as Extract<ChronicleEvent, { readonly type: T }>, r)] : [],
        )

      /**
       * Rows of `table` visible in the session now or as of a version, ordered and paged by
       * `keys`: a number (seq, number) or a version and an id (rows a fork copied all share
       * version 1; their UUIDv7 ids keep them in recording order). `desc` walks the same keys
       * backwards, newest first.
       */
      const listVisible = <A>(
        actor: Actor,
        sessionId: string,
        input: ListInput,
        spec: {
          readonly table: string
          readonly keys: readonly [string] | readonly [string, string]
          readonly map: (row: Record<string, unknown>) => A
          /** The row's size in JSON, estimated in SQL over `t` (its large columns). */
          readonly size: string
          /** Tool runs are never reverted: as of X they are those recorded at or before X. */
          readonly neverReverted?: boolean
          readonly holeId?: string | undefined
          /** Only for lists that take an `order`; the others list oldest first. */
          readonly order?: PageOrder | undefined
        },
      ) =>
        Effect.gen(function* () {
          // A current read checks the session in the page's own statement; an as-of read
          // resolves its version against the session first.
          const current = input.asOf === undefined
          if (!current) yield* loadSession(actor, sessionId)
          else if (!isUuid(sessionId)) return yield* new NotFound({ entity: "session", id: sessionId })
          const asOf = current ? null : yield* resolveAsOf(actor, sessionId, input.asOf)
          const limit = yield* pageLimit(input.limit)
          const order = spec.order ?? "asc"
          const [k1, k2] = spec.keys
          const after =
            k2 === undefined
              ? yield* decodePageCursor(input.cursor, ["number"] as const, spec.order)
              : yield* decodePageCursor(input.cursor, ["number", "uuid"] as const, spec.order)
          const visible = spec.neverReverted
            ? "($2::int is null or t.version <= $2::int)"
            : "s.effective @> t.version"
          const [beyond, direction] = order === "desc" ? ["<", " desc"] : [">", ""]
          const afterClause =
            k2 === undefined
              ? `($3::int is null or t.${k1} ${beyond} $3::int) and $4::text is null`
              : `($3::int is null or (t.${k1}, t.${k2}) ${beyond} ($3::int, $4::uuid))`
          const found = yield* query(
            // The session's owner, and the page: one row at least when the session exists (its
            // columns null when the page is empty). The effective set once per query (`offset 0`
            // keeps the planner from inlining it into a call per row: as of a version, that was a
            // refold per message). Rows past the byte budget never leave the database.
            budgeted(
              `select s.owner_id::text as session_owner, t.*, t.session_id::text as session_id${k2 ? `, t.${k2}::text as ${k2}` : ""},
                      ${spec.size} + ${ROW_OVERHEAD_BYTES} as page_bytes
                 from (select s.id, s.owner_id, ${spec.neverReverted ? "s.effective" : EFFECTIVE} as effective
                         from chronicle.sessions s where s.id = $1::uuid offset 0) s
                 left join lateral (
                   select t.* from chronicle.${spec.table} t
                    where t.session_id = s.id and ${visible} and ${afterClause}
                      ${spec.holeId === undefined ? "" : "and t.hole_id = $7::text"}
                    order by t.${k1}${direction}${k2 ? `, t.${k2}${direction}` : ""}
                    limit $5) t on true
                order by t.${k1}${direction}${k2 ? `, t.${k2}${direction}` : ""}`,
              "$6",
            ),
            [
              sessionId,
              asOf,
              after?.[0] ?? null,
              after?.[1] ?? null,
              limit + 1,
              budgetParam(input.maxBytes),
              ...(spec.holeId === undefined ? [] : [spec.holeId]),
            ],
          )
          if (found[0] === undefined) return yield* new NotFound({ entity: "session", id: sessionId })
          yield* ensureVisible(actor, found[0].session_owner as string, "session", sessionId)
          const rows = found.filter((r) => r.session_id !== null)
          return toPage(
            rows,
            limit,
            spec.map,
            (r) => (k2 === undefined ? [Number(r[k1])] : [Number(r[k1]), String(r[k2])]),
            order,
            input.maxBytes,
          )
        })

      const one = <A>(rows: ReadonlyArray<A>) =>
        rows[0] === undefined
          ? Effect.die("the command recorded no event of that kind")
          : Effect.succeed(rows[0])

      const reservedKey = (path: string) =>
        Effect.fail(
          new InvalidCommand({
            path,
            reason: `is reserved: Chronicle marks values it keeps in its blob store with "${LARGE_KEY}"`,
          }),
        )

      /** The blobs items refer to: those just written (`known`), the rest read from the table. */
      const blobsFor = (shas: ReadonlyArray<string>, known: ReadonlyArray<PendingBlob>) =>
        Effect.gen(function* () {
          const have = new Map(known.map((b) => [b.ref.sha256, b.bytes] as const))
          const loaded = yield* loadBlobs(shas.filter((sha) => !have.has(sha)))
          for (const [sha, bytes] of loaded) have.set(sha, bytes)
          return have as BlobContents
        })

      const resolveMessages = (
        messages: ReadonlyArray<Message>,
        largeContent: LargeContent,
        known: ReadonlyArray<PendingBlob> = [],
      ) =>
        Effect.gen(function* () {
          const shas = messages.flatMap((m) => {
            const { large } = messageRefs(m.metadata)
            return [large.content?.sha256, large.metadata?.sha256].filter((x): x is string => x !== undefined)
          })
          if (shas.length === 0) return messages
          const blobs = largeContent === "omit" ? null : yield* blobsFor(shas, known)
          return messages.map((m) => ({ ...m, ...resolveMessage(m, blobs) }))
        })

      const resolveToolRuns = (
        runs: ReadonlyArray<ToolRun>,
        largeContent: LargeContent,
        known: ReadonlyArray<PendingBlob> = [],
      ) =>
        Effect.gen(function* () {
          const shas = runs.flatMap((r) =>
            [jsonRef(r.input)?.sha256, jsonRef(r.output)?.sha256].filter((x): x is string => x !== undefined),
          )
          if (shas.length === 0) return runs
          const blobs = largeContent === "omit" ? null : yield* blobsFor(shas, known)
          return runs.map((r): ToolRun => {
            const input = jsonRef(r.input)
            const output = jsonRef(r.output)
            if (input === undefined && output === undefined) return r
            return {
              ...r,
              input: resolveJson(r.input, blobs),
              output: resolveJson(r.output, blobs),
              large: {
                ...(input === undefined ? {} : { input }),
                ...(output === undefined ? {} : { output }),
              },
            }
          })
        })

      const appendMessages = Effect.fn("Content.appendMessages")(function* (
        actor: Actor,
        sessionId: string,
        messages: ReadonlyArray<NewMessage>,
        options?: CommandOptions,
      ) {
        for (const [i, m] of messages.entries()) {
          const reserved = reservedKeyIn(m.metadata)
          if (reserved !== undefined) return yield* reservedKey(`messages[${i}].metadata.${reserved}`)
        }
        const stored = messages.map((m) =>
          storeMessage({ content: m.content, metadata: m.metadata ?? {} }, config.largeValueBytes),
        )
        const blobs = stored.flatMap((m) => m.blobs)
        yield* putBlobs(blobs)
        const result = yield* executeSessionCommand(
          actor,
          sessionId,
          () =>
            Effect.succeed<SessionCommand>({
              type: "AppendMessages",
              messages: messages.map((m, i) => ({
                messageId: uuidv7(),
                role: m.role,
                content: stored[i]!.content,
                metadata: stored[i]!.metadata,
                createdAt: null,
              })),
            }),
          options,
          { messages },
        )
        const recorded = created(result, "MessageAppended", (e, r) => messageOf(sessionId, e, r))
        return yield* resolveMessages(recorded, "include", blobs)
      })

      const addRevision = Effect.fn("Content.addRevision")(function* (
        actor: Actor,
        sessionId: string,
        input: RevisionInput,
        options?: CommandOptions,
      ) {
        const result = yield* executeSessionCommand(
          actor,
          sessionId,
          () =>
            Effect.succeed<SessionCommand>({
              type: "AddRevision",
              revisionId: uuidv7(),
              ir: input.ir,
              note: input.note ?? null,
            }),
          options,
          input,
        )
        return yield* one(created(result, "RevisionAdded", (e, r) => revisionOf(sessionId, e, r)))
      })

      const recordDraft = Effect.fn("Content.recordDraft")(function* (
        actor: Actor,
        sessionId: string,
        input: DraftInput,
        options?: CommandOptions,
      ) {
        const result = yield* executeSessionCommand(
          actor,
          sessionId,
          () =>
            Effect.succeed<SessionCommand>({
              type: "RecordDraft",
              draftId: uuidv7(),
              code: input.code,
              language: input.language,
              valid: input.valid,
              metrics: input.metrics ?? {},
              revisionNumber: input.revisionNumber ?? null,
            }),
          options,
          input,
        )
        return yield* one(created(result, "DraftRecorded", (e, r) => draftOf(sessionId, e, r)))
      })

      const resolveHole = Effect.fn("Content.resolveHole")(function* (
        actor: Actor,
        sessionId: string,
        input: HoleInput,
        options?: CommandOptions,
      ) {
        const result = yield* executeSessionCommand(
          actor,
          sessionId,
          () =>
            Effect.gen(function* () {
              // The hole's current effective resolution, which a new one may not undercut.
              const rows = yield* query(
                `select h.confidence from chronicle.sessions s
                   join chronicle.hole_resolutions h on h.session_id = s.id
                  where s.id = $1::uuid and h.hole_id = $2 and s.effective @> h.version
                  order by h.version desc, h.created_at desc limit 1`,
                [sessionId, input.holeId],
              )
              return {
                type: "ResolveHole",
                resolutionId: uuidv7(),
                holeId: input.holeId,
                value: input.value,
                confidence: input.confidence,
                current: rows[0] === undefined ? null : { confidence: Number(rows[0].confidence) },
              } satisfies SessionCommand
            }),
          options,
          input,
        )
        return yield* one(created(result, "HoleResolved", (e, r) => holeResolutionOf(sessionId, e, r)))
      })

      const recordToolRun = Effect.fn("Content.recordToolRun")(function* (
        actor: Actor,
        sessionId: string,
        input: ToolRunInput,
        options?: CommandOptions,
      ) {
        for (const [field, value] of [
          ["input", input.input],
          ["output", input.output],
        ] as const) {
          const reserved = reservedKeyIn(value)
          if (reserved !== undefined) return yield* reservedKey(`${field}.${reserved}`)
        }
        const storedInput = storeJson(input.input, config.largeValueBytes)
        const storedOutput = storeJson(input.output ?? null, config.largeValueBytes)
        const blobs = [storedInput.blob, storedOutput.blob].filter((b): b is PendingBlob => b !== undefined)
        yield* putBlobs(blobs)
        const result = yield* executeSessionCommand(
          actor,
          sessionId,
          () =>
            Effect.succeed<SessionCommand>({
              type: "RecordToolRun",
              toolRunId: uuidv7(),
              tool: input.tool,
              input: storedInput.value,
              output: storedOutput.value,
              status: input.status,
              durationMs: input.durationMs ?? null,
              error: input.error ?? null,
            }),
          options,
          input,
        )
        const run = yield* one(created(result, "ToolRunRecorded", (e, r) => toolRunOf(sessionId, e, r)))
        return (yield* resolveToolRuns([run], "include", blobs))[0]!
      })

      const isAttached = (sessionId: string, fileId: string) =>
        query(
          `select 1 from chronicle.sessions s
            where s.id = $1::uuid and exists (${effectiveAttachments("s.effective")} and f.file_id = $2::uuid)`,
          [sessionId, fileId],
        ).pipe(Effect.map((rows) => rows.length > 0))

      const attachFile = Effect.fn("Content.attachFile")(function* (
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
                `select id::text, owner_id::text, sha256, name, mime_type, size from chronicle.files where id = $1::uuid`,
                [fileId],
              )
              const file = files[0]
              // Only the session owner's files can be attached; others' files do not exist for it.
              if (file === undefined || file.owner_id !== snapshot.ownerId) {
                return yield* new NotFound({ entity: "file", id: fileId })
              }
              return {
                type: "AttachFile",
                file: {
                  fileId,
                  ownerId: file.owner_id as string,
                  sha256: file.sha256 as string,
                  name: file.name as string,
                  mimeType: file.mime_type as string,
                  size: Number(file.size),
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

      const detachFile = Effect.fn("Content.detachFile")(function* (
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

      const listAttachedFiles = Effect.fn("Content.listAttachedFiles")(function* (
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
        return toPage(
          rows,
          limit,
          toAttachedFile,
          (r) => [Number(r.version), String(r.file_id)],
          "asc",
          input.maxBytes,
        )
      })

      return Content.of({
        appendMessages: (a, s, m, o) => provide(appendMessages(a, s, m, o)),
        listMessages: (a, s, i) =>
          provide(
            listVisible(a, s, i, {
              table: "messages",
              keys: ["seq"],
              map: (r) => toMessage({ ...r, message_id: String(r.message_id) }),
              size:
                i.largeContent === "omit"
                  ? "octet_length(t.content) + octet_length(t.metadata::text)"
                  : `octet_length(t.content) + octet_length(t.metadata::text) + ${largeSize("t.metadata", ["content"])} + ${largeSize("t.metadata", ["metadata"])}`,
              order: i.order ?? "asc",
            }).pipe(
              Effect.flatMap((page) =>
                Effect.map(resolveMessages(page.items, i.largeContent ?? "include"), (items) => ({
                  ...page,
                  items,
                })),
              ),
            ),
          ),
        addRevision: (a, s, i, o) => provide(addRevision(a, s, i, o)),
        listRevisions: (a, s, i) =>
          provide(
            listVisible(a, s, i, {
              table: "revisions",
              keys: ["number"],
              map: (r) => toRevision({ ...r, revision_id: String(r.revision_id) }),
              size: "octet_length(t.ir::text) + coalesce(octet_length(t.note), 0)",
            }),
          ),
        recordDraft: (a, s, i, o) => provide(recordDraft(a, s, i, o)),
        listDrafts: (a, s, i) =>
          provide(
            listVisible(a, s, i, {
              table: "drafts",
              keys: ["version", "draft_id"],
              map: toDraft,
              size: "octet_length(t.code) + octet_length(t.metrics::text)",
            }),
          ),
        resolveHole: (a, s, i, o) => provide(resolveHole(a, s, i, o)),
        listHoles: (a, s, i) =>
          provide(
            listVisible(a, s, i, {
              table: "hole_resolutions",
              keys: ["version", "resolution_id"],
              map: toHoleResolution,
              size: "octet_length(t.value::text) + octet_length(t.hole_id)",
              holeId: i.holeId,
            }),
          ),
        recordToolRun: (a, s, i, o) => provide(recordToolRun(a, s, i, o)),
        listToolRuns: (a, s, i) =>
          provide(
            listVisible(a, s, i, {
              table: "tool_runs",
              keys: ["version", "tool_run_id"],
              map: toToolRun,
              size:
                i.largeContent === "omit"
                  ? "octet_length(t.input::text) + octet_length(t.output::text) + coalesce(octet_length(t.error), 0)"
                  : `octet_length(t.input::text) + octet_length(t.output::text) + coalesce(octet_length(t.error), 0) + ${largeSize("t.input", [])} + ${largeSize("t.output", [])}`,
              neverReverted: true,
            }).pipe(
              Effect.flatMap((page) =>
                Effect.map(resolveToolRuns(page.items, i.largeContent ?? "include"), (items) => ({
                  ...page,
                  items,
                })),
              ),
            ),
          ),
        attachFile: (a, s, f, o) => provide(attachFile(a, s, f, o)),
        detachFile: (a, s, f, o) => provide(detachFile(a, s, f, o)),
        listAttachedFiles: (a, s, i) => provide(listAttachedFiles(a, s, i)),
      })
    }),
  )
}
