/**
 * Agent-graph threads: the storage behind a LangGraph checkpointer. A thread is the stream
 * `graph-<uuid>`, the uuid derived from (owner, thread id) as sessions' external keys are, so
 * a thread id names one stream per owner, and another owner's thread of the same name is a
 * different stream. Checkpoints, pending writes and deletions are events; reads are indexed
 * queries over the `graph_*` read model.
 */
import {
  type ChronicleEvent,
  type Forbidden,
  type GraphThreadStarted,
  InvalidCommand,
  type JsonObject,
  type SerializedValue,
  toStored,
} from "@chronicle/events"
import { type BatchTooLarge, type EventTooLarge, type ExpectedVersion, isUuid } from "@chronicle/store"
import { Context, Effect, Layer } from "effect"
import { v5 as uuidv5 } from "uuid"
import { type Actor, ownerFor } from "./actor.ts"
import { DEFAULT_LIMIT, encodePageCursor, MAX_LIMIT } from "./paging.ts"
import { iso, type Page } from "./rows.ts"
import { layerServices } from "./services.ts"

// Graph ids are derived from (owner, thread id) in their own namespace (a fixed, random UUID).
const GRAPH_THREAD_NAMESPACE = "c4a7e2d9-5b13-4f6e-8a2d-7e9b1c3f5a60"
export const graphIdForThread = (ownerId: string, threadId: string) =>
  uuidv5(`${ownerId}\u0000${threadId}`, GRAPH_THREAD_NAMESPACE)
export const graphStreamId = (graphId: string) => `graph-${graphId}`

export interface ChannelBlobView {
  readonly channel: string
  readonly version: string
  readonly value: SerializedValue
}

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
  readonly blobs: ReadonlyArray<ChannelBlobView>
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
}

export type GraphsError = InvalidCommand | Forbidden | BatchTooLarge | EventTooLarge

