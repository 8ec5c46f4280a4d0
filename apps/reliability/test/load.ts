/**
 * A sustained append load through the real client that keeps the books a fault test needs:
 * which batches the server acknowledged, which were in flight or refused when the fault hit
 * (and are retried later with the same idempotency key), and how the refusals looked.
 */
import { randomBytes, randomUUID } from "node:crypto"
import { type ChronicleClient, createChronicleClient } from "@chronicle/client"
import { expect } from "vitest"

/** A service key for child servers: the service role may act for an owner and read projections. */
export const SERVICE_KEY = `reliability-${randomBytes(24).toString("hex")}`
export const OWNER = randomUUID()

export const serviceClient = (url: string): ChronicleClient =>
  createChronicleClient({ url, token: SERVICE_KEY, actingFor: OWNER })

/** The environment of a child server that trusts SERVICE_KEY. */
export const childEnv = (databaseUrl: string): Record<string, string> => ({
  DATABASE_URL: databaseUrl,
  CHRONICLE_SERVICE_KEY: SERVICE_KEY,
  CHRONICLE_SESSION_TTL_HOURS: "0",
})

/** One `messages.appendMany` call: `size` messages whose content names the batch. */
export interface Batch {
  readonly key: string
  readonly sessionId: string
  readonly size: number
}

export const contentOf = (batch: Batch, i: number) => `${batch.key}#${i}`

export interface Books {
  readonly sessions: ReadonlyArray<string>
  readonly acknowledged: Map<string, Batch>
  /** Sent but never acknowledged (the connection broke, or the server refused). */
  readonly pending: Map<string, Batch>
  /** Error responses by HTTP status (0: no response at all). */
  readonly failures: Map<number, number>
  /** Error messages seen, by status, a few of each. */
  readonly messages: Map<number, Set<string>>
}

const statusOf = (error: unknown): number => {
  const data = (error as { data?: { httpStatus?: number } }).data
  return data?.httpStatus ?? 0
}

/** Creates `count` sessions and returns their ids. */
export const createSessions = async (client: ChronicleClient, count: number) =>
  Promise.all(
    Array.from({ length: count }, async () => (await client.sessions.create.mutate({ title: "load" })).id),
  )

export const newBooks = (sessions: ReadonlyArray<string>): Books => ({
  sessions,
  acknowledged: new Map(),
  pending: new Map(),
  failures: new Map(),
  messages: new Map(),
})

const record = (books: Books, error: unknown) => {
  const status = statusOf(error)
  books.failures.set(status, (books.failures.get(status) ?? 0) + 1)
  const seen = books.messages.get(status) ?? new Set()
  if (seen.size < 5) seen.add(error instanceof Error ? error.message : String(error))
  books.messages.set(status, seen)
}

export const send = (client: ChronicleClient, batch: Batch) =>
  client.messages.appendMany.mutate({
    sessionId: batch.sessionId,
    idempotencyKey: batch.key,
    messages: Array.from({ length: batch.size }, (_, i) => ({
      role: "user" as const,
      content: contentOf(batch, i),
    })),
  })

/**
 * One writer per session, appending batches of 1 to `maxBatch` messages back to back until
 * `stop()` is called. A failed batch goes to `pending`, and the writer moves on.
 */
