/**
 * Agent-graph threads (LangGraph checkpoints), one `graph-<id>` stream per thread. The id is
 * derived from (owner, thread id), so a thread id names one stream per owner and "save to
 * thread T" needs no lookup first.
 *
 * Values the graph framework serializes (checkpoints, channel values, pending writes) travel
 * as the framework's own serializer wrote them: a type tag and the bytes in base64, so any
 * value round-trips exactly, whatever the serializer.
 */
import { Schema } from "effect"
import { JsonObject, Name, Text, Uuid } from "./primitives.ts"
import type * as Types from "./types.ts"

/** Base64 of some bytes (standard alphabet, padding optional). */
export const Base64 = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^[A-Za-z0-9+/]*={0,2}$/, { message: "must be base64 (A–Z, a–z, 0–9, +, /)" }),
  ),
)

/** A value as a graph framework's serializer wrote it: its type tag and its bytes. */
export const SerializedValue: Schema.Codec<Types.SerializedValue> = Schema.Struct({
  type: Name(100),
  data: Base64,
})
export type SerializedValue = Types.SerializedValue

/** A checkpoint namespace: "" for the root graph, a path for a subgraph. */
export const CheckpointNamespace = Text(2000)
/** A checkpoint id (LangGraph uses time-ordered UUIDv6 strings). */
export const GraphCheckpointId = Name(200)
/** A channel version, as text (LangGraph versions are numbers or strings). */
export const ChannelVersion = Name(200)

/** One channel's value at one version, stored once and shared by every checkpoint that has it. */
export const ChannelBlob = Schema.Struct({
  channel: Name(500),
  version: ChannelVersion,
  value: SerializedValue,
})

/** One pending write of a task against a checkpoint; `idx` < 0 marks a special write (error, interrupt…). */
export const PendingWrite = Schema.Struct({
  /** Stored as a Postgres integer. */
  idx: Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: -2_147_483_648, maximum: 2_147_483_647 }))),
  channel: Name(500),
  value: SerializedValue,
})

/** First event of a thread's stream. */
export const GraphThreadStarted = Schema.Struct({
  type: Schema.tag("GraphThreadStarted"),
  /** The stream's uuid: derived from (ownerId, threadId). */
  graphId: Uuid,
  ownerId: Uuid,
  threadId: Name(500),
})

/**
 * A checkpoint of the thread. `checkpoint` is the checkpoint without its channel values;
 * `blobs` are the values of the channels that changed in it (the others are found under the
 * versions in `channelVersions`, stored by an earlier checkpoint). Saving a checkpoint id
 * again replaces it.
 */
export const GraphCheckpointSaved = Schema.Struct({
  type: Schema.tag("GraphCheckpointSaved"),
  checkpointNs: CheckpointNamespace,
  checkpointId: GraphCheckpointId,
  parentCheckpointId: Schema.NullOr(GraphCheckpointId),
  checkpoint: SerializedValue,
  /** The checkpoint's metadata as JSON (filterable). */
  metadata: JsonObject,
  channelVersions: Schema.Record(Schema.String, ChannelVersion),
  blobs: Schema.Array(ChannelBlob),
})

/**
 * Writes a task made against a checkpoint. A regular write already stored for the same
 * (task, idx) is kept; a special write (idx < 0) replaces the one before it.
 */
export const GraphWritesSaved = Schema.Struct({
  type: Schema.tag("GraphWritesSaved"),
  checkpointNs: CheckpointNamespace,
  checkpointId: GraphCheckpointId,
  taskId: Name(500),
  taskPath: Text(2000),
  writes: Schema.Array(PendingWrite),
})

/** The thread's checkpoints and writes are gone from the read model; the events stay. */
export const GraphThreadDeleted = Schema.Struct({
  type: Schema.tag("GraphThreadDeleted"),
})

export const GraphEvent = Schema.Union([
  GraphThreadStarted,
  GraphCheckpointSaved,
  GraphWritesSaved,
  GraphThreadDeleted,
]).pipe(Schema.toTaggedUnion("type"))
export type GraphEvent = typeof GraphEvent.Type
