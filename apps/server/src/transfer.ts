/**
 * `chronicle export` and `chronicle import`: a session's streams as NDJSON, one event per line,
 * so a session can be archived or moved to another database and brought back verbatim.
 */
import { createInterface } from "node:readline"
import type { Readable, Writable } from "node:stream"
import { Database, EventStore, isUuid, type RecordedEvent } from "@chronicle/store"
import { Effect } from "effect"

/** One line of an export. */
export interface ExportedEvent {
  readonly streamId: string
  readonly version: number
  readonly eventId: string
  readonly type: string
  readonly schemaVersion: number
  readonly data: unknown
  readonly metadata: Record<string, unknown>
  readonly recordedAt: string
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

/**
 * Writes the session's events, preceded by its fork ancestors' (a fork copies its parent's
 * content as of the fork point, so an import needs the parent first). Returns the count.
 */
export const exportSession = (sessionId: string, out: Writable) =>
  Effect.gen(function* () {
    if (!isUuid(sessionId))
      return yield* Effect.fail(new TransferError(`${sessionId} is not a session id (a UUID)`))
    const store = yield* EventStore
    const db = yield* Database
    // The chain of parents, oldest first.
    const chain: Array<string> = []
    for (let id: string | null = sessionId; id !== null; ) {
      const rows: Array<{ parent_id: string | null }> = yield* db
        .query<{ parent_id: string | null }>(
          "select parent_id::text from chronicle.sessions where id = $1::uuid",
          [id],
        )
        .pipe(Effect.orDie)
      if (rows[0] === undefined) {
        return yield* Effect.fail(new TransferError(`session ${id} was not found in this database`))
      }
      chain.unshift(id)
      id = rows[0].parent_id
    }
    let count = 0
    for (const id of chain) {
      for (let from: number | undefined = 1; from !== undefined; ) {
        const page: { events: ReadonlyArray<RecordedEvent>; nextVersion: number | undefined } = yield* store
          .readStream(`session-${id}`, { fromVersion: from })
          .pipe(Effect.orDie)
        for (const e of page.events) {
          const line: ExportedEvent = {
            streamId: e.streamId,
            version: e.version,
            eventId: e.eventId,
            type: e.type,
            schemaVersion: e.schemaVersion,
            data: e.data,
            metadata: e.metadata,
            recordedAt: e.recordedAt.toISOString(),
          }
          yield* write(out, JSON.stringify(line))
          count++
        }
        from = page.nextVersion
      }
    }
    return { sessions: chain.length, events: count }
  })

const parseLine = (line: string, n: number): ExportedEvent => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    throw new TransferError(`line ${n}: not JSON`)
  }
  const e = value as Partial<ExportedEvent>
  for (const [field, ok] of [
    ["streamId", typeof e.streamId === "string"],
    ["version", Number.isInteger(e.version)],
    ["eventId", typeof e.eventId === "string"],
    ["type", typeof e.type === "string"],
    ["schemaVersion", Number.isInteger(e.schemaVersion)],
    ["data", e.data !== undefined],
    ["metadata", typeof e.metadata === "object" && e.metadata !== null],
  ] as const) {
    if (!ok) throw new TransferError(`line ${n}: "${field}" is missing or of the wrong type`)
  }
  return e as ExportedEvent
}

/**
 * Appends exported events, stream by stream, keeping their ids and versions. Importing the
 * same file twice writes nothing the second time; a stream that already holds different
 * events is refused. `onProgress` hears about each stream.
 */
export const importEvents = (input: Readable, onProgress: (line: string) => void) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const lines: Array<ExportedEvent> = []
    const reader = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })
    let n = 0
    const read = yield* Effect.tryPromise({
      try: async () => {
        for await (const line of reader) {
          n++
          if (line.trim() === "") continue
          lines.push(parseLine(line, n))
        }
        return lines
      },
      catch: (error) => (error instanceof TransferError ? error : new TransferError(String(error))),
    })
    const streams = new Map<string, Array<ExportedEvent>>()
    for (const e of read) streams.set(e.streamId, [...(streams.get(e.streamId) ?? []), e])
    let written = 0
    let skipped = 0
    for (const [streamId, events] of streams) {
      events.sort((a, b) => a.version - b.version)
      const first = events[0]!
      const ownerId = (first.data as { ownerId?: unknown }).ownerId
      for (let i = 0; i < events.length; i += 500) {
        const chunk = events.slice(i, i + 500)
        const start = chunk[0]!.version
        const result = yield* store
          .append(
            streamId,
            chunk.map((e) => ({
              eventId: e.eventId,
              type: e.type,
              schemaVersion: e.schemaVersion,
              data: e.data,
              metadata: { ...e.metadata, originalRecordedAt: e.recordedAt },
            })),
            {
              expectedVersion: start === 1 ? "no_stream" : start - 1,
              ...(i === 0 && typeof ownerId === "string" ? { ownerId } : {}),
            },
          )
          .pipe(
            Effect.mapError(
              (error) => new TransferError(`${streamId} (versions ${start}…): ${error.message}`),
            ),
          )
        if (result.duplicate) skipped += chunk.length
        else written += chunk.length
      }
      onProgress(`${streamId}: ${events.length} event(s)`)
    }
    return { streams: streams.size, written, skipped }
  })
