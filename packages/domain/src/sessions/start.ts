/**
 * How a session's stream begins: its id (derived from an external key when there is one), its
 * first event, and the append that expects no stream. Shared by create, ensure, fork and import.
 */
import { type ChronicleEvent, InvalidTransition, startSession, toStored } from "@chronicle/events"
import type { JsonObject } from "@chronicle/events/types"
import { type AppendOptions, EventStore } from "@chronicle/store"
import { Effect } from "effect"
import { v5 as uuidv5, v7 as uuidv7 } from "uuid"
import { type Actor, actorLabel } from "../actor.ts"
import { sessionStreamId } from "../queries.ts"

export interface CreateSessionInput {
  readonly title?: string | null | undefined
  readonly metadata?: JsonObject | undefined
  readonly externalKey?: string | null | undefined
}

// Session ids for external keys are derived from (owner, key), so "get or create by key" is
// one atomic append expecting no stream.
const EXTERNAL_KEY_NAMESPACE = "3f6d2a1c-9b8e-4f7d-a2c5-6e1b0d9f8a47"
export const sessionIdForKey = (ownerId: string, externalKey: string) =>
  uuidv5(`${ownerId}\u0000${externalKey}`, EXTERNAL_KEY_NAMESPACE)

/** The first event of a new session; its id derives from the external key when there is one. */
export const firstEvent = (ownerId: string, input: CreateSessionInput) => {
  const externalKey = input.externalKey ?? null
  return startSession({
    sessionId: externalKey === null ? uuidv7() : sessionIdForKey(ownerId, externalKey),
    ownerId,
    title: input.title ?? null,
    metadata: input.metadata ?? {},
    externalKey,
  })
}

/** Appends decided events of a new session, the actor in their metadata. */
const appendNew = (
  actor: Actor,
  sessionId: string,
  events: ReadonlyArray<ChronicleEvent>,
  options: AppendOptions,
) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    return yield* store
      .append(
        sessionStreamId(sessionId),
        events.map((e) => ({ ...toStored(e), metadata: { actor: actorLabel(actor) } })),
        options,
      )
      .pipe(
        // Fresh ids and decided events: a refusal of either is a bug, not the caller's mistake.
        Effect.catchTags({ InvalidAppend: Effect.die, IdempotencyConflict: Effect.die }),
      )
  })

/** Appends the first event(s) of a new session stream. */
export const createStream = (
  actor: Actor,
  ownerId: string,
  sessionId: string,
  events: ReadonlyArray<ChronicleEvent>,
) => appendNew(actor, sessionId, events, { expectedVersion: "no_stream", ownerId })

/** A further chunk of a new stream, expecting the version the previous chunks left. */
export const appendChunk = (
  actor: Actor,
  sessionId: string,
  events: ReadonlyArray<ChronicleEvent>,
  expectedVersion: number,
) => appendNew(actor, sessionId, events, { expectedVersion })

/** The refusal of a new session whose external key another session has. */
export const keyTaken = (sessionId: string, externalKey: string | null, action: string, advice = "") =>
  new InvalidTransition({
    entity: "session",
    id: sessionId,
    state: "exists",
    action,
    reason: `a session with external key ${JSON.stringify(externalKey)} already exists${advice}`,
  })
