import {
  type ChronicleEvent,
  CONTENT_EVENT_TYPES,
  decideSession,
  type Forbidden,
  forkSession,
  InvalidCommand,
  InvalidTransition,
  NotFound,
  type SessionCommand,
  type SessionSnapshot,
  startSession,
  toStored,
} from "@chronicle/events"
import type { JsonObject, SessionStatus } from "@chronicle/events/types"
import {
  type BatchTooLarge,
  Database,
  EventTooLarge,
  type IdempotencyConflict,
  isUuid,
  type VersionConflict,
} from "@chronicle/store"
import { Context, Effect, Layer } from "effect"
import { v5 as uuidv5, v7 as uuidv7 } from "uuid"
import { type Actor, ensureVisible, listScope, ownerFor } from "./actor.ts"
import { type CommandOptions, type CommandResult, type RecordedDomainEvent, runCommand } from "./command.ts"
import {
  budgeted,
  budgetParam,
  cursorTime,
  decodePageCursor,
  type PageRequest,
  pageLimit,
  ROW_OVERHEAD_BYTES,
  toPage,
} from "./paging.ts"
import { type LoadedSession, selectSession, sessionStreamId } from "./queries.ts"
import {
  type Checkpoint,
  type Page,
  type Session,
  type TimelineEntry,
  toCheckpoint,
  toSession,
} from "./rows.ts"
import { layerServices } from "./services.ts"

/** Read a session as of a checkpoint or a version. */
export type AsOf = { readonly checkpointId: string } | { readonly version: number }

export interface CreateSessionInput {
  readonly title?: string | null | undefined
  readonly metadata?: JsonObject | undefined
  readonly externalKey?: string | null | undefined
}

export interface ListSessionsInput extends PageRequest {
  readonly status?: SessionStatus | undefined
  readonly parentId?: string | undefined
  /**
   * Text found, case-insensitively, in the title or the external key, or at the start of the
   * id. Trimmed; 1 to 200 characters. `%`, `_` and `\` match themselves.
   */
  readonly search?: string | undefined
  /** Created at or after: an ISO date (from its start, UTC) or an ISO timestamp. */
  readonly createdFrom?: string | undefined
  /** Created at or before: an ISO date (the whole day, UTC) or an ISO timestamp. */
  readonly createdTo?: string | undefined
}

export const MAX_SEARCH_LENGTH = 200

/** The search text as a LIKE pattern's body: wildcards and the escape character taken literally. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`)

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))$/

/**
 * A bound of a creation-date filter: the instant it starts at, as text Postgres reads back
 * exactly (the fraction cut to microseconds, Postgres' precision), and how long it lasts — a
 * date is a whole UTC day, a timestamp one unit of its last digit — so that an inclusive upper
 * bound takes in what a client sees: a session shown as created at 10:00:00.123Z was created
 * at 10:00:00.123456, which `createdTo: "…T10:00:00.123Z"` must include.
 */
interface Instant {
  readonly text: string
  readonly micros: bigint
  readonly spanMicros: bigint
}

const DAY_MICROS = 86_400_000_000n

