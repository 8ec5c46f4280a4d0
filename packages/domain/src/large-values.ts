/**
 * Large values: message content and metadata, tool run inputs and outputs over a threshold are
 * stored once in the content-addressed blob table (`chronicle.blobs`, which files use too),
 * and the event keeps a reference in their place. Readers get the values back, or, asked to
 * leave them out, the references with their sizes.
 *
 * In an event (and so in the read models, which copy it):
 * - a message whose content or metadata is large has `content: ""` and metadata
 *   `{ "$chronicle.large": { content?: Ref, metadata?: Ref }, …the inline metadata }` (the
 *   inline metadata only when the metadata itself is not large);
 * - a large tool run input or output is `{ "$chronicle.large": Ref }`.
 * `$chronicle.large` is reserved: a client's metadata or tool value may not use it as a key.
 */
import { createHash } from "node:crypto"
import type { Json, JsonObject } from "@chronicle/events/types"
import { Database } from "@chronicle/store"
import { Effect, Schema } from "effect"
import { decoder } from "./row-schema.ts"

export const LARGE_KEY = "$chronicle.large"
export const TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"
export const JSON_MEDIA_TYPE = "application/json"

/** Where a large value is: its SHA-256, its size in bytes, and what the bytes are. */
export interface BlobRef {
  readonly sha256: string
  readonly size: number
  readonly mediaType: string
}

/** Whether readers get large values back (`include`, the default) or only their references. */
export type LargeContent = "include" | "omit"

/** Bytes to store in the blob table, under their SHA-256. */
export interface PendingBlob {
  readonly ref: BlobRef
  readonly bytes: Uint8Array
}

/** The large values of a message, by field. */
export interface MessageLarge {
  readonly content?: BlobRef
  readonly metadata?: BlobRef
}

