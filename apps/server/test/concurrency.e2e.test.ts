/**
 * Concurrent writers on one session, as the README documents them: appends without an
 * expected version are decided again when another append moved the session first, so every
 * one of 16 writers' messages lands, with contiguous versions and seq; a writer that pinned
 * an expected version is still told of the conflict. Within one server the writers of a
 * session take turns (no conflict at all); across servers a conflict is decided again after a
 * short jittered pause.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import {
  allPages,
  clientFor,
  refusal,
  startTestServer,
  type TestDatabase,
  type TestServer,
  testDatabases,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const WRITERS = 16

/** Each writer appends `each` messages one after the other, on its own client; returns the failures. */
const crowd = async (clients: ReadonlyArray<ChronicleClient>, sessionId: string, each: number) => {
  const failures: Array<string> = []
  await Promise.all(
    clients.map(async (client, w) => {
      for (let i = 0; i < each; i++) {
        try {
          await client.messages.append.mutate({ sessionId, role: "user", content: `${w}.${i}` })
        } catch (error) {
          failures.push(String((error as { data?: { tag?: string } }).data?.tag ?? error))
        }
      }
    }),
  )
  return failures
}

/** Every event of the session has the next version, and the messages' seq run 1..n. */
const expectContiguous = async (client: ChronicleClient, sessionId: string, messages: number) => {
  const { items: events } = await allPages((cursor) =>
    client.events.readStream.query({ streamId: `session-${sessionId}`, limit: 500, cursor }),
  )
  expect(events.map((e) => e.version)).toEqual(Array.from({ length: messages + 1 }, (_, i) => i + 1))
  const { items: listed } = await allPages((cursor) =>
    client.messages.list.query({ sessionId, limit: 500, cursor }),
  )
  expect(listed.map((m) => m.seq)).toEqual(Array.from({ length: messages }, (_, i) => i + 1))
  expect(new Set(listed.map((m) => m.content)).size).toBe(messages)
}

describe.each(testDatabases(env))("16 concurrent writers on one session, on $name", (database) => {
  let t: TestServer
  let token: string

  beforeAll(async () => {
    // The per-user query limit (8 by default) would turn writers away with 429 before they race.
    t = await startTestServer(database, { CHRONICLE_MAX_CONCURRENT_QUERIES: "0" })
    token = await t.authority.hs256Token({ sub: randomUUID() })
  })
  afterAll(() => t?.close())

  it("lands every append made without an expected version, versions contiguous", async () => {
    const each = database.name === "postgres" ? 25 : 10
    const clients = Array.from({ length: WRITERS }, () => clientFor(t.server.url, token))
    const session = await clients[0]!.sessions.create.mutate({ title: "crowd" })
    expect(await crowd(clients, session.id, each)).toEqual([])
    await expectContiguous(clients[0]!, session.id, WRITERS * each)
  })

  it("still refuses an append whose pinned expected version another writer moved", async () => {
    const me = clientFor(t.server.url, token)
    const session = await me.sessions.create.mutate({ title: "pinned" })
    const pinned = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        me.messages.append.mutate({
          sessionId: session.id,
          role: "user",
          content: `p${i}`,
          expectedVersion: 1,
        }),
      ),
    )
    expect(pinned.filter((r) => r.status === "fulfilled")).toHaveLength(1)
    for (const r of pinned) {
      if (r.status === "rejected")
        await refusal(Promise.reject(r.reason), { code: "CONFLICT", tag: "VersionConflict" })
    }
  })
})

const postgres = testDatabases(env).find((d) => d.name === "postgres")

describe.runIf(postgres !== undefined)("16 concurrent writers across two servers on one Postgres", () => {
  let a: TestServer
  let b: TestServer
  const owner = randomUUID()

  beforeAll(async () => {
    a = await startTestServer(postgres!, { CHRONICLE_MAX_CONCURRENT_QUERIES: "0" })
    const shared: TestDatabase = {
      name: "postgres",
      prepare: async () => ({
        database: { kind: "postgres", url: a.databaseUrl!, prepare: true, listen: true, pooler: "none" },
        drop: async () => {},
      }),
    }
    b = await startTestServer(shared, { CHRONICLE_MAX_CONCURRENT_QUERIES: "0" })
  })
  afterAll(async () => {
    await b?.close()
    await a?.close()
  })

  it("lands every append: a conflict with the other server is decided again", async () => {
    const [ta, tb] = await Promise.all([
      a.authority.hs256Token({ sub: owner }),
      b.authority.hs256Token({ sub: owner }),
    ])
    const clients = Array.from({ length: WRITERS }, (_, i) =>
      i % 2 === 0 ? clientFor(a.server.url, ta) : clientFor(b.server.url, tb),
    )
    const session = await clients[0]!.sessions.create.mutate({ title: "two servers" })
    const each = 20
    expect(await crowd(clients, session.id, each)).toEqual([])
    await expectContiguous(clients[1]!, session.id, WRITERS * each)
  })
})