export const startLoad = (
  clientOf: () => ChronicleClient,
  books: Books,
  options: { readonly maxBatch: number },
) => {
  let stopped = false
  const writer = async (sessionId: string) => {
    let n = 0
    while (!stopped) {
      const batch: Batch = {
        key: `${sessionId.slice(0, 8)}-${n++}-${randomUUID().slice(0, 8)}`,
        sessionId,
        size: 1 + (n % options.maxBatch),
      }
      books.pending.set(batch.key, batch)
      try {
        await send(clientOf(), batch)
        books.pending.delete(batch.key)
        books.acknowledged.set(batch.key, batch)
      } catch (error) {
        record(books, error)
        // A connection refused while the server is down: don't spin.
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  }
  const running = Promise.all(books.sessions.map(writer))
  return {
    stop: async () => {
      stopped = true
      await running
    },
  }
}

/** Every message of a session, in order, through the read model. */
export const messagesOf = async (client: ChronicleClient, sessionId: string) => {
  const contents: Array<string> = []
  let cursor: string | undefined
  do {
    const page = await client.messages.list.query({
      sessionId,
      limit: 500,
      ...(cursor === undefined ? {} : { cursor }),
    })
    contents.push(...page.items.map((m) => m.content as string))
    cursor = page.nextCursor ?? undefined
  } while (cursor !== undefined)
  return contents
}

/** The versions of a session's stream, read from the log. */
export const versionsOf = async (client: ChronicleClient, sessionId: string) => {
  const versions: Array<{ version: number; type: string }> = []
  let cursor: string | undefined
  do {
    const page = await client.events.readStream.query({
      streamId: `session-${sessionId}`,
      limit: 500,
      ...(cursor === undefined ? {} : { cursor }),
    })
    versions.push(...page.items.map((e) => ({ version: e.version, type: e.type })))
    cursor = page.nextCursor ?? undefined
  } while (cursor !== undefined)
  return versions
}

export interface Audit {
  readonly events: number
  readonly lost: number
  readonly duplicated: number
  readonly partial: number
}

/**
 * Reads every session back and checks the books: every acknowledged batch whole and once;
 * a pending batch absent or whole (never partial) — and once `retried` is true, whole;
 * nothing that was never sent; versions 1..n with no gap; read model = log.
 */
export const audit = async (
  client: ChronicleClient,
  books: Books,
  options: { readonly retried: boolean },
): Promise<Audit> => {
  const batches = new Map([...books.acknowledged, ...books.pending])
  let events = 0
  let lost = 0
  let duplicated = 0
  let partial = 0
  for (const sessionId of books.sessions) {
    const [contents, versions] = await Promise.all([
      messagesOf(client, sessionId),
      versionsOf(client, sessionId),
    ])
    events += versions.length
    expect(versions.map((v) => v.version)).toEqual(versions.map((_, i) => i + 1))
    // The read model holds one row per MessageAppended in the log.
    expect(contents.length).toBe(versions.filter((v) => v.type === "MessageAppended").length)
    const counts = new Map<string, Map<number, number>>()
    for (const content of contents) {
      const [key, index] = content.split("#") as [string, string]
      const perBatch = counts.get(key) ?? new Map<number, number>()
      perBatch.set(Number(index), (perBatch.get(Number(index)) ?? 0) + 1)
      counts.set(key, perBatch)
    }
    for (const [key, perBatch] of counts) {
      const batch = batches.get(key)
      expect(batch, `a message of batch ${key}, which was never sent`).toBeDefined()
      expect(batch!.sessionId).toBe(sessionId)
      for (const n of perBatch.values()) if (n > 1) duplicated += n - 1
      if (perBatch.size !== batch!.size) partial++
    }
    for (const batch of batches.values()) {
      if (batch.sessionId !== sessionId) continue
      const found = counts.get(batch.key)
      if (found === undefined && (books.acknowledged.has(batch.key) || options.retried)) lost++
    }
  }
  return { events, lost, duplicated, partial }
}

/** Resends every pending batch with its idempotency key until each is acknowledged. */
export const retryPending = async (client: ChronicleClient, books: Books) => {
  let retries = 0
  for (const batch of [...books.pending.values()]) {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await send(client, batch)
        retries++
        // The same key answers with the first attempt's messages if that one had landed.
        if (result.items.length !== batch.size) throw new Error(`batch ${batch.key} came back partial`)
        books.pending.delete(batch.key)
        books.acknowledged.set(batch.key, batch)
        break
      } catch (error) {
        if (attempt >= 50) throw error
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }
  return retries
}
