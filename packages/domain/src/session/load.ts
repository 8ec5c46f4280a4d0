/**
 * A session as every service reads it: one the actor may see (or NotFound), now or as of a
 * checkpoint or a version.
 */
import { InvalidCommand, NotFound } from "@chronicle/events"
import { Database, isUuid } from "@chronicle/store"
import { Effect } from "effect"
import { type Actor, ensureVisible } from "../actor.ts"
import { selectSession } from "../queries.ts"
import { toCheckpoint } from "../rows.ts"

/** Read a session as of a checkpoint or a version. */
export type AsOf = { readonly checkpointId: string } | { readonly version: number }

const notFound = (id: string) => new NotFound({ entity: "session", id })

/** Loads a session the actor may see, or fails with NotFound. */
export const loadSession = (actor: Actor, id: string, asOf: number | null = null) =>
  Effect.gen(function* () {
    if (!isUuid(id)) return yield* notFound(id)
    const loaded = yield* selectSession(id, asOf)
    if (loaded === undefined) return yield* notFound(id)
    yield* ensureVisible(actor, loaded.session.ownerId, "session", id)
    return loaded
  })

/** The session as it is now, as a command or read answers it. */
export const currentSession = (actor: Actor, id: string) =>
  Effect.map(loadSession(actor, id), (l) => l.session)

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

/** A checkpoint of the session, or NotFound; the caller has checked the session is visible. */
export const getCheckpoint = (sessionId: string, checkpointId: string) =>
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
