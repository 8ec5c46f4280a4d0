/**
 * `chronicle export` and `chronicle import`: the log (or one session's streams) as NDJSON, one
 * event per line in reader order, so it can be archived or moved to another database (the
 * embedded default → Supabase) and brought back verbatim: same ids, versions and recorded_at,
 * and the bytes of every file.
 *
 * Lines are JSON objects separated by "\n" and nothing else: U+2028 and U+2029, which
 * JSON.stringify leaves unescaped inside strings, are characters of a line, not line breaks.
 * Two kinds of line:
 *
 * - an event: `{ streamId, version, eventId, type, schemaVersion, data, metadata, recordedAt, ownerId }`;
 * - a file's bytes, or a large value's (message content or metadata, a tool run's input or
 *   output, a graph value kept in the blob store): `{ blob: { sha256, size, contentBase64 } }`,
 *   written before the event that first names them (a `FileUploaded`, or a `MessageAppended`,
 *   `ToolRunRecorded`, `GraphCheckpointSaved` or `GraphWritesSaved` that refers to them), once
 *   per export. An import refuses an event that refers to a large value whose bytes it has not
 *   seen and the database does not hold.
 *
 * The export reads the log through the event store (`readAll`, `readStream`), in the log's
 * order (seq), the order every reader of the log sees it.
 */
import { createHash } from "node:crypto"
import type { Readable, Writable } from "node:stream"
import { eventRefs, graphIdForThread, sessionIdForKey } from "@chronicle/domain"
import { Database, EventStore, isUuid, type RecordedEvent, type StreamPage } from "@chronicle/store"
import { Effect } from "effect"

/** One event line of an export. */
export interface ExportedEvent {
  readonly streamId: string
  readonly version: number
  readonly eventId: string
  readonly type: string
  readonly schemaVersion: number
  readonly data: unknown
  readonly metadata: Record<string, unknown>
  /** ISO-8601 with microseconds, as the database holds it. */
  readonly recordedAt: string
  /** The stream's owner, when it has one. */
  readonly ownerId?: string | null | undefined
}

/** One file's bytes. */
export interface ExportedBlob {
  readonly blob: { readonly sha256: string; readonly size: number; readonly contentBase64: string }
}

export class TransferError extends Error {
  override readonly name = "TransferError"
}

const write = (out: Writable, line: string) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve, reject) => {
        out.write(`${line}\n`, (error) => (error ? reject(error) : resolve()))
      }),
  )

/** Events per read: as many as fit in about 32 MiB, judged by the largest seen so far. */
const READ_BYTES = 32 * 1024 * 1024
const MAX_READ = 1_000

interface Exporter {
  readonly out: Writable
  readonly blobs: Set<string>
  events: number
  files: number
}

/** Writes a file's bytes, once per export. */
const writeBlob = (exporter: Exporter, sha256: string) =>
  Effect.gen(function* () {
    if (exporter.blobs.has(sha256)) return
    const db = yield* Database
    const rows = yield* db
      .query<{ size: string; content: Uint8Array }>(
        "select size::text, content from chronicle.blobs where sha256 = $1",
        [sha256],
      )
      .pipe(Effect.orDie)
    const row = rows[0]
    // A file whose bytes are missing (an import from an export that predates blobs) is
    // exported without them, as the database holds it.
    if (row === undefined) return
    exporter.blobs.add(sha256)
    const blob: ExportedBlob = {
      blob: {
        sha256,
        size: Number(row.size),
        contentBase64: Buffer.from(row.content).toString("base64"),
      },
    }
    yield* write(exporter.out, JSON.stringify(blob))
  })

/**
 * The SHA-256s of the values a graph event keeps in the blob store (`{ type, sha256, size }`):
 * whole channel values, list items, pending writes.
 */
const graphBlobRefs = (
  type: string,
  data: unknown,
): Array<{ readonly sha256: string; readonly size: number }> => {
  if (type !== "GraphCheckpointSaved" && type !== "GraphWritesSaved") return []
  const refs: Array<{ readonly sha256: string; readonly size: number }> = []
  const valueRef = (value: unknown) => {
    const ref = value as { sha256?: unknown; size?: unknown } | null
    if (typeof ref?.sha256 === "string")
      refs.push({ sha256: ref.sha256, size: typeof ref.size === "number" ? ref.size : 0 })
  }
  const d = data as { blobs?: unknown; writes?: unknown } | null
  for (const blob of Array.isArray(d?.blobs) ? d.blobs : []) {
    const b = blob as { value?: unknown; list?: { items?: unknown } } | null
    valueRef(b?.value)
    for (const item of Array.isArray(b?.list?.items) ? b.list.items : []) valueRef(item)
  }
  for (const write of Array.isArray(d?.writes) ? d.writes : [])
    valueRef((write as { value?: unknown } | null)?.value)
  return refs
}

