/**
 * 16 writers on overlapping and separate sessions, 4 `readAll` pollers and 2 SSE subscribers
 * following the whole log, and a transaction that takes its log position early and commits
 * late: every follower sees every committed event exactly once and in the same order; stale
 * expected versions get CONFLICT and write nothing; versions have no gaps.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import {
  type Callers,
  callers,
  startTestServer,
  type TestServer,
  testDatabases,
} from "@chronicle/server/testing"
import { Database, EventStore } from "@chronicle/store"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { caughtUp, type Follower, startReader, startSubscriber, wholeLog } from "./followers.ts"
import { messagesOf } from "./load.ts"
import { eventually, report, scale, sleep } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const WRITERS = 16
const SHARED = 4
const OPS = scale(20, 200)

describe.each(testDatabases(env))("concurrent writers and followers, on $name", (database) => {
  let t: TestServer
  let c: Callers
  beforeAll(async () => {
    t = await startTestServer(database)
    c = await callers(t)
  })
  afterAll(() => t?.close())

  it("delivers every committed event exactly once, in one order, to every reader and subscriber", async () => {
    const owner = c.alice
    const asOwner = c.asAlice
    const service = c.asService
    const shared = await Promise.all(
      Array.from({ length: SHARED }, async () => (await asOwner.sessions.create.mutate({})).id),
    )
    const followers: Array<Follower> = [
      ...Array.from({ length: 4 }, () => startReader(service)),
      ...Array.from({ length: 2 }, () => startSubscriber(service)),
    ]

    // The late commit: takes its position now, commits after the writers have moved on.
    let release!: () => void
    const mayCommit = new Promise<void>((resolve) => (release = resolve))
    let inserted!: () => void
    const hasInserted = new Promise<void>((resolve) => (inserted = resolve))
    const lateStream = `session-${randomUUID()}`
    const late = t.server.runtime.runPromise(
      Effect.gen(function* () {
        const db = yield* Database
        const store = yield* EventStore
        yield* db.transaction(
          Effect.gen(function* () {
            yield* store.append(lateStream, [{ type: "LateCommit", data: {} }], { ownerId: owner })
            yield* Effect.sync(() => inserted())
            yield* Effect.promise(() => mayCommit)
          }),
        )
      }),
    )
    // The embedded database runs one transaction at a time: there the late writer would
    // block every other writer, so it commits before they start.
    await hasInserted
    if (database.name === "pglite") release()

    const acknowledged = new Set<string>()
    const conflicted = new Set<string>()
    let conflicts = 0
    let raced = 0
    const writer = async (w: number, client: ChronicleClient) => {
      const own = (await client.sessions.create.mutate({})).id
      for (let i = 0; i < OPS; i++) {
        const sessionId = i % 2 === 0 ? own : shared[(w + i) % SHARED]!
        const content = `w${w}-${i}-${randomUUID().slice(0, 8)}`
        const mode = i % 5
        if (mode === 3) {
          // A stale expected version: always refused, nothing written.
          const { version } = await client.sessions.get.query({ id: sessionId })
          const error = await client.messages.append
            .mutate({ sessionId, role: "user", content, expectedVersion: version - 1 })
            .then(
              () => undefined,
              (e: { data?: { code?: string; tag?: string } }) => e,
            )
          expect(error?.data).toMatchObject({ code: "CONFLICT", tag: "VersionConflict" })
          conflicted.add(content)
          conflicts++
        } else if (mode === 4) {
          // The version just read: wins or loses a race with the other writers.
          const { version } = await client.sessions.get.query({ id: sessionId })
          try {
            await client.messages.append.mutate({
              sessionId,
              role: "user",
              content,
              expectedVersion: version,
            })
            acknowledged.add(content)
          } catch (e) {
            expect((e as { data?: { code?: string } }).data?.code).toBe("CONFLICT")
            conflicted.add(content)
            raced++
          }
        } else {
          await client.messages.append.mutate({ sessionId, role: "user", content })
          acknowledged.add(content)
        }
      }
      return own
    }
    const writing = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w, asOwner)))
    // Let the writers commit past the open transaction before it commits.
    while (acknowledged.size < (WRITERS * OPS) / 4) await sleep(10)
    release()
    await late
    const own = await writing

    // "Caught up" is as far as every reader may safely see: a transaction still open
    // anywhere (an in-flight append, a projection's) holds later commits back. Read until
    // everything acknowledged is there.
    const log = await eventually("the log to show every acknowledged append", async () => {
      const events = await wholeLog(service)
      const messages = events.filter((e) => e.type === "MessageAppended").length
      return messages >= acknowledged.size && events.some((e) => e.streamId === lateStream)
        ? events
        : undefined
    })
    const cursors = log.map((e) => e.cursor)
    await caughtUp(followers, log.length)
    await sleep(200) // anything extra (a duplicate) would arrive now
    for (const f of followers) await f.stop()

    // Exactly once, one order, everywhere.
    expect(new Set(cursors).size).toBe(cursors.length)
    for (const f of followers) expect(f.seen).toEqual(cursors)
    expect(log.filter((e) => e.streamId === lateStream)).toHaveLength(1)

    // Versions 1..n in every stream, and in log order within each stream.
    const versions = new Map<string, Array<number>>()
    for (const e of log) versions.set(e.streamId, [...(versions.get(e.streamId) ?? []), e.version])
    for (const [, vs] of versions) expect(vs).toEqual(vs.map((_, i) => i + 1))

    // Every acknowledged message once; nothing of a refused one.
    const contents = (await Promise.all([...shared, ...own].map((s) => messagesOf(asOwner, s)))).flat()
    expect(contents.length).toBe(new Set(contents).size)
    expect(new Set(contents)).toEqual(acknowledged)
    for (const content of conflicted) expect(acknowledged.has(content)).toBe(false)
    const logged = log.filter((e) => e.type === "MessageAppended").length
    expect(logged).toBe(acknowledged.size)

    report(`concurrency (${database.name})`, {
      writers: WRITERS,
      readers: 4,
      subscribers: 2,
      eventsWritten: log.length,
      messagesAcknowledged: acknowledged.size,
      staleConflicts: conflicts,
      racedConflicts: raced,
      lateCommitDelivered: true,
      lost: 0,
      duplicated: 0,
      skipped: 0,
    })
  })
})