const parseInstant = (value: string, path: string): Effect.Effect<Instant, InvalidCommand> => {
  const invalid = new InvalidCommand({
    path,
    reason: "must be an ISO date (2026-11-24) or an ISO timestamp with a time zone (2026-11-24T10:00:00Z)",
  })
  const date = DATE.exec(value)
  const time = date === null ? TIMESTAMP.exec(value) : null
  const parts = date ?? time
  if (parts === null) return Effect.fail(invalid)
  const [year, month, day, hour, minute, second] = Array.from({ length: 6 }, (_, i) =>
    Number(parts[i + 1] ?? 0),
  ) as [number, number, number, number, number, number]
  const fraction = (time?.[7] ?? "").slice(0, 6)
  const offsetMinutes =
    time === null || time[8] === "Z"
      ? 0
      : (time[9] === "-" ? -1 : 1) * (Number(time[10]) * 60 + Number(time[11]))
  const utc = new Date(0)
  utc.setUTCFullYear(year, month - 1, day)
  utc.setUTCHours(hour, minute, second)
  const valid =
    year >= 1 &&
    utc.getUTCFullYear() === year &&
    utc.getUTCMonth() === month - 1 &&
    utc.getUTCDate() === day &&
    utc.getUTCHours() === hour &&
    utc.getUTCMinutes() === minute &&
    utc.getUTCSeconds() === second &&
    // Postgres reads offsets up to ±15:59 (real zones stay within ±14:00).
    (time === null || time[8] === "Z" || (Number(time[10]) <= 15 && Number(time[11]) <= 59))
  if (!valid) return Effect.fail(invalid)
  const micros =
    BigInt(utc.getTime() - offsetMinutes * 60_000) * 1000n + BigInt(fraction.padEnd(6, "0") || "0")
  if (date !== null) return Effect.succeed({ text: `${value}T00:00:00Z`, micros, spanMicros: DAY_MICROS })
  const text = value.replace(/\.\d+/, fraction === "" ? "" : `.${fraction}`)
  return Effect.succeed({ text, micros, spanMicros: 10n ** BigInt(6 - fraction.length) })
}

/** The checked filters of `sessions.list`. */
const listFilters = Effect.fn("Sessions.listFilters")(function* (input: ListSessionsInput) {
  const search = input.search?.trim()
  if (search !== undefined && (search.length === 0 || search.length > MAX_SEARCH_LENGTH)) {
    return yield* new InvalidCommand({
      path: "search",
      reason: `must hold 1 to ${MAX_SEARCH_LENGTH} characters besides surrounding spaces`,
    })
  }
  const from = input.createdFrom === undefined ? null : yield* parseInstant(input.createdFrom, "createdFrom")
  const to = input.createdTo === undefined ? null : yield* parseInstant(input.createdTo, "createdTo")
  if (from !== null && to !== null && from.micros >= to.micros + to.spanMicros) {
    return yield* new InvalidCommand({ path: "createdFrom", reason: "must not be after `createdTo`" })
  }
  return {
    pattern: search === undefined ? null : likeLiteral(search),
    from: from?.text ?? null,
    to: to?.text ?? null,
    toSpan: to === null ? null : to.spanMicros.toString(),
  }
})

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

// Session ids for external keys are derived from (owner, key), so "get or create by key" is
// one atomic append expecting no stream.
const EXTERNAL_KEY_NAMESPACE = "3f6d2a1c-9b8e-4f7d-a2c5-6e1b0d9f8a47"
export const sessionIdForKey = (ownerId: string, externalKey: string) =>
  uuidv5(`${ownerId}\u0000${externalKey}`, EXTERNAL_KEY_NAMESPACE)

/** The first event of a new session; its id derives from the external key when there is one. */
const firstEvent = (ownerId: string, input: CreateSessionInput) => {
  const externalKey = input.externalKey ?? null
  return startSession({
    sessionId: externalKey === null ? uuidv7() : sessionIdForKey(ownerId, externalKey),
    ownerId,
    title: input.title ?? null,
    metadata: input.metadata ?? {},
    externalKey,
  })
}

const actorLabel = (actor: Actor) => (actor.kind === "user" ? `user:${actor.userId}` : "service")

/**
 * Events per append of an import: the store's batch limit. An import of up to 5,000 messages
 * is several appends in one transaction.
 */
export const IMPORT_CHUNK = 500

const notFound = (id: string) => new NotFound({ entity: "session", id })

const CONTENT_TYPES: ReadonlySet<string> = new Set(CONTENT_EVENT_TYPES)

/** A set of versions as half-open ranges [from, to). */
type VersionRanges = ReadonlyArray<readonly [number, number]>

/**
 * An int4multirange as Postgres prints it (`{[1,4),[6,9)}`; `{}` when empty), as half-open
 * ranges; a missing bound is unbounded.
 */
