/**
 * The Sessions service: its methods by concern (sessions/): lifecycle (create, ensure, update,
 * archive, delete), reads (get, getByKey, list), history (checkpoints, rollback, fork,
 * timeline) and transfer (export, import). How a new session's stream begins is in
 * sessions/start.ts; what every service shares about a session (loading it, as-of reads, its
 * command path) in session/.
 */
import type { JsonObject } from "@chronicle/events/types"
import { Context, Effect, Layer } from "effect"
import type { Actor } from "./actor.ts"
import type { CommandOptions } from "./command.ts"
import type { PageRequest } from "./paging.ts"
import type { Checkpoint, Page, Session, TimelineEntry } from "./rows.ts"
import { layerServices } from "./services.ts"
import type { SessionsError } from "./session/command.ts"
import type { AsOf } from "./session/load.ts"
import * as history from "./sessions/history.ts"
import * as lifecycle from "./sessions/lifecycle.ts"
import type { ListSessionsInput } from "./sessions/reads.ts"
import * as reads from "./sessions/reads.ts"
import type { CreateSessionInput } from "./sessions/start.ts"
import type { ImportConversationInput, SessionExport } from "./sessions/transfer.ts"
import * as transfer from "./sessions/transfer.ts"

export { parseVersionRanges } from "./sessions/history.ts"
export { type ListSessionsInput, MAX_SEARCH_LENGTH } from "./sessions/reads.ts"
export { type CreateSessionInput, sessionIdForKey } from "./sessions/start.ts"
export {
  IMPORT_CHUNK,
  type ImportConversationInput,
  type ImportedMessage,
  type SessionExport,
} from "./sessions/transfer.ts"

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

/** Sessions: lifecycle, checkpoints, rollback, fork, as-of reads, timeline, import/export. */
export class Sessions extends Context.Service<Sessions, SessionsService>()("@chronicle/domain/Sessions") {
  static readonly layer = Layer.effect(
    Sessions,
    Effect.gen(function* () {
      const { provide } = yield* layerServices
      return Sessions.of({
        create: (actor, input) => provide(lifecycle.create(actor, input)),
        ensure: (actor, input) => provide(lifecycle.ensure(actor, input)),
        getByKey: (actor, key) => provide(reads.getByKey(actor, key)),
        get: (actor, id, asOf) => provide(reads.get(actor, id, asOf)),
        list: (actor, input) => provide(reads.list(actor, input)),
        update: (actor, id, input, options) => provide(lifecycle.update(actor, id, input, options)),
        archive: (actor, id, reason) => provide(lifecycle.archive(actor, id, reason)),
        delete: (actor, id, reason) => provide(lifecycle.remove(actor, id, reason)),
        rollback: (actor, id, to, options) => provide(history.rollback(actor, id, to, options)),
        fork: (actor, id, at, input) => provide(history.fork(actor, id, at, input)),
        timeline: (actor, id, page) => provide(history.timeline(actor, id, page)),
        export: (actor, id, page) => provide(transfer.exportSession(actor, id, page)),
        importConversation: (actor, input) => provide(transfer.importConversation(actor, input)),
        createCheckpoint: (actor, id, label, options) =>
          provide(history.createCheckpoint(actor, id, label, options)),
        listCheckpoints: (actor, id, page) => provide(history.listCheckpoints(actor, id, page)),
        getCheckpoint: (actor, id, checkpointId) =>
          provide(history.getVisibleCheckpoint(actor, id, checkpointId)),
      })
    }),
  )
}