/** Writes a page of events, each preceded by the bytes of the file it uploads or the graph values it keeps in the blob store. */
const writeEvents = (exporter: Exporter, events: ReadonlyArray<RecordedEvent>) =>
  Effect.gen(function* () {
    // The exact recorded_at (microseconds) and the stream's owner of each event of the page.
    const store = yield* EventStore
    const details = yield* store.eventDetails(events.map((e) => e.eventId)).pipe(Effect.orDie)
    for (const event of events) {
      const sha256 = (event.data as { sha256?: unknown } | null)?.sha256
      if (event.type === "FileUploaded" && typeof sha256 === "string") {
        yield* writeBlob(exporter, sha256)
        exporter.files++
      }
      for (const ref of eventRefs(event.type, event.data)) yield* writeBlob(exporter, ref.sha256)
      for (const ref of graphBlobRefs(event.type, event.data)) yield* writeBlob(exporter, ref.sha256)
      const detail = details.get(event.eventId)
      const line: ExportedEvent = {
        streamId: event.streamId,
        version: event.version,
        eventId: event.eventId,
        type: event.type,
        schemaVersion: event.schemaVersion,
        data: event.data,
        metadata: event.metadata,
        recordedAt: detail?.recordedAt ?? event.recordedAt.toISOString(),
        ownerId: detail?.ownerId ?? null,
      }
      yield* write(exporter.out, JSON.stringify(line))
      exporter.events++
    }
  })

/** How many events to read next, so that a page stays near READ_BYTES. */
const nextReadSize = (largest: number) =>
  Math.max(1, Math.min(MAX_READ, Math.floor(READ_BYTES / Math.max(largest, 1))))

const largestOf = (events: ReadonlyArray<RecordedEvent>, largest: number) =>
  events.reduce(
    (max, e) => Math.max(max, JSON.stringify(e.data).length + JSON.stringify(e.metadata).length),
    largest,
  )

/**
 * Writes every event of the log in reader order (the order the projections saw), streamed a
 * page at a time, with the bytes of every file. Returns the counts.
 */
export const exportLog = (out: Writable, onProgress?: (events: number) => void) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    // Everything committed before the export began, by any process, is put in the log's order
    // first, so it is read.
    yield* store.sequenceAll()
    const exporter: Exporter = { out, blobs: new Set(), events: 0, files: 0 }
    let after: string | undefined
    let largest = 0
    while (true) {
      const page = yield* store.readAll({ after, limit: nextReadSize(largest) }).pipe(Effect.orDie)
      yield* writeEvents(exporter, page.events)
      largest = largestOf(page.events, largest)
      onProgress?.(exporter.events)
      if (page.caughtUp) break
      after = page.cursor
    }
    return { events: exporter.events, files: exporter.files }
  })

/** Reads one stream a page at a time, handing each page to `f`. */
const eachPage = <E, R>(
  streamId: string,
  f: (events: ReadonlyArray<RecordedEvent>) => Effect.Effect<void, E, R>,
) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    let largest = 0
    for (let from: number | undefined = 1; from !== undefined; ) {
      const page: StreamPage = yield* store
        .readStream(streamId, { fromVersion: from, limit: nextReadSize(largest) })
        .pipe(Effect.orDie)
      yield* f(page.events)
      largest = largestOf(page.events, largest)
      from = page.nextVersion
    }
  })

/**
 * Writes the session's events, preceded by its fork ancestors' (a fork copies its parent's
 * content as of the fork point, so an import needs the parent first) and by the files
 * attached to any of them (their streams, with their bytes). Returns the counts.
 */
