/**
 * The database fails under the server: a private PostgreSQL cluster is crashed and
 * restarted, and its backends terminated, in the middle of an append load. The server says
 * it is unhealthy, answers 503 (never 500, never a hang), reconnects by itself, and loses
 * nothing it acknowledged.
 */
import { randomUUID } from "node:crypto"
import { clientFor, startTestServer, type TestServer } from "@chronicle/server/testing"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { caughtUp, startSubscriber, wholeLog } from "./followers.ts"
import { audit, createSessions, newBooks, retryPending, startLoad } from "./load.ts"
import {
  eventually,
  type PrivateCluster,
  report,
  scale,
  sleep,
  startPrivateCluster,
  withSql,
} from "./support.ts"

describe("database faults under load (a private PostgreSQL cluster)", () => {
  let cluster: PrivateCluster
  let t: TestServer
  const owner = randomUUID()

  beforeAll(async () => {
    cluster = await startPrivateCluster()
    await withSql(cluster.url, (sql) => sql.unsafe("create database app"))
    const url = cluster.urlOf("app")
    t = await startTestServer({
      name: "postgres",
      prepare: async () => ({
        database: { kind: "postgres", url, prepare: true, listen: true, pooler: "none" },
        drop: async () => {},
      }),
    })
  })
  afterAll(async () => {
    await t?.close()
    await cluster?.destroy()
  })

  const health = async () => {
    const response = await fetch(`${t.server.url}/healthz`)
    return { status: response.status, body: (await response.json()) as { ok: boolean; error?: string } }
  }

  it("reports unhealthy, answers 503, reconnects by itself and loses nothing acknowledged", async () => {
    const client = clientFor(t.server.url, t.authority.serviceKey, owner)
    const service = clientFor(t.server.url, t.authority.serviceKey)
    const books = newBooks(await createSessions(client, scale(4, 12)))
    const subscriber = startSubscriber(service)
    const load = startLoad(() => client, books, { maxBatch: 4 })
    const progress = async (batches: number) => {
      const target = books.acknowledged.size + batches
      await eventually("appends to succeed again", async () =>
        books.acknowledged.size >= target ? true : undefined,
      )
    }

    const faults = { restarts: 0, crashes: 0, terminations: 0, unavailableAnswers: 0 }
    const rounds = scale(2, 5)
    for (let round = 0; round < rounds; round++) {
      await progress(scale(25, 150))
      // A crash (no shutdown checkpoint) or a clean restart, alternately.
      const mode = round % 2 === 0 ? "immediate" : "fast"
      await cluster.stop(mode)
      if (mode === "immediate") faults.crashes++
      else faults.restarts++

      expect(await health()).toEqual({ status: 503, body: { ok: false, error: "database unreachable" } })
      const refused = await client.messages.append
        .mutate({ sessionId: books.sessions[0]!, role: "user", content: "while down" })
        .then(
          () => undefined,
          (e: { data?: unknown; message: string }) => e,
        )
      expect(refused?.data).toMatchObject({
        code: "SERVICE_UNAVAILABLE",
        httpStatus: 503,
        tag: "DatabaseUnavailable",
      })
      expect(refused?.message).toBe("The database is unavailable; retry shortly")
      faults.unavailableAnswers++
      const read = await fetch(`${t.server.url}/trpc/sessions.list?input=${encodeURIComponent("{}")}`, {
        headers: { authorization: `Bearer ${t.authority.serviceKey}` },
      })
      expect(read.status).toBe(503)
      await sleep(scale(200, 1000))

      await cluster.start()
      await eventually("the server to report healthy", async () =>
        (await health()).status === 200 ? true : undefined,
      )
      await progress(scale(15, 100))

      // Every connection of the server killed from the database side.
      const killed = await withSql(
        cluster.url,
        (sql) => sql`select count(*)::int as n from (
                       select pg_terminate_backend(pid) from pg_stat_activity
                        where datname = 'app' and pid <> pg_backend_pid()) k`,
      )
      faults.terminations += killed[0]!.n as number
      await progress(scale(15, 100))
    }
    await load.stop()

    const retried = await retryPending(client, books)
    const result = await audit(client, books, { retried: true })
    expect(result).toMatchObject({ lost: 0, duplicated: 0, partial: 0 })
    // Refusals were 503s (or a connection cut mid-answer), never 500.
    expect(books.failures.get(500) ?? 0).toBe(0)
    for (const status of books.failures.keys()) expect([0, 503]).toContain(status)

    // The subscriber rode through the faults: it has the whole log, once, in order.
    const log = await wholeLog(service)
    await caughtUp([subscriber], log.length)
    await sleep(200)
    await subscriber.stop()
    expect(subscriber.seen).toEqual(log.map((e) => e.cursor))

    report("database faults", {
      ...faults,
      eventsWritten: result.events,
      batchesAcknowledged: books.acknowledged.size,
      retried,
      refusalsByStatus: Object.fromEntries(books.failures),
      subscriberErrors: subscriber.errors.length,
      lost: result.lost,
      duplicated: result.duplicated,
      partial: result.partial,
      status500: books.failures.get(500) ?? 0,
    })
  })
})
