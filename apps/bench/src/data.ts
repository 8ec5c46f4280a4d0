import { randomUUID } from "node:crypto"
import type { NewEvent } from "@chronicle/store"

/** The owner of every benchmark stream. */
export const OWNER = "00000000-0000-4000-8000-0000000000be"

/** A chat message of typical size (about 200 bytes). */
export const CONTENT =
  "The migration ran cleanly on staging; the rollback plan is to restore the snapshot taken at 14:00 and replay the queued writes. Shall I schedule the production run for tonight?"

export const sessionStream = (id: string) => `session-${id}`

export const sessionStarted = (sessionId: string): NewEvent => ({
  type: "SessionStarted",
  data: { sessionId, ownerId: OWNER, title: "bench", metadata: {}, externalKey: null },
})

export const messageAppended = (seq: number): NewEvent => ({
  type: "MessageAppended",
  data: {
    messageId: randomUUID(),
    seq,
    role: seq % 2 === 0 ? "assistant" : "user",
    content: CONTENT,
    metadata: {},
    createdAt: null,
  },
})

/** The row a baseline inserts for the same event: the log's columns, JSON as text. */
export const rawRow = (streamId: string, version: number, event: NewEvent) => [
  streamId,
  version,
  randomUUID(),
  event.type,
  JSON.stringify(event.data),
  JSON.stringify(event.metadata ?? {}),
]

export const RAW_INSERT = `insert into bench_raw.events (stream_id, stream_version, event_id, type, data, metadata)
  values ($1, $2, $3::uuid, $4, $5::text::jsonb, $6::text::jsonb)`

/** A multi-row INSERT of `n` rows in one statement. */
export const rawMultiInsert = (n: number) =>
  `insert into bench_raw.events (stream_id, stream_version, event_id, type, data, metadata) values ${Array.from(
    { length: n },
    (_, i) =>
      `($${i * 6 + 1}, $${i * 6 + 2}, $${i * 6 + 3}::uuid, $${i * 6 + 4}, $${i * 6 + 5}::text::jsonb, $${i * 6 + 6}::text::jsonb)`,
  ).join(", ")}`
