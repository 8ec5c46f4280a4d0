/** A session's lifecycle: create (or ensure, by external key), update, archive, delete. */
import type { SessionCommand } from "@chronicle/events"
import type { JsonObject } from "@chronicle/events/types"
import { Effect } from "effect"
import { type Actor, ownerFor } from "../actor.ts"
import type { CommandOptions } from "../command.ts"
import { selectSession } from "../queries.ts"
import { executeSessionCommand } from "../session/command.ts"
import { currentSession } from "../session/load.ts"
import { type CreateSessionInput, createStream, firstEvent, keyTaken } from "./start.ts"

export const create = Effect.fn("Sessions.create")(function* (actor: Actor, input: CreateSessionInput) {
  const ownerId = yield* ownerFor(actor)
  const key = input.externalKey ?? null
  const started = firstEvent(ownerId, input)
  const sessionId = started.sessionId
  yield* createStream(actor, ownerId, sessionId, [started]).pipe(
    Effect.catchTag("VersionConflict", () =>
      Effect.fail(keyTaken(sessionId, key, "create", "; use sessions.ensure or sessions.getByKey")),
    ),
  )
  return yield* currentSession(actor, sessionId)
})

export const ensure = Effect.fn("Sessions.ensure")(function* (
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
  return { session: yield* currentSession(actor, sessionId), created }
})

export const update = Effect.fn("Sessions.update")(function* (
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
  return yield* currentSession(actor, id)
})

/** Archive or soft-delete: a lifecycle event with an optional reason. */
const lifecycle = (type: "ArchiveSession" | "DeleteSession", name: string) =>
  Effect.fn(name)(function* (actor: Actor, id: string, reason?: string | null) {
    yield* executeSessionCommand(actor, id, () =>
      Effect.succeed<SessionCommand>({ type, reason: reason ?? null }),
    )
    return yield* currentSession(actor, id)
  })
export const archive = lifecycle("ArchiveSession", "Sessions.archive")
export const remove = lifecycle("DeleteSession", "Sessions.delete")
