import { type ChronicleEvent, fromStored, toStored } from "@chronicle/events"
import {
  Database,
  EventStore,
  type ExpectedVersion,
  IdempotencyConflict,
  VersionConflict,
} from "@chronicle/store"
import { Effect, type Result } from "effect"
import { v5 as uuidv5 } from "uuid"
import type { Actor } from "./actor.ts"
import { DomainConfig } from "./config.ts"

export interface CommandOptions {
  /** Fail with VersionConflict unless the stream is at this version (optimistic concurrency). */
  readonly expectedVersion?: number | undefined
  /** Makes the command safe to retry: a retry returns what the first attempt recorded. */
  readonly idempotencyKey?: string | undefined
}

export interface RecordedDomainEvent {
  readonly version: number
  readonly event: ChronicleEvent
}

export interface CommandResult {
  /** The stream's version after the command. */
  readonly version: number
  /** The events the command recorded (for a retry: those the first attempt recorded). */
  readonly events: ReadonlyArray<RecordedDomainEvent>
  /** True when this was a retry of an earlier command with the same idempotency key. */
  readonly duplicate: boolean
}

// Namespace of event ids derived from idempotency keys (a fixed, random UUID).
const IDEMPOTENCY_NAMESPACE = "8a3c5f2e-6b1d-4c7a-9e0f-4d2b8c6a1e53"

const derivedEventId = (streamId: string, key: string, index: number) =>
  uuidv5(`${streamId}\u0000${key}\u0000${index}`, IDEMPOTENCY_NAMESPACE)

const actorLabel = (actor: Actor) =>
  actor.kind === "user" ? `user:${actor.userId}` : actor.actingFor ? `service:${actor.actingFor}` : "service"

/** The events an earlier command with this key recorded, or undefined. */
const findPriorAttempt = (streamId: string, key: string) =>
  Effect.gen(function* () {
    const db = yield* Database
    const rows = yield* db
      .query<{
        stream_version: number
        type: string
        data: unknown
        schema_version: number
        stream_now: number
        operation: string | null
      }>(
        `with first as (
           select stream_version as v, coalesce((metadata ->> 'batchSize')::int, 1) as n,
                  metadata ->> 'operation' as operation
             from chronicle.events where event_id = $1 and stream_id = $2)
         select e.stream_version, e.type, e.data, e.schema_version, first.operation,
                (select version from chronicle.streams where stream_id = $2) as stream_now
           from chronicle.events e, first
          where e.stream_id = $2 and e.stream_version >= first.v and e.stream_version < first.v + first.n
          order by e.stream_version`,
        [derivedEventId(streamId, key, 0), streamId],
      )
      .pipe(Effect.orDie)
    if (rows.length === 0) return undefined
    const events = yield* Effect.forEach(rows, (row) =>
      fromStored({ type: row.type, data: row.data, schemaVersion: row.schema_version }).pipe(
        Effect.map((event) => ({ version: row.stream_version, event })),
        Effect.orDie,
      ),
    )
    return {
      operation: rows[0]!.operation,
      result: { version: Number(rows[0]!.stream_now), events, duplicate: true } satisfies CommandResult,
    }
  })

/**
 * Runs one command against one stream: load the state, decide, append expecting the loaded
 * version. When another append moved the stream in between, the command is decided again on
 * the new state (up to `conflictRetries` times) — unless the caller pinned `expectedVersion`,
 * in which case the conflict is theirs to handle.
 */
export const runCommand = <
  S extends { readonly version: number },
  C extends { readonly type: string },
  E1,
  E2,
  E3,
  R1,
  R2,
>(params: {
  readonly actor: Actor
  readonly streamId: string
  /** Loads the current state; for a stream that must not exist yet, returns version 0. */
  readonly load: Effect.Effect<S, E1, R1>
  /** The command for this state, with the facts the decider needs looked up. */
  readonly build: (state: S) => Effect.Effect<C, E2, R2>
  /** The pure decider. */
  readonly decide: (command: C, state: S) => Result.Result<ReadonlyArray<ChronicleEvent>, E3>
  readonly options?: CommandOptions | undefined
  /** Owner recorded on the stream if this command creates it. */
  readonly ownerId?: string | undefined
}) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const config = yield* DomainConfig
    const key = params.options?.idempotencyKey
    const pinned = params.options?.expectedVersion
    for (let attempt = 0; ; attempt++) {
      const state = yield* params.load
      const command = yield* params.build(state)
      if (key !== undefined) {
        const prior = yield* findPriorAttempt(params.streamId, key)
        if (prior !== undefined) {
          // The key names one request: reusing it for another kind of command is a client error.
          // A retry of the same kind returns the first attempt's result, whatever its payload:
          // the key, not the body, identifies the request (as payment APIs do).
          if (prior.operation !== command.type) {
            return yield* new IdempotencyConflict({
              streamId: params.streamId,
              eventIds: prior.result.events.map((_, i) => derivedEventId(params.streamId, key, i)),
            })
          }
          return prior.result
        }
      }
      if (pinned !== undefined && pinned !== state.version) {
        return yield* new VersionConflict({
          streamId: params.streamId,
          expected: pinned,
          actual: state.version,
        })
      }
      const events = yield* Effect.fromResult(params.decide(command, state))
      const metadata = {
        actor: actorLabel(params.actor),
        ...(key !== undefined
          ? { idempotencyKey: key, batchSize: events.length, operation: command.type }
          : {}),
      }
      const expectedVersion: ExpectedVersion = state.version === 0 ? "no_stream" : state.version
      const appended = yield* store
        .append(
          params.streamId,
          events.map((event, i) => ({
            ...toStored(event),
            metadata,
            ...(key !== undefined ? { eventId: derivedEventId(params.streamId, key, i) } : {}),
          })),
          { expectedVersion, ownerId: params.ownerId },
        )
        .pipe(
          Effect.map((result) => ({ result }) as const),
          Effect.catchTag("VersionConflict", (conflict) =>
            pinned === undefined && attempt < config.conflictRetries
              ? Effect.succeed({ retry: true } as const)
              : Effect.fail(conflict),
          ),
          // Events the deciders produced are valid by construction: a refusal here is a bug.
          Effect.catchTag("InvalidAppend", (invalid) => Effect.die(invalid)),
          // The same key raced us and won: the next loop finds and returns its result.
          Effect.catchTag("IdempotencyConflict", (conflict) =>
            key !== undefined && attempt < config.conflictRetries
              ? Effect.succeed({ retry: true } as const)
              : Effect.die(conflict),
          ),
        )
      if ("retry" in appended) continue
      return {
        version: appended.result.version,
        events: events.map((event, i) => ({ version: appended.result.events[i]!.version, event })),
        duplicate: false,
      } satisfies CommandResult
    }
  })