export const exportSession = (sessionId: string, out: Writable) =>
  Effect.gen(function* () {
    if (!isUuid(sessionId))
      return yield* Effect.fail(new TransferError(`${sessionId} is not a session id (a UUID)`))
    const store = yield* EventStore
    // The chain of parents, oldest first: a fork's first event names its parent.
    const chain: Array<string> = []
    for (let id: string | null = sessionId; id !== null; ) {
      const first: StreamPage = yield* store
        .readStream(`session-${id}`, { fromVersion: 1, limit: 1 })
        .pipe(Effect.orDie)
      const started: RecordedEvent | undefined = first.events[0]
      if (started === undefined) {
        return yield* Effect.fail(new TransferError(`session ${id} was not found in this database`))
      }
      chain.unshift(id)
      const parent = (started.data as { parentId?: unknown } | null)?.parentId
      id = started.type === "SessionForked" && typeof parent === "string" ? parent : null
    }
    // The files first: they are streams of their own, and the sessions name them.
    const files = new Set<string>()
    for (const id of chain) {
      yield* eachPage(`session-${id}`, (events) =>
        Effect.sync(() => {
          for (const e of events) {
            const fileId = (e.data as { fileId?: unknown } | null)?.fileId
            if (e.type === "FileAttached" && typeof fileId === "string") files.add(fileId)
          }
        }),
      )
    }
    const exporter: Exporter = { out, blobs: new Set(), events: 0, files: 0 }
    for (const fileId of files) yield* eachPage(`file-${fileId}`, (events) => writeEvents(exporter, events))
    for (const id of chain) yield* eachPage(`session-${id}`, (events) => writeEvents(exporter, events))
    return { sessions: chain.length, events: exporter.events, files: exporter.files }
  })

// ----- import -------------------------------------------------------------------------------

/** A line longer than this is refused: no event or file of Chronicle comes near it. */
const MAX_LINE = 256 * 1024 * 1024

/**
 * The lines of a stream of UTF-8 text, split on "\n" only (a "\r" before it is dropped).
 * Unlike readline, U+2028 and U+2029 stay inside their line.
 */
export async function* ndjsonLines(input: Readable): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true })
  let buffer = ""
  const emit = (line: string) => (line.endsWith("\r") ? line.slice(0, -1) : line)
  for await (const chunk of input) {
    buffer += typeof chunk === "string" ? chunk : decoder.decode(chunk as Uint8Array, { stream: true })
    let start = 0
    for (let end = buffer.indexOf("\n"); end !== -1; end = buffer.indexOf("\n", start)) {
      yield emit(buffer.slice(start, end))
      start = end + 1
    }
    buffer = buffer.slice(start)
    if (buffer.length > MAX_LINE) throw new TransferError(`a line is longer than ${MAX_LINE} bytes`)
  }
  buffer += decoder.decode()
  if (buffer !== "") yield emit(buffer)
}

/** Owners to replace on import: old owner id → new owner id. */
export type OwnerMap = ReadonlyMap<string, string>

/**
 * Reads `--map-owner old=new` values. Both sides must be UUIDs; an owner may be mapped once.
 */
export const parseOwnerMap = (values: ReadonlyArray<string>): OwnerMap => {
  const map = new Map<string, string>()
  for (const value of values) {
    const [from, to, ...rest] = value.split("=")
    const old = from?.trim().toLowerCase()
    const replacement = to?.trim().toLowerCase()
    if (rest.length > 0 || !isUuid(old) || !isUuid(replacement)) {
      throw new TransferError(
        `--map-owner takes old=new, two owner ids (UUIDs), such as --map-owner 0b6f…=7d1c…; got ${JSON.stringify(value)}`,
      )
    }
    if (map.has(old)) throw new TransferError(`--map-owner maps ${old} twice`)
    map.set(old, replacement)
  }
  return map
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Rewrites an event for the owner map: the stream's owner, every `ownerId` field of its data,
 * the actor of its metadata, and the ids Chronicle derives from an owner (a session created
 * by external key, a LangGraph thread), wherever they appear.
 */
const makeRemapper = (owners: OwnerMap) => {
  /** Derived id → the id it has for the new owner. */
  const ids = new Map<string, string>()
  const owner = (id: unknown) => (typeof id === "string" ? (owners.get(id) ?? id) : id)

  const rewrite = (value: unknown, key?: string): unknown => {
    if (typeof value === "string") {
      if (key === "ownerId") return owner(value)
      return ids.get(value) ?? value
    }
    if (Array.isArray(value)) return value.map((v) => rewrite(v))
    if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewrite(v, k)]))
    return value
  }

  const actor = (label: unknown) => {
    if (typeof label !== "string") return label
    const [kind, id] = label.split(":")
    return id !== undefined && owners.has(id) ? `${kind}:${owners.get(id)}` : label
  }

  return (event: ExportedEvent): ExportedEvent => {
    if (owners.size === 0) return event
    const data = event.data as Record<string, unknown> | null
    // An id derived from the owner must be derived again from the new one.
    if (isObject(data) && typeof data.ownerId === "string" && owners.has(data.ownerId)) {
      const to = owners.get(data.ownerId)!
      if (
        (event.type === "SessionStarted" || event.type === "SessionForked") &&
        typeof data.externalKey === "string" &&
        data.sessionId === sessionIdForKey(data.ownerId, data.externalKey)
      ) {
        ids.set(data.sessionId, sessionIdForKey(to, data.externalKey))
      }
      if (
        event.type === "GraphThreadStarted" &&
        typeof data.threadId === "string" &&
        data.graphId === graphIdForThread(data.ownerId, data.threadId)
      ) {
        ids.set(data.graphId, graphIdForThread(to, data.threadId))
      }
    }
    const [category, ...rest] = event.streamId.split("-")
    const streamUuid = rest.join("-")
    return {
      ...event,
      streamId: ids.has(streamUuid) ? `${category}-${ids.get(streamUuid)}` : event.streamId,
      data: rewrite(event.data),
      metadata: {
        ...event.metadata,
        ...("actor" in event.metadata ? { actor: actor(event.metadata.actor) } : {}),
      },
      ownerId:
        event.ownerId === undefined || event.ownerId === null
          ? event.ownerId
          : (owner(event.ownerId) as string),
    }
  }
}