export interface GraphsService {
  readonly putCheckpoint: (
    actor: Actor,
    input: PutCheckpointInput,
  ) => Effect.Effect<CheckpointRef, GraphsError>
  readonly putWrites: (
    actor: Actor,
    input: PutWritesInput,
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
  (select coalesce(jsonb_agg(jsonb_build_object('channel', b.channel, 'version', b.version,
            'value', jsonb_build_object('type', b.type, 'data', b.data)) order by b.channel), '[]'::jsonb)
     from jsonb_each_text(c.channel_versions) v(channel, version)
     join chronicle.graph_blobs b
       on b.graph_id = c.graph_id and b.checkpoint_ns = c.checkpoint_ns and b.channel = v.channel
      and b.version = v.version) as blobs,
  (select coalesce(jsonb_agg(jsonb_build_object('taskId', w.task_id, 'taskPath', w.task_path, 'idx', w.idx,
            'channel', w.channel, 'value', jsonb_build_object('type', w.type, 'data', w.data))
            order by w.task_path collate "C", w.task_id collate "C", w.idx), '[]'::jsonb)
     from chronicle.graph_writes w
    where w.graph_id = c.graph_id and w.checkpoint_ns = c.checkpoint_ns
      and w.checkpoint_id = c.checkpoint_id) as writes`

type Row = Record<string, unknown>

const toTuple = (r: Row): GraphCheckpointTuple => ({
  threadId: r.thread_id as string,
  checkpointNs: r.checkpoint_ns as string,
  checkpointId: r.checkpoint_id as string,
  parentCheckpointId: (r.parent_checkpoint_id as string | null) ?? null,
  checkpoint: { type: r.checkpoint_type as string, data: r.checkpoint as string },
  metadata: r.metadata as JsonObject,
  channelVersions: r.channel_versions as { [channel: string]: string },
  blobs: r.blobs as ReadonlyArray<ChannelBlobView>,
  writes: r.writes as ReadonlyArray<PendingWriteView>,
  version: Number(r.version),
  createdAt: iso(r.created_at),
})

// List cursors: [checkpoint id, graph id, namespace] of the last item, opaque to clients.
const decodeListCursor = (cursor: string | null | undefined) => {
  if (cursor === null || cursor === undefined) return Effect.succeed(null)
  try {
    const key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown
    if (
      Array.isArray(key) &&
      key.length === 3 &&
      typeof key[0] === "string" &&
      isUuid(key[1]) &&
      typeof key[2] === "string"
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

      const actorLabel = (actor: Actor) =>
        actor.kind === "user"
          ? `user:${actor.userId}`
          : actor.actingFor
            ? `service:${actor.actingFor}`
            : "service"

      /**
       * Appends to a thread's stream, starting it when it has no events yet. Starting races
       * are settled by the store: the loser's "no stream" append conflicts, and it appends
       * again to the stream that now exists.
       */
      const appendToThread = (actor: Actor, threadId: string, events: ReadonlyArray<ChronicleEvent>) =>
        Effect.gen(function* () {
          const ownerId = yield* ownerFor(actor)
          const graphId = graphIdForThread(ownerId, threadId)
          const streamId = graphStreamId(graphId)
          const metadata = { actor: actorLabel(actor) }
          const started: typeof GraphThreadStarted.Type = {
            type: "GraphThreadStarted",
            graphId,
            ownerId,
            threadId,
          }
          const append = (batch: ReadonlyArray<ChronicleEvent>, expectedVersion: ExpectedVersion) =>
            store.append(
              streamId,
              batch.map((e) => ({ ...toStored(e), metadata })),
              { expectedVersion, ownerId },
            )
          const exists = yield* query("select 1 from chronicle.streams where stream_id = $1", [streamId])
          const result = yield* (
            exists.length > 0 ? append(events, "stream_exists") : append([started, ...events], "no_stream")
          ).pipe(
            Effect.catchTag("VersionConflict", () => append(events, "stream_exists")),
            // Events built here are valid and carry fresh ids: a refusal is a bug.
            Effect.catchTags({
              InvalidAppend: Effect.die,
              IdempotencyConflict: Effect.die,
              VersionConflict: Effect.die,
            }),
          )
          return { graphId, version: result.version }
        })

      const putCheckpoint = Effect.fn("Graphs.putCheckpoint")(function* (
        actor: Actor,
        input: PutCheckpointInput,
      ) {
        for (const blob of input.blobs) {
          if (input.channelVersions[blob.channel] === undefined) {
            return yield* new InvalidCommand({
              path: "blobs",
              reason: `channel ${JSON.stringify(blob.channel)} has a value but no version in channelVersions`,
            })
          }
        }
        yield* appendToThread(actor, input.threadId, [
          {
            type: "GraphCheckpointSaved",
            checkpointNs: input.checkpointNs,
            checkpointId: input.checkpointId,
            parentCheckpointId: input.parentCheckpointId,
            checkpoint: input.checkpoint,
            metadata: input.metadata,
            channelVersions: input.channelVersions,
            blobs: input.blobs,
          },
        ])
        return {
          threadId: input.threadId,
          checkpointNs: input.checkpointNs,
          checkpointId: input.checkpointId,
        } satisfies CheckpointRef
      })

      const putWrites = Effect.fn("Graphs.putWrites")(function* (actor: Actor, input: PutWritesInput) {
        const { version } = yield* appendToThread(actor, input.threadId, [
          {
            type: "GraphWritesSaved",
            checkpointNs: input.checkpointNs,
            checkpointId: input.checkpointId,
            taskId: input.taskId,
            taskPath: input.taskPath,
            writes: input.writes,
          },
        ])
        return { version }
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
        return rows[0] === undefined ? null : toTuple(rows[0])
      })

      const list = Effect.fn("Graphs.list")(function* (actor: Actor, input: ListCheckpointsInput) {
        const ownerId = yield* ownerFor(actor)
        const limit = yield* checkLimit(input.limit)
        const after = yield* decodeListCursor(input.cursor)
        const rows = yield* query(
          `select ${TUPLE_COLUMNS}, c.graph_id::text from chronicle.graph_checkpoints c
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
            limit $9`,
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
          ],
        )
        const items = rows.slice(0, limit)
        const last = items.at(-1)
        return {
          items: items.map(toTuple),
          nextCursor:
            rows.length > limit && last !== undefined
              ? encodePageCursor([
                  last.checkpoint_id as string,
                  last.graph_id as string,
                  last.checkpoint_ns as string,
                ])
              : null,
        } satisfies Page<GraphCheckpointTuple>
      })

      const deleteThread = Effect.fn("Graphs.deleteThread")(function* (actor: Actor, threadId: string) {
        const ownerId = yield* ownerFor(actor)
        const graphId = graphIdForThread(ownerId, threadId)
        const rows = yield* query(
          "select exists (select 1 from chronicle.graph_checkpoints where graph_id = $1::uuid) as live",
          [graphId],
        )
        // Nothing to delete: record nothing, so deleting twice is one event.
        if (rows[0]?.live !== true) return { deleted: false }
        yield* appendToThread(actor, threadId, [{ type: "GraphThreadDeleted" }])
        return { deleted: true }
      })

      return Graphs.of({
        putCheckpoint: (a, i) => provide(putCheckpoint(a, i)),
        putWrites: (a, i) => provide(putWrites(a, i)),
        getTuple: (a, i) => provide(getTuple(a, i)),
        list: (a, i) => provide(list(a, i)),
        deleteThread: (a, t) => provide(deleteThread(a, t)),
      })
    }),
  )
}