export const parseVersionRanges = (text: string): VersionRanges =>
  Array.from(text.matchAll(/([[(])\s*(-?\d*)\s*,\s*(-?\d*)\s*([\])])/g), (m) => {
    const lower = m[2] === "" ? Number.NEGATIVE_INFINITY : Number(m[2]) + (m[1] === "(" ? 1 : 0)
    const upper = m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]) + (m[4] === "]" ? 1 : 0)
    return [lower, upper] as const
  })

const inRanges = (ranges: VersionRanges, version: number) =>
  ranges.some(([from, to]) => version >= from && version < to)

/** Loads a session the actor may see, or fails with NotFound. */
export const loadSession = (actor: Actor, id: string, asOf: number | null = null) =>
  Effect.gen(function* () {
    if (!isUuid(id)) return yield* notFound(id)
    const loaded = yield* selectSession(id, asOf)
    if (loaded === undefined) return yield* notFound(id)
    yield* ensureVisible(actor, loaded.session.ownerId, "session", id)
    return loaded
  })

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

/** Resolves an as-of request to a version of the session, checked against its history. */
export const resolveAsOf = (actor: Actor, id: string, asOf: AsOf | undefined) =>
  Effect.gen(function* () {
    if (asOf === undefined) return null
    const current = yield* loadSession(actor, id)
    if ("checkpointId" in asOf) {
      const checkpoint = yield* getCheckpoint(id, asOf.checkpointId)
      return checkpoint.version
    }
    const v = asOf.version
    if (!Number.isInteger(v) || v < 1 || v > current.session.version) {
      return yield* new InvalidCommand({
        path: "asOf.version",
        reason: `must be a version of this session, 1 to ${current.session.version}`,
      })
    }
    return v
  })

const getCheckpoint = (sessionId: string, checkpointId: string) =>
  Effect.gen(function* () {
    const db = yield* Database
    if (!isUuid(checkpointId)) return yield* new NotFound({ entity: "checkpoint", id: checkpointId })
    const rows = yield* db
      .query(
        `select id::text, session_id::text, version, label, cursor, created_at
           from chronicle.checkpoints where id = $1::uuid and session_id = $2::uuid`,
        [checkpointId, sessionId],
      )
      .pipe(Effect.orDie)
    if (rows[0] === undefined) return yield* new NotFound({ entity: "checkpoint", id: checkpointId })
    return toCheckpoint(rows[0])
  })

/**
 * Runs a session command: load, decide with the pure decider, append expecting the loaded
 * version, retrying on a concurrent append. `build` turns the snapshot into the command,
 * looking up any facts the decider needs.
 */
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

export interface SessionsService {
  readonly create: (actor: Actor, input: CreateSessionInput) => Effect.Effect<Session, SessionsError>
  /** Returns the session with this external key, creating it if absent, atomically. */
  readonly ensure: (
    actor: Actor,
    input: CreateSessionInput & { readonly externalKey: string },
  ) => Effect.Effect<{ readonly session: Session; readonly created: boolean }, SessionsError>
  readonly getByKey: (actor: Actor, externalKey: string) => Effect.Effect<Session, SessionsError>
  readonly get: (actor: Actor, id: string, asOf?: AsOf) => Effect.Effect<Session, SessionsError>
  readonly list: (actor: Actor, input: ListSessionsInput) => Effect.Effect<Page<Session>, SessionsError>
  readonly update: (
    actor: Actor,
    id: string,
    input: { readonly title?: string | null; readonly metadata?: JsonObject },
    options?: CommandOptions,
  ) => Effect.Effect<Session, SessionsError>
  readonly archive: (
    actor: Actor,
    id: string,
    reason?: string | null,
  ) => Effect.Effect<Session, SessionsError>
  readonly delete: (actor: Actor, id: string, reason?: string | null) => Effect.Effect<Session, SessionsError>
  readonly rollback: (
    actor: Actor,
    id: string,
    to: { readonly checkpointId: string } | { readonly toVersion: number },
    options?: CommandOptions,
  ) => Effect.Effect<Session, SessionsError>
  readonly fork: (
    actor: Actor,
    id: string,
    at: { readonly checkpointId: string } | { readonly atVersion: number },
    input?: { readonly title?: string | null; readonly metadata?: JsonObject },
  ) => Effect.Effect<Session, SessionsError>
  readonly timeline: (
    actor: Actor,
    id: string,
    page: PageRequest,
  ) => Effect.Effect<Page<TimelineEntry>, SessionsError>
  readonly export: (
    actor: Actor,
    id: string,
    page: PageRequest,
  ) => Effect.Effect<SessionExport, SessionsError>
  readonly importConversation: (
    actor: Actor,
    input: ImportConversationInput,
  ) => Effect.Effect<Session, SessionsError>
  readonly createCheckpoint: (
    actor: Actor,
    id: string,
    label: string | null,
    options?: CommandOptions,
  ) => Effect.Effect<Checkpoint, SessionsError>
  readonly listCheckpoints: (
    actor: Actor,
    id: string,
    page: PageRequest,
  ) => Effect.Effect<Page<Checkpoint>, SessionsError>
  readonly getCheckpoint: (
    actor: Actor,
    id: string,
    checkpointId: string,
  ) => Effect.Effect<Checkpoint, SessionsError>
}

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

