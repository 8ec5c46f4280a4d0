/**
 * Agent-graph threads (LangGraph checkpoints), one `graph-<id>` stream per thread. The id is
 * derived from (owner, thread id), so a thread id names one stream per owner and "save to
 * thread T" needs no lookup first.
 *
 * Values the graph framework serializes (checkpoints, channel values, pending writes) travel
 * as the framework's own serializer wrote them: a type tag and the bytes in base64, so any
 * value round-trips exactly, whatever the serializer. A value too large to travel in an event
 * is kept in the content-addressed blob store (where files' bytes are) and the event carries
 * its SHA-256.
 *
 * A thread's storage grows with what it adds, not with its length: a checkpoint carries only
 * the channels that changed, and a list channel (a conversation's messages) that grew carries
 * only its new items, on top of the version it grew from.
 */
import { Schema } from "effect"
import { JsonObject, Name, NonNegativeInt, Sha256, Text, Uuid } from "./primitives.ts"
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

/** A serialized value whose bytes are in the blob store (`chronicle.blobs`), under their SHA-256. */
export const BlobValue = Schema.Struct({
  type: Name(100),
  sha256: Sha256,
  /** Bytes (not base64). */
  size: NonNegativeInt,
})
export type BlobValue = typeof BlobValue.Type

/** A serialized value as an event keeps it: its bytes inline, or in the blob store. */
export const StoredValue = Schema.Union([SerializedValue, BlobValue])
export type StoredValue = typeof StoredValue.Type

/** A checkpoint namespace: "" for the root graph, a path for a subgraph. */
export const CheckpointNamespace = Text(2000)
/** A checkpoint id (LangGraph uses time-ordered UUIDv6 strings). */
export const GraphCheckpointId = Name(200)
/** A channel version, as text (LangGraph versions are numbers or strings). */
export const ChannelVersion = Name(200)

/**
 * A list channel's value at a version, each item serialized alone: the first `keep` items of
 * the list stored under `base` (a version of the same channel in the same namespace, itself
 * stored as a list), then `items`. With no base, the list is `items`.
 */
export const ChannelList = <V extends Schema.Top>(item: V) =>
  Schema.Struct({
    base: Schema.NullOr(ChannelVersion),
    /** Stored as a Postgres integer. */
    keep: NonNegativeInt.pipe(Schema.check(Schema.isLessThanOrEqualTo(2_147_483_647))),
    items: Schema.Array(item),
  })

/**
 * One channel's value at one version, stored once and shared by every checkpoint that has it:
 * a whole value (`value`), or a list (`list`).
 */
export const ChannelBlob = Schema.Union([
  Schema.Struct({ channel: Name(500), version: ChannelVersion, value: StoredValue }),
  Schema.Struct({ channel: Name(500), version: ChannelVersion, list: ChannelList(StoredValue) }),
])
export type ChannelBlob = typeof ChannelBlob.Type

/** A channel value as a client sends it: its bytes inline (the service decides where they go). */
export const ChannelBlobInput = Schema.Union([
  Schema.Struct({ channel: Name(500), version: ChannelVersion, value: SerializedValue }),
  Schema.Struct({ channel: Name(500), version: ChannelVersion, list: ChannelList(SerializedValue) }),
])
export type ChannelBlobInput = typeof ChannelBlobInput.Type

/** One pending write of a task against a checkpoint; `idx` < 0 marks a special write (error, interrupt…). */
const WriteIndex = Schema.Int.pipe(
  Schema.check(Schema.isBetween({ minimum: -2_147_483_648, maximum: 2_147_483_647 })),
)
export const PendingWrite = Schema.Struct({
  /** Stored as a Postgres integer. */
  idx: WriteIndex,
  channel: Name(500),
  value: StoredValue,
})

/** A pending write as a client sends it: its value's bytes inline. */
export const PendingWriteInput = Schema.Struct({
  idx: WriteIndex,
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
 * versions in `channelVersions`, stored by an earlier checkpoint); a list that grew carries
 * only what it added. Saving a checkpoint id again replaces it.
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

/**
 * Retention: the checkpoints of one namespace whose id sorts (by code point) at or before
 * `throughCheckpointId` are gone from the read model: all but the last `keep`, `count` of them.
 * Their events stay in the log with their payloads redacted (ids, versions and times kept),
 * except the channel values the kept checkpoints still rest on. The oldest version of a list
 * that a kept checkpoint reads is then stored whole in the read model, so nothing reads a
 * version that is gone.
 */
export const GraphCheckpointsPruned = Schema.Struct({
  type: Schema.tag("GraphCheckpointsPruned"),
  checkpointNs: CheckpointNamespace,
  keep: NonNegativeInt,
  throughCheckpointId: GraphCheckpointId,
  count: NonNegativeInt,
})

/**
 * Recorded by an erasure of the thread's owner (`chronicle purge --owner`): the payloads of
 * versions 1 to `throughVersion` were redacted, irreversibly (checkpoints blanked, channel
 * values and writes dropped; ids, versions and times kept), and the thread's checkpoints,
 * values and writes are gone from the read model, as after a deletion. Large values' bytes go
 * from the blob store unless something else still references them. Only the service can purge.
 */
export const GraphThreadPurged = Schema.Struct({
  type: Schema.tag("GraphThreadPurged"),
  reason: Schema.NullOr(Text(1000)),
  throughVersion: NonNegativeInt,
})

export const GraphEvent = Schema.Union([
  GraphThreadStarted,
  GraphCheckpointSaved,
  GraphWritesSaved,
  GraphThreadDeleted,
  GraphCheckpointsPruned,
  GraphThreadPurged,
]).pipe(Schema.toTaggedUnion("type"))
export type GraphEvent = typeof GraphEvent.Type
