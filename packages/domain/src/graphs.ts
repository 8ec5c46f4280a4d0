/**
 * Agent-graph threads: the storage behind a LangGraph checkpointer. A thread is the stream
 * `graph-<uuid>`, the uuid derived from (owner, thread id) as sessions' external keys are, so
 * a thread id names one stream per owner, and another owner's thread of the same name is a
 * different stream. Checkpoints, pending writes and deletions are events; reads are indexed
 * queries over the `graph_*` read model.
 *
 * Puts are safe to repeat. With an `idempotencyKey` the key names the request: the event's id
 * is derived from it, and a retry returns the first attempt's answer. Without one, a put the
 * thread already holds exactly records nothing; the event id is then derived from the put's
 * content and the stream version it was decided at, so identical puts racing each other are
 * recorded once by the store.
 *
 * Storage grows with what a thread adds. A channel's value is stored once per version, and a
 * list channel (a conversation's messages) may arrive as the items it added to another
 * version of it (`list.base`, whose first `list.keep` items it keeps): a 200-turn chat stores
 * each message once, not once per turn. A value larger than INLINE_VALUE_BYTES goes to the
 * content-addressed blob store (as files' bytes do) and the event carries its SHA-256, so no
 * single value is too large for a thread.
 */
import { createHash } from "node:crypto"
import {
  type ChannelBlob,
  type ChannelBlobInput,
  type ChronicleEvent,
  type Forbidden,
  fromStored,
  type GraphThreadStarted,
  InvalidCommand,
  JsonObject as JsonObjectSchema,
  NotFound,
  type StoredValue,
  toStored,
} from "@chronicle/events"
import type { JsonObject, SerializedValue } from "@chronicle/events/types"
import {
  type BatchTooLarge,
  type EventTooLarge,
  type ExpectedVersion,
  findNonJson,
  IdempotencyConflict,
  isUuid,
} from "@chronicle/store"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { v5 as uuidv5 } from "uuid"
import { type Actor, actorLabel, ownerFor } from "./actor.ts"
import { budgeted, budgetParam, DEFAULT_LIMIT, MAX_LIMIT, ROW_OVERHEAD_BYTES, toPage } from "./paging.ts"
import { decoder, Num, pageKey, type Row, Text, Time } from "./row-schema.ts"
import { iso, type Page } from "./rows.ts"
import { layerServices } from "./services.ts"

// Graph ids are derived from (owner, thread id) in their own namespace (a fixed, random UUID).
const GRAPH_THREAD_NAMESPACE = "c4a7e2d9-5b13-4f6e-8a2d-7e9b1c3f5a60"
export const graphIdForThread = (ownerId: string, threadId: string) =>
  uuidv5(`${ownerId}\u0000${threadId}`, GRAPH_THREAD_NAMESPACE)
export const graphStreamId = (graphId: string) => `graph-${graphId}`

// Ids of put events: from the caller's idempotency key, or from the put's content and the
// stream version it was decided at (two fixed, random UUIDs).
const PUT_KEY_NAMESPACE = "0d6f3b8e-2a47-4c19-b5e0-9c8a1f7d3e24"
const PUT_CONTENT_NAMESPACE = "e5b2c9a1-7d34-4f8e-a6c0-3b1d8e2f9a57"
const keyedEventId = (streamId: string, key: string) => uuidv5(`${streamId}\u0000${key}`, PUT_KEY_NAMESPACE)
const contentEventId = (streamId: string, data: unknown, streamVersion: number) =>
  uuidv5(
    `${streamId}\u0000${streamVersion}\u0000${createHash("sha256").update(canonicalJson(data)).digest("hex")}`,
    PUT_CONTENT_NAMESPACE,
  )