type Line =
  | { readonly kind: "event"; readonly event: ExportedEvent }
  | { readonly kind: "blob"; readonly blob: ExportedBlob["blob"] }

const SHA256 = /^[0-9a-f]{64}$/

const parseLine = (line: string, n: number): Line => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    throw new TransferError(`line ${n}: not JSON`)
  }
  if (isObject(value) && "blob" in value) {
    const blob = value.blob as Partial<ExportedBlob["blob"]> | null
    if (
      !isObject(blob) ||
      typeof blob.sha256 !== "string" ||
      !SHA256.test(blob.sha256) ||
      !Number.isSafeInteger(blob.size) ||
      typeof blob.contentBase64 !== "string"
    ) {
      throw new TransferError(`line ${n}: a blob needs sha256 (64 hex digits), size and contentBase64`)
    }
    return { kind: "blob", blob: blob as ExportedBlob["blob"] }
  }
  const e = value as Partial<ExportedEvent>
  if (!isObject(e)) throw new TransferError(`line ${n}: not an event or a blob`)
  for (const [field, ok] of [
    ["streamId", typeof e.streamId === "string" && /^[a-z][a-z0-9_]{0,62}-[0-9a-f-]{36}$/.test(e.streamId)],
    ["version", Number.isInteger(e.version) && (e.version ?? 0) >= 1],
    ["eventId", typeof e.eventId === "string" && isUuid(e.eventId)],
    ["type", typeof e.type === "string"],
    ["schemaVersion", Number.isInteger(e.schemaVersion)],
    ["data", e.data !== undefined],
    ["metadata", isObject(e.metadata)],
    ["recordedAt", typeof e.recordedAt === "string" && !Number.isNaN(Date.parse(e.recordedAt))],
    [
      "ownerId",
      e.ownerId === undefined || e.ownerId === null || (typeof e.ownerId === "string" && isUuid(e.ownerId)),
    ],
  ] as const) {
    if (!ok) throw new TransferError(`line ${n}: "${field}" is missing or of the wrong type`)
  }
  return { kind: "event", event: e as ExportedEvent }
}

/**
 * Appends exported events in file order, keeping their ids, versions and recorded_at, and
 * stores the files' bytes (checked against their SHA-256). Consecutive events of one stream
 * go in one transaction (up to 500). Importing the same file twice writes nothing the second
 * time; a stream that already holds different events is refused. `owners` replaces owners
 * (see `makeRemapper`). `onProgress` hears how far it got.
 */
