/**
 * The command path, one for every aggregate: state → decide → append expecting the state's
 * version, the actor recorded once, in the events' metadata.
 *
 * The state comes from a per-process cache of what the last command on the stream left, or
 * else from the read model. A stale cache can never decide wrongly: the append expects the
 * cached version, so it conflicts, the state is read again and the command decided again. On
 * the hot paths (a message, a revision, a job's progress…) a command is then one round trip:
 * the append, which returns what the API answers (versions, positions, times), so nothing is
 * read back.
 *
 * An idempotency key derives the events' ids and is recorded with the operation and a
 * fingerprint of the request. A retry finds the first attempt's events (the append refuses ids
 * already used) and returns its result; the same key on a different request is a conflict
 * naming the key, as payment APIs answer.
 */
import { createHash } from "node:crypto"
import { type ChronicleEvent, fromStored, toStored } from "@chronicle/events"
import {
  BATCH_SIZE_KEY,
  EventStore,
  type ExpectedVersion,
  IdempotencyConflict,
  VersionConflict,
} from "@chronicle/store"
import { Context, Effect, Layer, type Result, Semaphore } from "effect"
import { v5 as uuidv5 } from "uuid"
import { type Actor, actorLabel } from "./actor.ts"
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
  /** When the log recorded it (ISO-8601). */
  readonly recordedAt: string
  readonly globalPosition: number
}

export interface CommandResult {
  /** The stream's version after the command. */
  readonly version: number
  /** The events the command recorded (for a retry: those the first attempt recorded). */
  readonly events: ReadonlyArray<RecordedDomainEvent>
  /** True when this was a retry of an earlier command with the same idempotency key. */
  readonly duplicate: boolean
}

/** A command's result with the state it left, when that is known without a read. */
export interface CommandOutcome<S> extends CommandResult {
  readonly state: S | undefined
}

// ----- the state cache ---------------------------------------------------------------------

const CACHE_ENTRIES = 10_000

/**
 * What the last command on each stream left, per process, most recently used kept; and the
 * turn each command on a stream takes in this process.
 */
