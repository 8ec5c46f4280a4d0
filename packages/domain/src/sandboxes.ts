import {
  decideSandbox,
  type Forbidden,
  type InvalidCommand,
  InvalidTransition,
  NotFound,
  registerSandbox,
  type SandboxSnapshot,
  toStored,
} from "@chronicle/events"
import type { JsonObject, SandboxStatus } from "@chronicle/events/types"
import {
  type BatchTooLarge,
  type EventTooLarge,
  type IdempotencyConflict,
  isUuid,
  type VersionConflict,
} from "@chronicle/store"
import { Context, Effect, Layer, Option } from "effect"
import { v7 as uuidv7 } from "uuid"
import { type Actor, ensureVisible } from "./actor.ts"
import { type CommandOptions, runCommand } from "./command.ts"
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
import { sandboxStreamId } from "./queries.ts"
import { pageKey } from "./row-schema.ts"
import { type Page, type Sandbox, toSandbox } from "./rows.ts"
import { layerServices } from "./services.ts"
import { loadSession } from "./session/load.ts"

export interface RegisterSandboxInput {
  readonly sessionId: string
  readonly provider: string
  readonly externalId: string
  readonly url?: string | null | undefined
  readonly metadata?: JsonObject | undefined
}

export interface StatusChangeInput {
  readonly status: SandboxStatus
  readonly reason?: string | null
  /** A new URL; null keeps the one known. */
  readonly url?: string | null
}

export type SandboxesError =
  | NotFound
  | Forbidden
  | InvalidTransition
  | InvalidCommand
  | VersionConflict
  | BatchTooLarge
  | EventTooLarge
  | IdempotencyConflict

export interface SandboxesService {
  readonly register: (actor: Actor, input: RegisterSandboxInput) => Effect.Effect<Sandbox, SandboxesError>
  readonly get: (actor: Actor, id: string) => Effect.Effect<Sandbox, SandboxesError>
  readonly changeStatus: (
    actor: Actor,
    id: string,
    input: StatusChangeInput,
    options?: CommandOptions,
  ) => Effect.Effect<Sandbox, SandboxesError>
  readonly list: (
    actor: Actor,
    sessionId: string,
    page: PageRequest & { readonly status?: SandboxStatus | undefined },
  ) => Effect.Effect<Page<Sandbox>, SandboxesError>
}

const COLUMNS = `id::text, session_id::text, owner_id::text, provider, external_id, url, status, metadata,
  created_at, updated_at, started_at, ended_at`
const sandboxKey = pageKey("sandbox", { cursor_at: "text", id: "text" })

/**
 * Remote execution sandboxes (E2B instances and the like) that belong to a session. Each has
 * its own stream, so a session rollback never reverts one.
 */
export class Sandboxes extends Context.Service<Sandboxes, SandboxesService>()("@chronicle/domain/Sandboxes") {
  static readonly layer = Layer.effect(
    Sandboxes,
    Effect.gen(function* () {
      const { db, store, provide } = yield* layerServices
      const query = (text: string, params: ReadonlyArray<unknown>) =>
        db.query(text, params).pipe(Effect.orDie)

      const get = Effect.fn("Sandboxes.get")(function* (actor: Actor, id: string) {
        if (!isUuid(id)) return yield* new NotFound({ entity: "sandbox", id })
        const rows = yield* query(`select ${COLUMNS} from chronicle.sandboxes where id = $1::uuid`, [id])
        if (rows[0] === undefined) return yield* new NotFound({ entity: "sandbox", id })
        const sandbox = toSandbox(rows[0])
        yield* ensureVisible(actor, sandbox.ownerId, "sandbox", id)
        return sandbox
      })

      const register = Effect.fn("Sandboxes.register")(function* (actor: Actor, input: RegisterSandboxInput) {
        const session = yield* loadSession(actor, input.sessionId)
        const ownerId = session.session.ownerId
        const sandboxId = uuidv7()
        // Sandboxes run work for a live session only.
        if (session.session.status !== "active") {
          return yield* new InvalidTransition({
            entity: "session",
            id: session.session.id,
            state: session.session.status,
            action: "register a sandbox for",
            reason: `the session is ${session.session.status}; sandboxes can be registered only for active sessions`,
          })
        }
        const event = registerSandbox({
          sandboxId,
          sessionId: session.session.id,
          ownerId,
          provider: input.provider,
          externalId: input.externalId,
          url: input.url ?? null,
          metadata: input.metadata ?? {},
        })
        yield* store
          .append(sandboxStreamId(sandboxId), [toStored(event)], { expectedVersion: "no_stream", ownerId })
          .pipe(Effect.orDie)
        return yield* get(actor, sandboxId)
      })

      const changeStatus = Effect.fn("Sandboxes.changeStatus")(function* (
        actor: Actor,
        id: string,
        input: StatusChangeInput,
        options?: CommandOptions,
      ) {
        yield* runCommand({
          actor,
          streamId: sandboxStreamId(id),
          load: Effect.map(
            get(actor, id),
            (s): SandboxSnapshot => ({
              id: s.id,
              sessionId: s.sessionId,
              ownerId: s.ownerId,
              status: s.status,
              version: 0,
            }),
          ).pipe(Effect.flatMap((s) => Effect.map(versionOf(id), (version) => ({ ...s, version })))),
          build: () =>
            Effect.succeed({
              type: "ChangeSandboxStatus" as const,
              status: input.status,
              reason: input.reason ?? null,
              url: input.url ?? null,
            }),
          decide: decideSandbox,
          options,
        })
        return yield* get(actor, id)
      })

      const versionOf = (id: string) =>
        store
          .streamInfo(sandboxStreamId(id))
          .pipe(Effect.orDie, Effect.map(Option.match({ onNone: () => 0, onSome: (info) => info.version })))

      const list = Effect.fn("Sandboxes.list")(function* (
        actor: Actor,
        sessionId: string,
        page: PageRequest & { readonly status?: SandboxStatus | undefined },
      ) {
        yield* loadSession(actor, sessionId)
        const limit = yield* pageLimit(page.limit)
        const after = yield* decodePageCursor(page.cursor, ["timestamp", "uuid"] as const)
        const rows = yield* query(
          budgeted(
            `select ${COLUMNS}, ${cursorTime("created_at")} as cursor_at,
                    octet_length(metadata::text) + coalesce(octet_length(url), 0)
                      + octet_length(external_id) + ${ROW_OVERHEAD_BYTES} as page_bytes
               from chronicle.sandboxes
              where session_id = $1::uuid and ($2::text is null or status = $2::text)
                and ($3::text is null or (created_at, id) > ($3::text::timestamptz, $4::uuid))
              order by created_at, id limit $5`,
            "$6",
          ),
          [
            sessionId,
            page.status ?? null,
            after?.[0] ?? null,
            after?.[1] ?? null,
            limit + 1,
            budgetParam(page.maxBytes),
          ],
        )
        return toPage(rows, limit, toSandbox, sandboxKey, "asc", page.maxBytes)
      })

      return Sandboxes.of({
        register: (a, i) => provide(register(a, i)),
        get: (a, id) => provide(get(a, id)),
        changeStatus: (a, id, i, o) => provide(changeStatus(a, id, i, o)),
        list: (a, s, p) => provide(list(a, s, p)),
      })
    }),
  )
}