/** Sessions: lifecycle, checkpoints, rollback, fork, as-of reads, timeline, import/export. */
export class Sessions extends Context.Service<Sessions, SessionsService>()("@chronicle/domain/Sessions") {
  static readonly layer = Layer.effect(
    Sessions,
    Effect.gen(function* () {
      const { db, store, provide } = yield* layerServices

      const current = (actor: Actor, id: string) => Effect.map(loadSession(actor, id), (l) => l.session)

      /** Appends the first event(s) of a new session stream. */
      const createStream = (
        actor: Actor,
        ownerId: string,
        sessionId: string,
        events: ReadonlyArray<ChronicleEvent>,
      ) =>
        store
          .append(
            sessionStreamId(sessionId),
            events.map((e) => ({
              ...toStored(e),
              metadata: { actor: actorLabel(actor) },
            })),
            { expectedVersion: "no_stream", ownerId },
          )
          .pipe(
            // Fresh ids and decided events: a refusal of either is a bug, not the caller's mistake.
            Effect.catchTags({ InvalidAppend: Effect.die, IdempotencyConflict: Effect.die }),
          )

      /** A further chunk of a new stream, expecting the version the previous chunks left. */
      const appendChunk = (
        actor: Actor,
        sessionId: string,
        events: ReadonlyArray<ChronicleEvent>,
        expectedVersion: number,
      ) =>
        store
          .append(
            sessionStreamId(sessionId),
            events.map((e) => ({ ...toStored(e), metadata: { actor: actorLabel(actor) } })),
            { expectedVersion },
          )
          .pipe(Effect.catchTags({ InvalidAppend: Effect.die, IdempotencyConflict: Effect.die }))

      const create = Effect.fn("Sessions.create")(function* (actor: Actor, input: CreateSessionInput) {
        const ownerId = yield* ownerFor(actor)
        const key = input.externalKey ?? null
        const started = firstEvent(ownerId, input)
        const sessionId = started.sessionId
        yield* createStream(actor, ownerId, sessionId, [started]).pipe(
          Effect.catchTag("VersionConflict", () =>
            Effect.fail(
              new InvalidTransition({
                entity: "session",
                id: sessionId,
                state: "exists",
                action: "create",
                reason: `a session with external key ${JSON.stringify(key)} already exists; use sessions.ensure or sessions.getByKey`,
              }),
            ),
          ),
        )
        return yield* current(actor, sessionId)
      })

      const ensure = Effect.fn("Sessions.ensure")(function* (
        actor: Actor,
        input: CreateSessionInput & { readonly externalKey: string },
      ) {
        const ownerId = yield* ownerFor(actor)
        const started = firstEvent(ownerId, input)
        const sessionId = started.sessionId
        const existing = yield* selectSession(sessionId, null)
        if (existing !== undefined) return { session: existing.session, created: false }
        const created = yield* createStream(actor, ownerId, sessionId, [started]).pipe(
          Effect.as(true),
          // Another request created it between our read and our append: it exists now.
          Effect.catchTag("VersionConflict", () => Effect.succeed(false)),
        )
        return { session: yield* current(actor, sessionId), created }
      })

      const getByKey = Effect.fn("Sessions.getByKey")(function* (actor: Actor, externalKey: string) {
        const ownerId = yield* ownerFor(actor)
        return yield* current(actor, sessionIdForKey(ownerId, externalKey)).pipe(
          Effect.catchTag("NotFound", () =>
            Effect.fail(new NotFound({ entity: "session with external key", id: externalKey })),
          ),
        )
      })

      const get = Effect.fn("Sessions.get")(function* (actor: Actor, id: string, asOf?: AsOf) {
        const version = yield* resolveAsOf(actor, id, asOf)
        const loaded = yield* loadSession(actor, id, version)
        return loaded.session
      })

      const list = Effect.fn("Sessions.list")(function* (actor: Actor, input: ListSessionsInput) {
        const limit = yield* pageLimit(input.limit)
        const after = yield* decodePageCursor(input.cursor, ["timestamp", "uuid"] as const)
        if (input.parentId !== undefined && !isUuid(input.parentId)) {
          return yield* new InvalidCommand({ path: "parentId", reason: "must be a UUID" })
        }
        const filters = yield* listFilters(input)
        // Newest first, keyed by (created_at, id): the filters only drop rows, so the keyset
        // pages through the matches with no gap and no duplicate.
        const rows = yield* db
          .query(
            budgeted(
              `select s.id::text, s.owner_id::text, s.title, s.status, s.metadata, s.version, s.parent_id::text,
                    s.parent_version, s.external_key, s.message_count, s.revision_count, s.draft_count,
                    s.hole_count, s.file_count, s.tool_run_count, s.created_at, s.updated_at, s.last_activity_at,
                    ${cursorTime("s.created_at")} as cursor_at,
                    octet_length(s.metadata::text) + coalesce(octet_length(s.title), 0)
                      + coalesce(octet_length(s.external_key), 0) + ${ROW_OVERHEAD_BYTES} as page_bytes
               from chronicle.sessions s
              where ($1::uuid is null or s.owner_id = $1::uuid)
                and (case when $2::text is null then s.status <> 'deleted' else s.status = $2::text end)
                and ($3::uuid is null or s.parent_id = $3::uuid)
                and ($4::text is null or (s.created_at, s.id) < ($4::text::timestamptz, $5::uuid))
                and ($7::text is null
                     or lower(s.title) like '%' || lower($7::text) || '%' escape '\\'
                     or lower(s.external_key) like '%' || lower($7::text) || '%' escape '\\'
                     or s.id::text like lower($7::text) || '%' escape '\\')
                and ($8::text is null or s.created_at >= $8::text::timestamptz)
                and ($9::text is null
                     or s.created_at < $9::text::timestamptz + $10::bigint * interval '1 microsecond')
              order by s.created_at desc, s.id desc
              limit $6`,
              "$11",
            ),
            [
              listScope(actor),
              input.status ?? null,
              input.parentId ?? null,
              after?.[0] ?? null,
              after?.[1] ?? null,
              limit + 1,
              filters.pattern,
              filters.from,
              filters.to,
              filters.toSpan,
              budgetParam(input.maxBytes),
            ],
          )
          .pipe(Effect.orDie)
        return toPage(
          rows,
          limit,
          toSession,
          (r) => [r.cursor_at as string, r.id as string],
          "asc",
          input.maxBytes,
        )
      })

      const update = Effect.fn("Sessions.update")(function* (
        actor: Actor,
        id: string,
        input: { readonly title?: string | null; readonly metadata?: JsonObject },
        options?: CommandOptions,
      ) {
        yield* executeSessionCommand(
          actor,
          id,
          () =>
            Effect.succeed<SessionCommand>({
              type: "UpdateSession",
              ...(input.title !== undefined ? { title: input.title } : {}),
              ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
            }),
          options,
        )
        return yield* current(actor, id)
      })

      /** Archive or soft-delete: a lifecycle event with an optional reason. */
      const lifecycle = (type: "ArchiveSession" | "DeleteSession", name: string) =>
        Effect.fn(name)(function* (actor: Actor, id: string, reason?: string | null) {
          yield* executeSessionCommand(actor, id, () =>
            Effect.succeed<SessionCommand>({ type, reason: reason ?? null }),
          )
          return yield* current(actor, id)
        })
      const archive = lifecycle("ArchiveSession", "Sessions.archive")
      const remove = lifecycle("DeleteSession", "Sessions.delete")

      const rollback = Effect.fn("Sessions.rollback")(function* (
        actor: Actor,
        id: string,
        to: { readonly checkpointId: string } | { readonly toVersion: number },
        options?: CommandOptions,
      ) {
        yield* loadSession(actor, id)
        const target =
          "checkpointId" in to
            ? {
                toVersion: (yield* getCheckpoint(id, to.checkpointId)).version,
                checkpointId: to.checkpointId,
              }
            : { toVersion: to.toVersion, checkpointId: null }
        yield* executeSessionCommand(
          actor,
          id,
          () => Effect.succeed<SessionCommand>({ type: "RollBack", ...target }),
          options,
        )
        return yield* current(actor, id)
      })

      const fork = Effect.fn("Sessions.fork")(function* (
        actor: Actor,
        id: string,
        at: { readonly checkpointId: string } | { readonly atVersion: number },
        input: { readonly title?: string | null; readonly metadata?: JsonObject } = {},
      ) {
        const parent = yield* loadSession(actor, id)
        const point =
          "checkpointId" in at
            ? {
                atVersion: (yield* getCheckpoint(id, at.checkpointId)).version,
                checkpointId: at.checkpointId,
              }
            : { atVersion: at.atVersion, checkpointId: null }
        if (
          !Number.isInteger(point.atVersion) ||
          point.atVersion < 1 ||
          point.atVersion > parent.session.version
        ) {
          return yield* new InvalidCommand({
            path: "atVersion",
            reason: `must be a version of the parent session, 1 to ${parent.session.version}`,
          })
        }
        const asOf = yield* loadSession(actor, id, point.atVersion)
        // The child belongs to the parent's owner.
        const ownerId = parent.session.ownerId
        const childId = uuidv7()
        const forked = yield* Effect.fromResult(
          forkSession(snapshotOf(parent), {
            sessionId: childId,
            ownerId,
            atVersion: point.atVersion,
            checkpointId: point.checkpointId,
            ...(input.title !== undefined ? { title: input.title } : {}),
            ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
            parentAsOf: { title: asOf.session.title, metadata: asOf.session.metadata },
          }),
        )
        yield* createStream(actor, ownerId, childId, [forked])
        return yield* current(actor, childId)
      })

      const timeline = Effect.fn("Sessions.timeline")(function* (
        actor: Actor,
        id: string,
        page: PageRequest,
      ) {
        yield* loadSession(actor, id)
        const limit = yield* pageLimit(page.limit)
        const after = yield* decodePageCursor(page.cursor, ["number"] as const)
        // The timeline as of the session row read here: its events up to that row's version,
        // each content event outside that row's effective set marked reverted.
        const [row] = yield* db
          .query<{ version: number; effective: string }>(
            "select version, effective::text from chronicle.sessions where id = $1::uuid",
            [id],
          )
          .pipe(Effect.orDie)
        const effective = parseVersionRanges(row?.effective ?? "{}")
        const read = yield* store
          .readStream(sessionStreamId(id), {
            fromVersion: (after?.[0] ?? 0) + 1,
            toVersion: Number(row?.version ?? 0),
            limit: limit + 1,
            maxBytes: budgetParam(page.maxBytes) ?? undefined,
          })
          .pipe(Effect.orDie)
        return toPage(
          read.events,
          limit,
          (e): TimelineEntry => ({
            eventId: e.eventId,
            version: e.version,
            type: e.type,
            data: e.data as never,
            metadata: e.metadata,
            recordedAt: e.recordedAt.toISOString(),
            reverted: CONTENT_TYPES.has(e.type) && !inRanges(effective, e.version),
          }),
          (e) => [e.version],
          "asc",
          page.maxBytes,
          read.nextVersion !== undefined,
        )
      })

      const exportSession = Effect.fn("Sessions.export")(function* (
        actor: Actor,
        id: string,
        page: PageRequest,
      ) {
        const limit = yield* pageLimit(page.limit)
        // [the next version to export, the version the export is pinned to]
        const at = yield* decodePageCursor(page.cursor, ["number", "number"] as const)
        const session =
          at === null ? yield* current(actor, id) : (yield* loadSession(actor, id, at[1])).session
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

      const importConversation = Effect.fn("Sessions.importConversation")(function* (
        actor: Actor,
        input: ImportConversationInput,
      ) {
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
            Effect.catchTag("VersionConflict", () =>
              Effect.fail(
                new InvalidTransition({
                  entity: "session",
                  id: sessionId,
                  state: "exists",
                  action: "import",
                  reason: `a session with external key ${JSON.stringify(key)} already exists`,
                }),
              ),
            ),
          )
        return yield* current(actor, sessionId)
      })

      const createCheckpoint = Effect.fn("Sessions.createCheckpoint")(function* (
        actor: Actor,
        id: string,
        label: string | null,
        options?: CommandOptions,
      ) {
        const result: CommandResult = yield* executeSessionCommand(
          actor,
          id,
          () => Effect.succeed<SessionCommand>({ type: "CreateCheckpoint", checkpointId: uuidv7(), label }),
          options,
          { label },
        )
        const created = result.events.find((e) => e.event.type === "CheckpointCreated")
        if (created?.event.type !== "CheckpointCreated") return yield* Effect.die("no checkpoint recorded")
        return yield* getCheckpoint(id, created.event.checkpointId)
      })

      const listCheckpoints = Effect.fn("Sessions.listCheckpoints")(function* (
        actor: Actor,
        id: string,
        page: PageRequest,
      ) {
        yield* loadSession(actor, id)
        const limit = yield* pageLimit(page.limit)
        const after = yield* decodePageCursor(page.cursor, ["number"] as const)
        const rows = yield* db
          .query(
            `select id::text, session_id::text, version, event_version, label, cursor, created_at
               from chronicle.checkpoints
              where session_id = $1::uuid and event_version > $2
              order by event_version limit $3`,
            [id, after?.[0] ?? 0, limit + 1],
          )
          .pipe(Effect.orDie)
        return toPage(rows, limit, toCheckpoint, (r) => [Number(r.event_version)], "asc", page.maxBytes)
      })

      return Sessions.of({
        create: (actor, input) => provide(create(actor, input)),
        ensure: (actor, input) => provide(ensure(actor, input)),
        getByKey: (actor, key) => provide(getByKey(actor, key)),
        get: (actor, id, asOf) => provide(get(actor, id, asOf)),
        list: (actor, input) => provide(list(actor, input)),
        update: (actor, id, input, options) => provide(update(actor, id, input, options)),
        archive: (actor, id, reason) => provide(archive(actor, id, reason)),
        delete: (actor, id, reason) => provide(remove(actor, id, reason)),
        rollback: (actor, id, to, options) => provide(rollback(actor, id, to, options)),
        fork: (actor, id, at, input) => provide(fork(actor, id, at, input)),
        timeline: (actor, id, page) => provide(timeline(actor, id, page)),
        export: (actor, id, page) => provide(exportSession(actor, id, page)),
        importConversation: (actor, input) => provide(importConversation(actor, input)),
        createCheckpoint: (actor, id, label, options) => provide(createCheckpoint(actor, id, label, options)),
        listCheckpoints: (actor, id, page) => provide(listCheckpoints(actor, id, page)),
        getCheckpoint: (actor, id, checkpointId) =>
          provide(Effect.andThen(loadSession(actor, id), getCheckpoint(id, checkpointId))),
      })
    }),
  )
}