export class CommandCache extends Context.Service<
  CommandCache,
  {
    readonly get: (streamId: string) => unknown
    readonly set: (streamId: string, state: unknown) => void
    readonly delete: (streamId: string) => void
    /**
     * Runs `effect` when no other command on the stream runs in this process: writers of one
     * session on one server take turns instead of racing to the same version and deciding
     * again, so only writers in other processes can make a command conflict.
     */
    readonly serialize: (
      streamId: string,
    ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  }
>()("@chronicle/domain/CommandCache") {
  static readonly layer = Layer.sync(CommandCache, () => {
    const entries = new Map<string, unknown>()
    // One lock per stream that has a command running or waiting; dropped when none has.
    const turns = new Map<string, { readonly lock: Semaphore.Semaphore; waiting: number }>()
    return CommandCache.of({
      serialize:
        (streamId) =>
        <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          Effect.suspend(() => {
            let turn = turns.get(streamId)
            if (turn === undefined) {
              turn = { lock: Semaphore.makeUnsafe(1), waiting: 0 }
              turns.set(streamId, turn)
            }
            const held = turn
            held.waiting++
            return held.lock.withPermit(effect).pipe(
              Effect.ensuring(
                Effect.sync(() => {
                  if (--held.waiting === 0) turns.delete(streamId)
                }),
              ),
            )
          }),
      get: (streamId) => {
        const state = entries.get(streamId)
        if (state !== undefined) {
          entries.delete(streamId)
          entries.set(streamId, state)
        }
        return state
      },
      set: (streamId, state) => {
        entries.delete(streamId)
        entries.set(streamId, state)
        if (entries.size > CACHE_ENTRIES) entries.delete(entries.keys().next().value!)
      },
      delete: (streamId) => void entries.delete(streamId),
    })
  })
}

// ----- idempotency ---------------------------------------------------------------------------

// Namespace of event ids derived from idempotency keys (a fixed, random UUID).
const IDEMPOTENCY_NAMESPACE = "8a3c5f2e-6b1d-4c7a-9e0f-4d2b8c6a1e53"

const derivedEventId = (streamId: string, key: string, index: number) =>
  uuidv5(`${streamId}\u0000${key}\u0000${index}`, IDEMPOTENCY_NAMESPACE)

/** JSON with object keys sorted, so equal requests have equal text whatever their key order. */
const canonical = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(canonical).join(",")}]`
    : value !== null && typeof value === "object"
      ? `{${Object.keys(value)
          .sort()
          .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
          .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
          .join(",")}}`
      : JSON.stringify(value)

/** A fingerprint of a request: its operation and what the caller asked for. */
export const fingerprintOf = (operation: string, input: unknown) =>
  createHash("sha256")
    .update(`${operation}\u0000${canonical(input)}`)
    .digest("hex")

/** The events an earlier command with this key recorded, and what it was, or undefined. */
const findPriorAttempt = (streamId: string, key: string) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const found = yield* store
      .findBatchByEventId(streamId, derivedEventId(streamId, key, 0))
      .pipe(Effect.orDie)
    if (found._tag === "None") return undefined
    const batch = found.value
    const events = yield* Effect.forEach(batch.events, (recorded) =>
      fromStored(recorded).pipe(
        Effect.map(
          (event): RecordedDomainEvent => ({
            version: recorded.version,
            event,
            recordedAt: recorded.recordedAt.toISOString(),
            globalPosition: recorded.globalPosition,
          }),
        ),
        Effect.orDie,
      ),
    )
    const first = batch.events[0]!.metadata
    return {
      operation: typeof first.operation === "string" ? first.operation : null,
      fingerprint: typeof first.fingerprint === "string" ? first.fingerprint : null,
      result: { version: batch.streamVersion, events, duplicate: true } satisfies CommandResult,
    }
  })

// ----- the command path ----------------------------------------------------------------------

/**
 * A short pause before deciding again, so that writers racing on one stream from several
 * processes spread out: "full jitter", a random time up to 2^(attempt + 1) ms, at most 50 ms.
 * With the default 50 retries a command gives up after at most 2.3 s of pauses.
 */
const jitter = (attempt: number) =>
  Effect.sleep(Math.floor(Math.random() * Math.min(2 ** (attempt + 1), MAX_BACKOFF_MS)))

const MAX_BACKOFF_MS = 50

/**
 * Runs one command against one stream: state, decide, append expecting the state's version.
 * Commands on one stream take turns within the process (`CommandCache.serialize`). When an
 * append from another process moved the stream first, the command is decided again on the new
 * state after a jittered pause (up to `conflictRetries` times) — unless the caller pinned
 * `expectedVersion`, in which case the conflict is theirs to handle.
 */
export const runCommand = <
  S extends { readonly version: number },
  C extends { readonly type: string },
  E1,
  E2,
  E3,
  R1,
  R2,
  E4 = never,
  R3 = never,
>(params: {
  readonly actor: Actor
  readonly streamId: string
  /** Reads the current state from the read model; for a stream that must not exist yet, version 0. */
  readonly load: Effect.Effect<S, E1, R1>
  /** Whether the actor may act on this state (the check `load` makes, for a cached state). */
  readonly authorize?: ((state: S) => Effect.Effect<void, E4, R3>) | undefined
  /** The state after the command's events, to cache; undefined when only a read can tell. */
  readonly advance?: ((state: S, events: ReadonlyArray<RecordedDomainEvent>) => S | undefined) | undefined
  /** The command for this state, with the facts the decider needs looked up. */
  readonly build: (state: S) => Effect.Effect<C, E2, R2>
  /** The pure decider. */
  readonly decide: (command: C, state: S) => Result.Result<ReadonlyArray<ChronicleEvent>, E3>
  readonly options?: CommandOptions | undefined
  /** What the caller asked for, for the idempotency key's fingerprint (default: the command). */
  readonly input?: unknown
  /** Owner recorded on the stream if this command creates it. */
  readonly ownerId?: string | undefined
}) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const config = yield* DomainConfig
    const cache = yield* Effect.serviceOption(CommandCache)
    const key = params.options?.idempotencyKey
    const pinned = params.options?.expectedVersion

    /** The first attempt's result for a retry of the same request; a conflict naming the key otherwise. */
    const answerPrior = (
      prior: NonNullable<Effect.Success<ReturnType<typeof findPriorAttempt>>>,
      command: C,
    ) => {
      const sameRequest =
        prior.operation === command.type &&
        (prior.fingerprint === null ||
          prior.fingerprint === fingerprintOf(command.type, params.input ?? command))
      return sameRequest
        ? Effect.succeed({ ...prior.result, state: undefined } satisfies CommandOutcome<S>)
        : Effect.fail(
            new IdempotencyConflict({
              streamId: params.streamId,
              eventIds: prior.result.events.map((_, i) => derivedEventId(params.streamId, key!, i)),
              idempotencyKey: key!,
            }),
          )
    }

    const cached = (): S | undefined =>
      cache._tag === "Some" ? (cache.value.get(params.streamId) as S | undefined) : undefined
    const forget = () => (cache._tag === "Some" ? cache.value.delete(params.streamId) : undefined)

    const attempts = Effect.gen(function* () {
      for (let attempt = 0; ; attempt++) {
        let state = cached()
        // A cached state that disagrees with the caller's expected version may only be stale.
        if (state !== undefined && (pinned === undefined || pinned === state.version)) {
          if (params.authorize !== undefined) yield* params.authorize(state)
        } else {
          state = yield* params.load
        }
        if (pinned !== undefined && pinned !== state.version) {
          forget()
          // A retry of a command that succeeded moved the stream itself: answer it as a retry.
          const prior = key === undefined ? undefined : yield* findPriorAttempt(params.streamId, key)
          if (prior !== undefined) return yield* answerPrior(prior, yield* params.build(state))
          return yield* new VersionConflict({
            streamId: params.streamId,
            expected: pinned,
            actual: state.version,
          })
        }
        const command = yield* params.build(state)
        const decided = params.decide(command, state)
        if (decided._tag === "Failure" && key !== undefined) {
          // Refused on this state: a retry of a command that succeeded (a job started twice)
          // answers with the first attempt's result.
          const prior = yield* findPriorAttempt(params.streamId, key)
          if (prior !== undefined) return yield* answerPrior(prior, command)
        }
        const events = yield* Effect.fromResult(decided)
        const metadata = {
          actor: actorLabel(params.actor),
          ...(key !== undefined
            ? {
                idempotencyKey: key,
                [BATCH_SIZE_KEY]: events.length,
                operation: command.type,
                fingerprint: fingerprintOf(command.type, params.input ?? command),
              }
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
            Effect.catchTag("VersionConflict", (conflict) => {
              forget()
              return pinned === undefined && attempt < config.conflictRetries
                ? Effect.logDebug("command decided again: another append moved the stream", {
                    streamId: params.streamId,
                    attempt: attempt + 1,
                  }).pipe(Effect.andThen(jitter(attempt)), Effect.as({ retry: true } as const))
                : Effect.fail(conflict)
            }),
            // Events the deciders produced are valid by construction: a refusal here is a bug.
            Effect.catchTag("InvalidAppend", (invalid) => Effect.die(invalid)),
            Effect.catchTag("IdempotencyConflict", (conflict) =>
              key === undefined ? Effect.die(conflict) : Effect.succeed({ prior: true } as const),
            ),
          )
        if ("retry" in appended) continue
        if ("prior" in appended) {
          // The key's events are in the log: this is a retry, or the key was used for something else.
          const prior = yield* findPriorAttempt(params.streamId, key!)
          if (prior === undefined) {
            if (attempt < config.conflictRetries) continue
            return yield* Effect.die(
              new Error(`idempotency key ${key} conflicted, yet its events are not found`),
            )
          }
          return yield* answerPrior(prior, command)
        }
        const recorded = events.map(
          (event, i): RecordedDomainEvent => ({
            version: appended.result.events[i]!.version,
            event,
            recordedAt: appended.result.events[i]!.recordedAt.toISOString(),
            globalPosition: appended.result.events[i]!.globalPosition,
          }),
        )
        // A retry whose events were exactly the first attempt's: the stream may have moved since.
        const next = appended.result.duplicate ? undefined : params.advance?.(state, recorded)
        if (cache._tag === "Some") {
          if (next === undefined) forget()
          else cache.value.set(params.streamId, next)
        }
        return {
          version: appended.result.version,
          events: recorded,
          duplicate: appended.result.duplicate,
          state: next,
        } satisfies CommandOutcome<S>
      }
    })
    return yield* cache._tag === "Some" ? cache.value.serialize(params.streamId)(attempts) : attempts
  })
