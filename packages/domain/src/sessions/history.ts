/**
 * A session's history: checkpoints, rollback to one (or to a version), fork from one, and the
 * timeline of its events with those of abandoned branches marked reverted.
 */
import { CONTENT_EVENT_TYPES, forkSession, InvalidCommand, type SessionCommand } from "@chronicle/events"
import type { JsonObject } from "@chronicle/events/types"
import { Database, EventStore } from "@chronicle/store"
import { Effect, Schema } from "effect"
import { v7 as uuidv7 } from "uuid"
import type { Actor } from "../actor.ts"
import type { CommandOptions, CommandResult } from "../command.ts"
import { budgetParam, decodePageCursor, type PageRequest, pageLimit, toPage } from "../paging.ts"
import { sessionStreamId } from "../queries.ts"
import { decoder, Num, pageKey } from "../row-schema.ts"
import { type TimelineEntry, toCheckpoint } from "../rows.ts"
import { executeSessionCommand, snapshotOf } from "../session/command.ts"
import { currentSession, getCheckpoint, loadSession } from "../session/load.ts"
import { createStream } from "./start.ts"

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

export const rollback = Effect.fn("Sessions.rollback")(function* (
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
  return yield* currentSession(actor, id)
})

export const fork = Effect.fn("Sessions.fork")(function* (
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
  if (!Number.isInteger(point.atVersion) || point.atVersion < 1 || point.atVersion > parent.session.version) {
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
  return yield* currentSession(actor, childId)
})

/** The session row's version and effective set, for its timeline. */
const decodeSessionVersions = decoder(
  "session",
  "id",
  Schema.Struct({ version: Num, effective: Schema.String }),
)

export const timeline = Effect.fn("Sessions.timeline")(function* (
  actor: Actor,
  id: string,
  page: PageRequest,
) {
  const db = yield* Database
  const store = yield* EventStore
  yield* loadSession(actor, id)
  const limit = yield* pageLimit(page.limit)
  const after = yield* decodePageCursor(page.cursor, ["number"] as const)
  // The timeline as of the session row read here: its events up to that row's version,
  // each content event outside that row's effective set marked reverted.
  const [found] = yield* db
    .query("select id::text, version, effective::text from chronicle.sessions where id = $1::uuid", [id])
    .pipe(Effect.orDie)
  const row = found === undefined ? undefined : decodeSessionVersions(found)
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

export const createCheckpoint = Effect.fn("Sessions.createCheckpoint")(function* (
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

const checkpointKey = pageKey("checkpoint", { event_version: "number" })

export const listCheckpoints = Effect.fn("Sessions.listCheckpoints")(function* (
  actor: Actor,
  id: string,
  page: PageRequest,
) {
  const db = yield* Database
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
  return toPage(rows, limit, toCheckpoint, checkpointKey, "asc", page.maxBytes)
})

/** A checkpoint of a session the actor may see. */
export const getVisibleCheckpoint = (actor: Actor, id: string, checkpointId: string) =>
  Effect.andThen(loadSession(actor, id), getCheckpoint(id, checkpointId))
