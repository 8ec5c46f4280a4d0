/**
 * The README's example, on Postgres and on the embedded database kept on disk: a compiled StateGraph checkpoints through the real server,
 * the server stops, a new one starts on the same database, and the graph resumes where it
 * stopped; then it travels back to an earlier checkpoint and forks from it.
 */
import { randomUUID } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { graphIdForThread, graphStreamId } from "@chronicle/domain"
import {
  clientFor,
  startTestServer,
  type TestDatabase,
  type TestServer,
  testDatabases,
} from "@chronicle/server/testing"
import { createPostgresDatabase } from "@chronicle/store/testing"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { tripGraph } from "../examples/trip.ts"
import { ChronicleSaver } from "../src/index.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

/** A database that outlives the servers started on it: a Postgres database, or an embedded one on disk. */
const lastingDatabases = (): ReadonlyArray<{
  readonly name: string
  readonly open: () => Promise<{ database: TestDatabase; drop: () => Promise<void> }>
}> => [
  ...(env.postgresUrl === null
    ? []
    : [
        {
          name: "postgres",
          open: async () => {
            const created = await createPostgresDatabase(env.postgresUrl!)
            return {
              database: {
                name: "postgres" as const,
                prepare: async () => ({
                  database: {
                    kind: "postgres" as const,
                    url: created.url,
                    prepare: true,
                    listen: true,
                    pooler: "none" as const,
                  },
                  drop: async () => {},
                }),
              },
              drop: created.drop,
            }
          },
        },
      ]),
  {
    name: "embedded",
    open: async () => {
      const dir = await mkdtemp(join(tmpdir(), "chronicle-langgraph-"))
      return {
        database: {
          name: "pglite" as const,
          prepare: async () => ({
            database: { kind: "embedded" as const, dataDir: join(dir, "data") },
            drop: async () => {},
          }),
        },
        drop: () => rm(dir, { recursive: true, force: true }),
      }
    },
  },
]

describe.each(lastingDatabases())("a StateGraph checkpointed in Chronicle ($name)", ({ open }) => {
  let lasting: Awaited<ReturnType<typeof open>>
  let server: TestServer
  const user = randomUUID()
  const config = { configurable: { thread_id: `trip-${randomUUID()}` } }
  const saverOn = async (s: TestServer) =>
    new ChronicleSaver({ client: clientFor(s.server.url, await s.authority.hs256Token({ sub: user })) })

  beforeAll(async () => {
    lasting = await open()
    server = await startTestServer(lasting.database)
  })
  afterAll(async () => {
    await server?.close()
    await lasting?.drop()
  })

  it("resumes an interrupted run after the server restarts, then forks from an earlier checkpoint", async () => {
    const first = tripGraph(await saverOn(server))
    const paused = await first.invoke({ destination: "Lisbon" }, config)
    expect(paused.log).toEqual(["planned Lisbon"])
    expect((await first.getState(config)).next).toEqual(["book"])

    // A new server process on the same database; the test authority (its keys) is new too,
    // so the same user presents a token of the new authority.
    await server.close()
    server = await startTestServer(lasting.database)

    const later = tripGraph(await saverOn(server))
    expect((await later.getState(config)).next).toEqual(["book"])
    const done = await later.invoke(null, config)
    expect(done.log).toEqual(["planned Lisbon", "booked Hotel Lisbon"])
    expect(done.hotel).toBe("Hotel Lisbon")

    // Time travel: the history is newest first; the checkpoint that waited before `book`.
    const history = []
    for await (const snapshot of later.getStateHistory(config)) history.push(snapshot)
    expect(history.map((s) => s.next)).toEqual([[], ["book"], ["plan"], ["__start__"]])
    const beforeBooking = history[1]!
    expect(beforeBooking.values.log).toEqual(["planned Lisbon"])

    const forked = await later.updateState(beforeBooking.config, { hotel: "Casa do Rio" })
    const redone = await later.invoke(null, forked)
    expect(redone.log).toEqual(["planned Lisbon", "booked Casa do Rio"])

    // The fork is the thread's latest state; the original branch is still there to read.
    expect((await later.getState(config)).values.hotel).toBe("Casa do Rio")
    expect((await later.getState(history[0]!.config)).values.hotel).toBe("Hotel Lisbon")
  })
})

describe.each(testDatabases(env))("deleting a thread ($name)", (database) => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer(database)
  })
  afterAll(async () => {
    await server?.close()
  })

  it("records the deletion as an event: reads find nothing, the log keeps the history", async () => {
    const user = randomUUID()
    const client = clientFor(server.server.url, await server.authority.hs256Token({ sub: user }))
    const graph = tripGraph(new ChronicleSaver({ client }))
    const threadId = `trip-${randomUUID()}`
    await graph.invoke({ destination: "Porto" }, { configurable: { thread_id: threadId } })
    const saver = new ChronicleSaver({ client })
    await saver.deleteThread(threadId)
    expect(await saver.getTuple({ configurable: { thread_id: threadId } })).toBeUndefined()
    const listed = []
    for await (const tuple of saver.list({ configurable: { thread_id: threadId } })) listed.push(tuple)
    expect(listed).toEqual([])

    const stream = await client.events.readStream.query({
      streamId: graphStreamId(graphIdForThread(user, threadId)),
    })
    const types = stream.items.map((e) => e.type)
    expect(types[0]).toBe("GraphThreadStarted")
    expect(types.at(-1)).toBe("GraphThreadDeleted")
    expect(types.filter((t) => t === "GraphCheckpointSaved").length).toBeGreaterThan(1)

    // Deleting again records nothing more.
    await saver.deleteThread(threadId)
    expect((await client.events.readStream.query({ streamId: stream.items[0]!.streamId })).version).toBe(
      stream.version,
    )

    // Another user's thread of the same name is a different thread.
    const other = new ChronicleSaver({
      client: clientFor(server.server.url, await server.authority.hs256Token({ sub: randomUUID() })),
    })
    expect(await other.getTuple({ configurable: { thread_id: threadId } })).toBeUndefined()
  })
})