/** JSON with object keys sorted, so equal values digest alike whatever order their keys came in. */
const canonicalJson = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(canonicalJson).join(",")}]`
    : typeof value === "object" && value !== null
      ? `{${Object.keys(value)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
          .join(",")}}`
      : JSON.stringify(value)

export interface GraphPutOptions {
  /**
   * Names the request: a retry with the same key returns the first attempt's answer and
   * records nothing, whatever its payload; the same key on the other kind of put is a conflict.
   */
  readonly idempotencyKey?: string | undefined
}

/**
 * One channel's value at one version as a read returns it: a whole value (`value`), or a list
 * whose items were serialized one by one (`items`, assembled from the versions it grew from).
 */
export type ChannelBlobView =
  | { readonly channel: string; readonly version: string; readonly value: SerializedValue }
  | { readonly channel: string; readonly version: string; readonly items: ReadonlyArray<SerializedValue> }

/**
 * The largest value (its base64 text) an event carries inline; a larger one goes to the blob
 * store, and the event carries its SHA-256.
 */
export const INLINE_VALUE_BYTES = 64 * 1024

export interface PendingWriteView {
  readonly taskId: string
  readonly taskPath: string
  readonly idx: number
  readonly channel: string
  readonly value: SerializedValue
}

export interface PutCheckpointInput {
  readonly threadId: string
  readonly checkpointNs: string
  readonly checkpointId: string
  readonly parentCheckpointId: string | null
  readonly checkpoint: SerializedValue
  readonly metadata: JsonObject
  readonly channelVersions: { readonly [channel: string]: string }
  /** The values of the channels that changed: whole, or a list on top of another version. */
  readonly blobs: ReadonlyArray<ChannelBlobInput>
}

export interface PutWritesInput {
  readonly threadId: string
  readonly checkpointNs: string
  readonly checkpointId: string
  readonly taskId: string
  readonly taskPath: string
  readonly writes: ReadonlyArray<{
    readonly idx: number
    readonly channel: string
    readonly value: SerializedValue
  }>
}

/** A stored checkpoint with the channel values it refers to and the writes made against it. */
export interface GraphCheckpointTuple {
  readonly threadId: string
  readonly checkpointNs: string
  readonly checkpointId: string
  readonly parentCheckpointId: string | null
  readonly checkpoint: SerializedValue
  readonly metadata: JsonObject
  readonly channelVersions: { readonly [channel: string]: string }
  /** The values under `channelVersions` that are stored (a channel never written has none). */
  readonly blobs: ReadonlyArray<ChannelBlobView>
  /** In the order a graph applies them: (task path, task id, idx), strings by code point. */
  readonly writes: ReadonlyArray<PendingWriteView>
  /** The thread's stream version that saved it. */
  readonly version: number
  readonly createdAt: string
}

export interface CheckpointRef {
  readonly threadId: string
  readonly checkpointNs: string
  readonly checkpointId: string
}

export interface ListCheckpointsInput {
  /** One thread; absent: every thread of the owner. */
  readonly threadId?: string | undefined
  /** One namespace; absent: all. */
  readonly checkpointNs?: string | undefined
  /** Only the checkpoint with this id. */
  readonly checkpointId?: string | undefined
  /** Only checkpoints whose id sorts before this one. */
  readonly before?: string | undefined
  /** Only checkpoints whose metadata contains this object. */
  readonly filter?: JsonObject | undefined
  readonly cursor?: string | null | undefined
  readonly limit?: number | undefined
  /** The most bytes of JSON the page may take (it ends early, with a cursor). */
  readonly maxBytes?: number | undefined
}

export type GraphsError =
  | InvalidCommand
  | NotFound
  | Forbidden
  | BatchTooLarge
  | EventTooLarge
  | IdempotencyConflict

export interface GraphsService {
  /** Saves a checkpoint; one the thread already holds exactly records nothing (see GraphPutOptions). */
  readonly putCheckpoint: (
    actor: Actor,
    input: PutCheckpointInput,
    options?: GraphPutOptions,
  ) => Effect.Effect<CheckpointRef, GraphsError>
  /** Saves a task's writes; writes the thread already holds exactly record nothing. */
  readonly putWrites: (
    actor: Actor,
    input: PutWritesInput,
    options?: GraphPutOptions,
  ) => Effect.Effect<{ readonly version: number }, GraphsError>
  /** The checkpoint with this id, or the thread's latest in the namespace; null when there is none. */
  readonly getTuple: (
    actor: Actor,
    input: {
      readonly threadId: string
      readonly checkpointNs: string
      readonly checkpointId?: string | undefined
    },
  ) => Effect.Effect<GraphCheckpointTuple | null, GraphsError>
  /** Checkpoints, newest id first. */
  readonly list: (
    actor: Actor,
    input: ListCheckpointsInput,
  ) => Effect.Effect<Page<GraphCheckpointTuple>, GraphsError>
  /** Records the thread's deletion; its checkpoints and writes read as gone. The events stay. */
  readonly deleteThread: (
    actor: Actor,
    threadId: string,
  ) => Effect.Effect<{ readonly deleted: boolean }, GraphsError>
}

const TUPLE_COLUMNS = `c.checkpoint_ns, c.checkpoint_id, c.thread_id, c.parent_checkpoint_id, c.checkpoint_type,
  c.checkpoint, c.metadata, c.channel_versions, c.version, c.created_at,
  (select coalesce(jsonb_agg(jsonb_build_object('channel', v.channel, 'version', v.version) || x.value
            order by v.channel), '[]'::jsonb)
     from jsonb_each_text(c.channel_versions) v(channel, version)
     cross join lateral chronicle.graph_value(c.graph_id, c.checkpoint_ns, v.channel, v.version) x(value)
    where x.value is not null) as blobs,
  (select coalesce(jsonb_agg(jsonb_build_object('taskId', w.task_id, 'taskPath', w.task_path, 'idx', w.idx,
            'channel', w.channel, 'value', chronicle.graph_inline(w.type, w.data, w.sha256))
            order by w.task_path collate "C", w.task_id collate "C", w.idx), '[]'::jsonb)
     from chronicle.graph_writes w
    where w.graph_id = c.graph_id and w.checkpoint_ns = c.checkpoint_ns
      and w.checkpoint_id = c.checkpoint_id) as writes`

// A tuple row (TUPLE_COLUMNS), decoded. The values were checked when they were put; here only
// their shape is. The fields of the objects jsonb builds (blobs, writes) are listed in jsonb's
// key order (shorter keys first), which is the order the decoded objects keep: answers read
// exactly as before.
const ValueView = Schema.Struct({ data: Schema.String, type: Schema.String })
const decodeTupleRow = decoder(
  "graph checkpoint",
  "checkpoint_id",
  Schema.Struct({
    thread_id: Schema.String,
    checkpoint_ns: Schema.String,
    checkpoint_id: Schema.String,
    parent_checkpoint_id: Text,
    checkpoint_type: Schema.String,
    checkpoint: Schema.String,
    metadata: JsonObjectSchema,
    channel_versions: Schema.Record(Schema.String, Schema.String),
    blobs: Schema.Array(
      Schema.Union([
        Schema.Struct({ value: ValueView, channel: Schema.String, version: Schema.String }),
        Schema.Struct({ items: Schema.Array(ValueView), channel: Schema.String, version: Schema.String }),
      ]),
    ),
    writes: Schema.Array(
      Schema.Struct({
        idx: Schema.Number,
        value: ValueView,
        taskId: Schema.String,
        channel: Schema.String,
        taskPath: Schema.String,
      }),
    ),
    version: Num,
    created_at: Time,
  }),
)

/** A row of `chronicle.graph_checkpoints` with its values and writes (TUPLE_COLUMNS). */
export const toCheckpointTuple = (row: Row): GraphCheckpointTuple => {
  const r = decodeTupleRow(row)
  return {
    threadId: r.thread_id,
    checkpointNs: r.checkpoint_ns,
    checkpointId: r.checkpoint_id,
    parentCheckpointId: r.parent_checkpoint_id ?? null,
    checkpoint: { type: r.checkpoint_type, data: r.checkpoint },
    metadata: r.metadata,
    channelVersions: r.channel_versions,
    blobs: r.blobs,
    writes: r.writes,
    version: Number(r.version),
    createdAt: iso(r.created_at),
  }
}

/** Whether a thread already holds a task's writes exactly, and the version that stored them. */
const decodeHeldWrites = decoder(
  "graph writes",
  "version",
  Schema.Struct({ version: Num, held: Schema.Boolean }),
)
/** Whether a thread has checkpoints to delete. */
const decodeLive = decoder("graph thread", "live", Schema.Struct({ live: Schema.Boolean }))

// List cursors: [checkpoint id, graph id, namespace] of the last item, opaque to clients.
const tupleKey = pageKey("graph checkpoint", {
  checkpoint_id: "text",
  graph_id: "text",
  checkpoint_ns: "text",
})

const decodeListCursor = (cursor: string | null | undefined) => {
  if (cursor === null || cursor === undefined) return Effect.succeed(null)
  try {
    const key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown
    if (
      Array.isArray(key) &&
      key.length === 3 &&
      typeof key[0] === "string" &&
      isUuid(key[1]) &&
      typeof key[2] === "string" &&
      // A cursor is handed out from stored text: one with text Postgres cannot hold (a NUL,
      // a lone surrogate) was made up, and would fail in the database.
      findNonJson(key, "cursor") === undefined
    ) {
      return Effect.succeed(key as [string, string, string])
    }
  } catch {}
  return Effect.fail(new InvalidCommand({ path: "cursor", reason: "is not a cursor this list handed out" }))
}

const checkLimit = (limit: number | undefined) =>
  limit === undefined
    ? Effect.succeed(DEFAULT_LIMIT)
    : Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT
      ? Effect.succeed(limit)
      : Effect.fail(
          new InvalidCommand({ path: "limit", reason: `must be a whole number from 1 to ${MAX_LIMIT}` }),
        )

/** LangGraph threads: checkpoints, channel values, pending writes; deletion as an event. */
export class Graphs extends Context.Service<Graphs, GraphsService>()("@chronicle/domain/Graphs") {
  static readonly layer = Layer.effect(
    Graphs,
    Effect.gen(function* () {
      const { db, store, provide } = yield* layerServices
      const query = (text: string, params: ReadonlyArray<unknown>) =>
        db.query(text, params).pipe(Effect.orDie)

      /**
       * Appends to a thread's stream, starting it when it has no events yet. Starting races
       * are settled by the store: the loser's "no stream" append conflicts, and it appends
       * again to the stream that now exists. `put` is the last event, with its id when the
       * caller derived one (the thread's start always gets a fresh id).
       */
      const appendToThread = (
        actor: Actor,
        threadId: string,
        put: { readonly event: ChronicleEvent; readonly eventId?: string | undefined },
        extraMetadata: { readonly idempotencyKey?: string } = {},
        expected?: number,
      ) =>
        Effect.gen(function* () {
          const ownerId = yield* ownerFor(actor)
          const graphId = graphIdForThread(ownerId, threadId)
          const streamId = graphStreamId(graphId)
          const metadata = { actor: actorLabel(actor), ...extraMetadata }
          const started: typeof GraphThreadStarted.Type = {
            type: "GraphThreadStarted",
            graphId,
            ownerId,
            threadId,
          }
          const last = {
            ...toStored(put.event),
            metadata,
            ...(put.eventId === undefined ? {} : { eventId: put.eventId }),
          }
          const append = (withStart: boolean, expectedVersion: ExpectedVersion) =>
            store.append(streamId, withStart ? [{ ...toStored(started), metadata }, last] : [last], {
              expectedVersion,
              ownerId,
            })
          if (expected !== undefined) {
            // The put was decided at this version of the thread: a conflict means decide again.
            const result = yield* append(false, expected).pipe(Effect.catchTag("InvalidAppend", Effect.die))
            return { graphId, version: result.version }
          }
          const exists = Option.isSome(yield* store.streamInfo(streamId).pipe(Effect.orDie))
          const result = yield* (exists ? append(false, "stream_exists") : append(true, "no_stream")).pipe(
            Effect.catchTag("VersionConflict", () => append(false, "stream_exists")),
            // Events built here are valid: a refusal is a bug. An id already used by another
            // append is the caller's to settle (only derived ids can be).
            Effect.catchTags({ InvalidAppend: Effect.die, VersionConflict: Effect.die }),
          )
          return { graphId, version: result.version }
        })

      /** The recorded event a key names in this stream, decoded; undefined when there is none. */
      const findKeyed = (streamId: string, eventId: string) =>
        Effect.gen(function* () {
          const found = yield* store.findEventById(streamId, eventId).pipe(Effect.orDie)
          if (found._tag === "None") return undefined
          const event = yield* fromStored(found.value).pipe(Effect.orDie)
          return { event, version: found.value.version }
        })

      /**
       * Records one put, once. With a key, a recorded event under it is the answer (another
       * kind of put under it is a conflict). Without one, `held` answers when the thread
       * already holds the put exactly, and the event id comes from the content and the stream
       * version, so identical puts decided at the same version are one event. An id taken by
       * a racing put is settled by deciding again: the winner's event is then found.
       */
      const recordPut = <A>(params: {
        readonly actor: Actor
        readonly threadId: string
        readonly event: ChronicleEvent
        readonly key: string | undefined
        /**
         * What must hold of the thread for the put to be recorded, checked at the version it is
         * appended at: the put is appended only if the thread has not moved since.
         */
        readonly check?: ((graphId: string) => Effect.Effect<void, NotFound>) | undefined
        readonly held: (graphId: string, data: unknown) => Effect.Effect<A | undefined>
        readonly answer: (recorded: { readonly event: ChronicleEvent; readonly version: number }) => A
      }) =>
        Effect.gen(function* () {
          const ownerId = yield* ownerFor(params.actor)
          const graphId = graphIdForThread(ownerId, params.threadId)
          const streamId = graphStreamId(graphId)
          const data = toStored(params.event).data
          for (let attempt = 0; ; attempt++) {
            const stream = yield* store.streamInfo(streamId).pipe(Effect.orDie)
            const streamVersion = Option.match(stream, { onNone: () => 0, onSome: (info) => info.version })
            let eventId: string
            if (params.key !== undefined) {
              eventId = keyedEventId(streamId, params.key)
              const prior = yield* findKeyed(streamId, eventId)
              if (prior !== undefined) {
                if (prior.event.type !== params.event.type) {
                  return yield* new IdempotencyConflict({ streamId, eventIds: [eventId] })
                }
                return params.answer(prior)
              }
            } else {
              if (streamVersion > 0) {
                const held = yield* params.held(graphId, data)
                if (held !== undefined) return held
              }
              eventId = contentEventId(streamId, data, streamVersion)
            }
            if (params.check !== undefined) yield* params.check(graphId)
            const appended = yield* appendToThread(
              params.actor,
              params.threadId,
              { event: params.event, eventId },
              params.key === undefined ? {} : { idempotencyKey: params.key },
              params.check === undefined ? undefined : streamVersion,
            ).pipe(
              Effect.map((result) => ({ result }) as const),
              Effect.catchTag("IdempotencyConflict", (conflict) =>
                attempt < 3 ? Effect.succeed({ retry: true } as const) : Effect.fail(conflict),
              ),
              Effect.catchTag("VersionConflict", (conflict) =>
                attempt < 20 ? Effect.succeed({ retry: true } as const) : Effect.die(conflict),
              ),
            )
            if ("retry" in appended) continue
            return params.answer({ event: params.event, version: appended.result.version })
          }
        })

      /**
       * A value as the event keeps it: inline, or (larger than INLINE_VALUE_BYTES) in the blob
       * store under its SHA-256. The bytes are stored before the event: a put that then fails
       * leaves them unreferenced, never an event without its bytes.
       */
      const storeValue = (value: SerializedValue): Effect.Effect<StoredValue> => {
        if (value.data.length <= INLINE_VALUE_BYTES) return Effect.succeed(value)
        const bytes = Buffer.from(value.data, "base64")
        const sha256 = createHash("sha256").update(bytes).digest("hex")
        return query(
          `insert into chronicle.blobs (sha256, size, content) values ($1, $2, $3::bytea)
           on conflict (sha256) do nothing`,
          [sha256, bytes.byteLength, new Uint8Array(bytes)],
        ).pipe(Effect.as({ type: value.type, sha256, size: bytes.byteLength }))
      }

      const storeChannelBlob = (blob: ChannelBlobInput): Effect.Effect<ChannelBlob> =>
        "list" in blob
          ? Effect.map(Effect.forEach(blob.list.items, storeValue), (items) => ({
              channel: blob.channel,
              version: blob.version,
              list: { base: blob.list.base, keep: blob.list.keep, items },
            }))
          : Effect.map(storeValue(blob.value), (value) => ({
              channel: blob.channel,
              version: blob.version,
              value,
            }))

      const putCheckpoint = Effect.fn("Graphs.putCheckpoint")(function* (
        actor: Actor,
        input: PutCheckpointInput,
        options?: GraphPutOptions,
      ) {
        const bases: Array<{ channel: string; version: string; keep: number; path: string }> = []
        for (const [i, blob] of input.blobs.entries()) {
          if (input.channelVersions[blob.channel] === undefined) {
            return yield* new InvalidCommand({
              path: "blobs",
              reason: `channel ${JSON.stringify(blob.channel)} has a value but no version in channelVersions`,
            })
          }
          if (!("list" in blob)) continue
          const { base, keep } = blob.list
          if (base === null && keep > 0) {
            return yield* new InvalidCommand({
              path: `blobs.${i}.list.keep`,
              reason: "must be 0 when the list has no base",
            })
          }
          if (base === blob.version) {
            return yield* new InvalidCommand({
              path: `blobs.${i}.list.base`,
              reason: "must be another version than the list's own",
            })
          }
          if (base !== null && keep > 0) {
            bases.push({ channel: blob.channel, version: base, keep, path: `blobs.${i}.list.base` })
          }
        }
        const blobs = yield* Effect.forEach(input.blobs, storeChannelBlob)
        const asked: CheckpointRef = {
          threadId: input.threadId,
          checkpointNs: input.checkpointNs,
          checkpointId: input.checkpointId,
        }
        return yield* recordPut({
          actor,
          threadId: input.threadId,
          key: options?.idempotencyKey,
          event: {
            type: "GraphCheckpointSaved",
            checkpointNs: input.checkpointNs,
            checkpointId: input.checkpointId,
            parentCheckpointId: input.parentCheckpointId,
            checkpoint: input.checkpoint,
            metadata: input.metadata,
            channelVersions: input.channelVersions,
            blobs,
          },
          // A list on top of another version needs that version, stored as a list of at least
          // the items it keeps (a deleted thread holds none).
          check:
            bases.length === 0
              ? undefined
              : (graphId) =>
                  Effect.forEach(bases, (base) =>
                    query(
                      `select 1 from chronicle.graph_blobs
                        where graph_id = $1::uuid and checkpoint_ns = $2 and channel = $3 and version = $4
                          and items is not null and length >= $5`,
                      [graphId, input.checkpointNs, base.channel, base.version, base.keep],
                    ).pipe(
                      Effect.flatMap((rows) =>
                        rows.length > 0
                          ? Effect.void
                          : Effect.fail(
                              new NotFound({
                                entity: `${base.path}: the list`,
                                id: `of channel ${JSON.stringify(base.channel)} at version ${JSON.stringify(base.version)}, with ${base.keep} or more items,`,
                              }),
                            ),
                      ),
                    ),
                  ).pipe(Effect.asVoid),
          // Held: the checkpoint row is as given, and so is every value it brings (the
          // comparison mirrors what project_graph stores).
          held: (graphId, data) =>
            query(
              `select 1 from chronicle.graph_checkpoints c, (select $2::text::jsonb as d) p
                where c.graph_id = $1::uuid
                  and c.checkpoint_ns = p.d ->> 'checkpointNs' and c.checkpoint_id = p.d ->> 'checkpointId'
                  and c.parent_checkpoint_id is not distinct from p.d ->> 'parentCheckpointId'
                  and c.checkpoint_type = p.d -> 'checkpoint' ->> 'type'
                  and c.checkpoint = p.d -> 'checkpoint' ->> 'data'
                  and c.metadata = p.d -> 'metadata' and c.channel_versions = p.d -> 'channelVersions'
                  and not exists (
                    select 1 from jsonb_array_elements(p.d -> 'blobs') b
                     where not exists (
                       select 1 from chronicle.graph_blobs g
                        where g.graph_id = c.graph_id and g.checkpoint_ns = c.checkpoint_ns
                          and g.channel = b ->> 'channel' and g.version = b ->> 'version'
                          and case when b ? 'list'
                                then g.items = b -> 'list' -> 'items'
                                 and g.keep = (b -> 'list' ->> 'keep')::integer
                                 and g.base_version is not distinct from b -> 'list' ->> 'base'
                                else g.type = b -> 'value' ->> 'type'
                                 and g.data is not distinct from b -> 'value' ->> 'data'
                                 and g.sha256 is not distinct from b -> 'value' ->> 'sha256' end))`,
              [graphId, JSON.stringify(data)],
            ).pipe(Effect.map((rows) => (rows.length > 0 ? asked : undefined))),
          // A retry under a key names the checkpoint its first attempt saved.
          answer: ({ event }) =>
            event.type === "GraphCheckpointSaved"
              ? {
                  threadId: input.threadId,
                  checkpointNs: event.checkpointNs,
                  checkpointId: event.checkpointId,
                }
              : asked,
        })
      })

      const putWrites = Effect.fn("Graphs.putWrites")(function* (
        actor: Actor,
        input: PutWritesInput,
        options?: GraphPutOptions,
      ) {
        return yield* recordPut({
          actor,
          threadId: input.threadId,
          key: options?.idempotencyKey,
          event: {
            type: "GraphWritesSaved",
            checkpointNs: input.checkpointNs,
            checkpointId: input.checkpointId,
            taskId: input.taskId,
            taskPath: input.taskPath,
            writes: yield* Effect.forEach(input.writes, (write) =>
              Effect.map(storeValue(write.value), (value) => ({ ...write, value })),
            ),
          },
          // Held: every write is stored as given; the answer is the version that stored them.
          held: (graphId, data) =>
            query(
              `select max(w.version) as version, count(*) = jsonb_array_length(p.d -> 'writes') as held
                 from (select $2::text::jsonb as d) p
                 cross join lateral jsonb_array_elements(p.d -> 'writes') x
                 join chronicle.graph_writes w
                   on w.graph_id = $1::uuid and w.checkpoint_ns = p.d ->> 'checkpointNs'
                  and w.checkpoint_id = p.d ->> 'checkpointId' and w.task_id = p.d ->> 'taskId'
                  and w.idx = (x ->> 'idx')::integer and w.task_path = p.d ->> 'taskPath'
                  and w.channel = x ->> 'channel' and w.type = x -> 'value' ->> 'type'
                  and w.data is not distinct from x -> 'value' ->> 'data'
                  and w.sha256 is not distinct from x -> 'value' ->> 'sha256'
                group by p.d`,
              [graphId, JSON.stringify(data)],
            ).pipe(
              Effect.map((rows) => {
                const found = rows[0] === undefined ? undefined : decodeHeldWrites(rows[0])
                return found?.held === true ? { version: Number(found.version) } : undefined
              }),
            ),
          answer: ({ version }) => ({ version }),
        })
      })

      const getTuple = Effect.fn("Graphs.getTuple")(function* (
        actor: Actor,
        input: {
          readonly threadId: string
          readonly checkpointNs: string
          readonly checkpointId?: string | undefined
        },
      ) {
        const ownerId = yield* ownerFor(actor)
        const rows = yield* query(
          `select ${TUPLE_COLUMNS} from chronicle.graph_checkpoints c
            where c.graph_id = $1::uuid and c.checkpoint_ns = $2 and ($3::text is null or c.checkpoint_id = $3)
            order by c.checkpoint_id collate "C" desc limit 1`,
          [graphIdForThread(ownerId, input.threadId), input.checkpointNs, input.checkpointId ?? null],
        )
        return rows[0] === undefined ? null : toCheckpointTuple(rows[0])
      })

      const list = Effect.fn("Graphs.list")(function* (actor: Actor, input: ListCheckpointsInput) {
        const ownerId = yield* ownerFor(actor)
        const limit = yield* checkLimit(input.limit)
        const after = yield* decodeListCursor(input.cursor)
        // The tuple's size is measured on its aggregated values, computed once per row in the
        // database; only the rows within the byte budget are sent.
        const rows = yield* query(
          budgeted(
            `select x.*, octet_length(x.checkpoint) + octet_length(x.metadata::text)
                      + octet_length(x.channel_versions::text) + octet_length(x.blobs::text)
                      + octet_length(x.writes::text) + ${ROW_OVERHEAD_BYTES} as page_bytes
               from (select ${TUPLE_COLUMNS}, c.graph_id::text from chronicle.graph_checkpoints c
            where c.owner_id = $1::uuid
              and ($2::uuid is null or c.graph_id = $2::uuid)
              and ($3::text is null or c.checkpoint_ns = $3)
              and ($4::text is null or c.checkpoint_id collate "C" < $4)
              and ($5::text is null or c.metadata @> $5::text::jsonb)
              and ($6::text is null
                   or (c.checkpoint_id collate "C", c.graph_id, c.checkpoint_ns collate "C")
                      < ($6, $7::uuid, $8))
              and ($10::text is null or c.checkpoint_id = $10)
            order by c.checkpoint_id collate "C" desc, c.graph_id desc, c.checkpoint_ns collate "C" desc
            limit $9) x`,
            "$11",
          ),
          [
            ownerId,
            input.threadId === undefined ? null : graphIdForThread(ownerId, input.threadId),
            input.checkpointNs ?? null,
            input.before ?? null,
            input.filter === undefined ? null : JSON.stringify(input.filter),
            after?.[0] ?? null,
            after?.[1] ?? null,
            after?.[2] ?? null,
            limit + 1,
            input.checkpointId ?? null,
            budgetParam(input.maxBytes),
          ],
        )
        return toPage(
          rows,
          limit,
          toCheckpointTuple,
          tupleKey,
          "asc",
          input.maxBytes,
        ) satisfies Page<GraphCheckpointTuple>
      })

      const deleteThread = Effect.fn("Graphs.deleteThread")(function* (actor: Actor, threadId: string) {
        const ownerId = yield* ownerFor(actor)
        const graphId = graphIdForThread(ownerId, threadId)
        const rows = yield* query(
          "select exists (select 1 from chronicle.graph_checkpoints where graph_id = $1::uuid) as live",
          [graphId],
        )
        // Nothing to delete: record nothing, so deleting twice is one event.
        if (rows[0] === undefined || !decodeLive(rows[0]).live) return { deleted: false }
        yield* appendToThread(actor, threadId, { event: { type: "GraphThreadDeleted" } }).pipe(
          // The event gets a fresh id: no other append can have used it; it names no version.
          Effect.catchTags({ IdempotencyConflict: Effect.die, VersionConflict: Effect.die }),
        )
        return { deleted: true }
      })

      return Graphs.of({
        putCheckpoint: (a, i, o) => provide(putCheckpoint(a, i, o)),
        putWrites: (a, i, o) => provide(putWrites(a, i, o)),
        getTuple: (a, i) => provide(getTuple(a, i)),
        list: (a, i) => provide(list(a, i)),
        deleteThread: (a, t) => provide(deleteThread(a, t)),
      })
    }),
  )
}