export const importEvents = (
  input: Readable,
  onProgress: (line: string) => void,
  owners: OwnerMap = new Map(),
) =>
  Effect.gen(function* () {
    const db = yield* Database
    const store = yield* EventStore
    const remap = makeRemapper(owners)
    const iterator = ndjsonLines(input)[Symbol.asyncIterator]()
    const streams = new Set<string>()
    let written = 0
    let skipped = 0
    let n = 0
    let batch: Array<ExportedEvent> = []
    let reported = Date.now()

    const flush = Effect.gen(function* () {
      const first = batch[0]
      if (first === undefined) return
      const events = batch
      batch = []
      const ownerId =
        first.ownerId ??
        (typeof (first.data as { ownerId?: unknown })?.ownerId === "string"
          ? (first.data as { ownerId: string }).ownerId
          : null)
      const [result] = yield* db
        .query<{ written: number; skipped: number }>(
          "select * from chronicle.import_events($1, $2::text::jsonb, $3::uuid)",
          [
            first.streamId,
            JSON.stringify(
              events.map((e) => ({
                version: e.version,
                event_id: e.eventId,
                type: e.type,
                schema_version: e.schemaVersion,
                data: e.data,
                metadata: e.metadata,
                recorded_at: e.recordedAt,
              })),
            ),
            ownerId,
          ],
        )
        .pipe(
          Effect.mapError(
            (error) => new TransferError(`${first.streamId} (versions ${first.version}…): ${error.reason}`),
          ),
        )
      written += result?.written ?? 0
      skipped += result?.skipped ?? 0
      streams.add(first.streamId)
      if (Date.now() - reported > 1_000) {
        reported = Date.now()
        onProgress(`${written + skipped} event(s) so far (${written} written, ${skipped} already present)`)
      }
    })

    const storeBlob = (blob: ExportedBlob["blob"], line: number) =>
      Effect.gen(function* () {
        const content = Buffer.from(blob.contentBase64, "base64")
        const digest = createHash("sha256").update(content).digest("hex")
        if (digest !== blob.sha256 || content.byteLength !== blob.size) {
          return yield* Effect.fail(
            new TransferError(
              `line ${line}: the blob's content does not match its sha256 and size (${content.byteLength} bytes, sha256 ${digest})`,
            ),
          )
        }
        yield* db
          .query(
            `insert into chronicle.blobs (sha256, size, content) values ($1, $2, $3::bytea)
             on conflict (sha256) do nothing`,
            [blob.sha256, blob.size, content],
          )
          .pipe(Effect.mapError((error) => new TransferError(`line ${line}: ${error.reason}`)))
        blobsSeen.add(blob.sha256)
        stored.add(blob.sha256)
      })

    // Large values this import stored or found: an event may only refer to bytes that exist.
    const blobsSeen = new Set<string>()
    // Blobs this import stored, and those events named as large values (the rest are files).
    const stored = new Set<string>()
    const largeValues = new Set<string>()
    const ensureBlobs = (event: ExportedEvent, line: number) =>
      Effect.gen(function* () {
        for (const ref of [...eventRefs(event.type, event.data), ...graphBlobRefs(event.type, event.data)]) {
          largeValues.add(ref.sha256)
          if (blobsSeen.has(ref.sha256)) continue
          const rows = yield* db
            .query("select 1 from chronicle.blobs where sha256 = $1", [ref.sha256])
            .pipe(Effect.mapError((error) => new TransferError(`line ${line}: ${error.reason}`)))
          if (rows.length === 0) {
            return yield* Effect.fail(
              new TransferError(
                `line ${line}: the event refers to a large value (sha256 ${ref.sha256}, ${ref.size} bytes) whose bytes are neither in the input before it nor in the database`,
              ),
            )
          }
          blobsSeen.add(ref.sha256)
        }
      })

    while (true) {
      const next = yield* Effect.tryPromise({
        try: () => iterator.next(),
        catch: (error) =>
          error instanceof TransferError
            ? error
            : new TransferError(
                `cannot read the input: ${error instanceof TypeError ? "it is not UTF-8 text" : String(error)}`,
              ),
      })
      if (next.done) break
      n++
      if (next.value.trim() === "") continue
      const parsed = yield* Effect.try({
        try: () => parseLine(next.value, n),
        catch: (error) => (error instanceof TransferError ? error : new TransferError(String(error))),
      })
      if (parsed.kind === "blob") {
        yield* storeBlob(parsed.blob, n)
        continue
      }
      yield* ensureBlobs(parsed.event, n)
      const event = remap(parsed.event)
      const last = batch.at(-1)
      if (last !== undefined && (last.streamId !== event.streamId || batch.length >= 500)) yield* flush
      batch.push(event)
    }
    yield* flush
    // The events go into the log's order before this (often short-lived) process goes: the
    // writes above went through SQL, which pokes no sequencer.
    yield* store.sequenceAll()
    const values = [...stored].filter((sha) => largeValues.has(sha)).length
    return { streams: streams.size, written, skipped, files: stored.size - values, largeValues: values }
  })