/** The large values of a tool run, by field. */
export interface ToolRunLarge {
  readonly input?: BlobRef
  readonly output?: BlobRef
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

export const isBlobRef = (value: unknown): value is BlobRef =>
  isObject(value) &&
  typeof value.sha256 === "string" &&
  /^[0-9a-f]{64}$/.test(value.sha256) &&
  typeof value.size === "number" &&
  typeof value.mediaType === "string"

const pending = (bytes: Uint8Array, mediaType: string): PendingBlob => ({
  ref: { sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength, mediaType },
  bytes,
})

/** The size a value takes in an event: its JSON, escaped as it would be stored. */
const jsonSize = (value: unknown) => Buffer.byteLength(JSON.stringify(value) ?? "null", "utf8")

/** The first path under which a client's value uses the reserved key (top level of an object), if any. */
export const reservedKeyIn = (value: unknown): string | undefined =>
  isObject(value) && LARGE_KEY in value ? LARGE_KEY : undefined

/** A message as the event records it, and the blobs it refers to. */
export const storeMessage = (
  message: { readonly content: string; readonly metadata: JsonObject },
  threshold: number,
): {
  readonly content: string
  readonly metadata: JsonObject
  readonly blobs: ReadonlyArray<PendingBlob>
} => {
  const blobs: Array<PendingBlob> = []
  const large: { content?: BlobRef; metadata?: BlobRef } = {}
  let content = message.content
  let metadata: JsonObject = message.metadata
  if (jsonSize(message.content) > threshold) {
    const blob = pending(Buffer.from(message.content, "utf8"), TEXT_MEDIA_TYPE)
    blobs.push(blob)
    large.content = blob.ref
    content = ""
  }
  const metadataText = JSON.stringify(message.metadata)
  if (Buffer.byteLength(metadataText, "utf8") > threshold) {
    const blob = pending(Buffer.from(metadataText, "utf8"), JSON_MEDIA_TYPE)
    blobs.push(blob)
    large.metadata = blob.ref
    metadata = {}
  }
  if (blobs.length === 0) return { content, metadata, blobs }
  return { content, metadata: { ...metadata, [LARGE_KEY]: large as unknown as Json }, blobs }
}

/** A tool run's input or output as the event records it, and the blob it refers to. */
export const storeJson = (
  value: Json,
  threshold: number,
): { readonly value: Json; readonly blob: PendingBlob | undefined } => {
  const valueText = JSON.stringify(value)
  if (Buffer.byteLength(valueText, "utf8") <= threshold) return { value, blob: undefined }
  const blob = pending(Buffer.from(valueText, "utf8"), JSON_MEDIA_TYPE)
  return { value: { [LARGE_KEY]: blob.ref as unknown as Json }, blob }
}

/** The references a stored message's metadata holds, and its inline metadata. */
export const messageRefs = (
  metadata: JsonObject,
): { readonly large: MessageLarge; readonly inline: JsonObject } => {
  const marker = metadata[LARGE_KEY]
  if (!isObject(marker)) return { large: {}, inline: metadata }
  const { [LARGE_KEY]: _, ...inline } = metadata
  return {
    large: {
      ...(isBlobRef(marker.content) ? { content: marker.content } : {}),
      ...(isBlobRef(marker.metadata) ? { metadata: marker.metadata } : {}),
    },
    inline,
  }
}

/** The reference a stored tool run value is, if it is one. */
export const jsonRef = (value: Json): BlobRef | undefined => {
  if (!isObject(value) || Object.keys(value).length !== 1) return undefined
  const marker = value[LARGE_KEY]
  return isBlobRef(marker) ? marker : undefined
}

/** Blob contents by SHA-256. */
export type BlobContents = ReadonlyMap<string, Uint8Array>

/** Stores blobs (bytes already there are kept: they are the same bytes). */
export const putBlobs = (blobs: ReadonlyArray<PendingBlob>) =>
  Effect.gen(function* () {
    if (blobs.length === 0) return
    const db = yield* Database
    yield* Effect.forEach(
      blobs,
      (blob) =>
        db.query(
          `insert into chronicle.blobs (sha256, size, content) values ($1, $2, $3::bytea)
             on conflict (sha256) do nothing`,
          [blob.ref.sha256, blob.ref.size, blob.bytes],
        ),
      { discard: true },
    )
  }).pipe(Effect.orDie)

/** A row of `chronicle.blobs`: its bytes (a Buffer from postgres.js, a Uint8Array from PGlite). */
export const decodeBlobRow = decoder(
  "blob",
  "sha256",
  Schema.Struct({ sha256: Schema.String, content: Schema.Uint8Array }),
)

/** The contents of the blobs named (a missing blob is a broken store: a defect). */
export const loadBlobs = (sha256s: Iterable<string>) =>
  Effect.gen(function* () {
    const wanted = [...new Set(sha256s)]
    const found = new Map<string, Uint8Array>()
    if (wanted.length === 0) return found as BlobContents
    const db = yield* Database
    const rows = yield* db
      .query("select sha256, content from chronicle.blobs where sha256 = any($1::text[])", [wanted])
      .pipe(Effect.orDie)
    for (const row of rows) {
      const blob = decodeBlobRow(row)
      found.set(blob.sha256, new Uint8Array(blob.content))
    }
    const missing = wanted.filter((sha) => !found.has(sha))
    if (missing.length > 0) return yield* Effect.die(`blob ${missing[0]} is missing from chronicle.blobs`)
    return found as BlobContents
  })

const text = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")

/** A message's content and metadata with its large values read back (`blobs`) or left out (null). */
export const resolveMessage = (
  stored: { readonly content: string; readonly metadata: JsonObject },
  blobs: BlobContents | null,
): { readonly content: string; readonly metadata: JsonObject; readonly large?: MessageLarge } => {
  const { large, inline } = messageRefs(stored.metadata)
  if (large.content === undefined && large.metadata === undefined) return stored
  const read = (ref: BlobRef) => {
    const bytes = blobs?.get(ref.sha256)
    if (bytes === undefined) throw new Error(`blob ${ref.sha256} was not loaded`)
    return text(bytes)
  }
  return {
    content: large.content === undefined ? stored.content : blobs === null ? "" : read(large.content),
    metadata:
      large.metadata === undefined
        ? inline
        : blobs === null
          ? {}
          : (JSON.parse(read(large.metadata)) as JsonObject),
    large,
  }
}

/** A tool run value read back (`blobs`) or left out (null). */
export const resolveJson = (stored: Json, blobs: BlobContents | null): Json => {
  const ref = jsonRef(stored)
  if (ref === undefined) return stored
  if (blobs === null) return null
  const bytes = blobs.get(ref.sha256)
  if (bytes === undefined) throw new Error(`blob ${ref.sha256} was not loaded`)
  return JSON.parse(text(bytes)) as Json
}

/** The SHA-256s an event's data refers to (messages and tool runs). */
export const eventRefs = (type: string, data: unknown): ReadonlyArray<BlobRef> => {
  if (!isObject(data)) return []
  if (type === "MessageAppended" && isObject(data.metadata)) {
    const { large } = messageRefs(data.metadata as JsonObject)
    return [large.content, large.metadata].filter((r): r is BlobRef => r !== undefined)
  }
  if (type === "ToolRunRecorded") {
    return [jsonRef(data.input as Json), jsonRef(data.output as Json)].filter(
      (r): r is BlobRef => r !== undefined,
    )
  }
  return []
}

/** An event's data with its large values read back; unchanged for other events. */
export const resolveEventData = (type: string, data: unknown, blobs: BlobContents): unknown => {
  if (!isObject(data)) return data
  if (type === "MessageAppended" && isObject(data.metadata)) {
    const resolved = resolveMessage(
      { content: String(data.content ?? ""), metadata: data.metadata as JsonObject },
      blobs,
    )
    return { ...data, content: resolved.content, metadata: resolved.metadata }
  }
  if (type === "ToolRunRecorded") {
    return {
      ...data,
      input: resolveJson((data.input ?? null) as Json, blobs),
      output: resolveJson((data.output ?? null) as Json, blobs),
    }
  }
  return data
}

/** Events with their large values read back, unless `largeContent` is `omit` (then as stored: references). */
export const resolveEvents = <E extends { readonly type: string; readonly data: unknown }>(
  events: ReadonlyArray<E>,
  largeContent: LargeContent = "include",
) =>
  Effect.gen(function* () {
    if (largeContent === "omit") return events
    const refs = events.flatMap((e) =>
      e.type === "MessageAppended" || e.type === "ToolRunRecorded" ? eventRefs(e.type, e.data) : [],
    )
    if (refs.length === 0) return events
    const blobs = yield* loadBlobs(refs.map((r) => r.sha256))
    // The same shape: only the values under references change.
    return events.map((e): E => ({ ...e, data: resolveEventData(e.type, e.data, blobs) as E["data"] }))
  })
