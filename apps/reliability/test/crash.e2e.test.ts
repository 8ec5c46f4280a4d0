/**
 * `kill -9` of the real server (a child process) in the middle of a sustained append load,
 * and in the middle of a projection rebuild. What was acknowledged must survive exactly
 * once; what was not must be absent or whole; retries with the same idempotency key must
 * not duplicate; the read models must match the log.
 */
import type { ChronicleClient } from "@chronicle/client"
import { createPostgresDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { audit, childEnv, createSessions, newBooks, retryPending, serviceClient, startLoad } from "./load.ts"
import { readModelFingerprint, readModelTables, rebuildSettled } from "./projections.ts"
import {
  type ChildServer,
  eventually,
  report,
  scale,
  sleep,
  spawnCli,
  startChildServer,
  withSql,
} from "./support.ts"

const postgresUrl = inject("postgresUrl")

// The crash is of the server process; the database (the shared test server, a fresh
// database on it) keeps running, as it would in production.
describe.runIf(postgresUrl !== null)("kill -9 of the server (Postgres)", () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>
  let server: ChildServer | undefined
  const start = async () => {
    server = await startChildServer(childEnv(database.url))
    return server
  }

  beforeAll(async () => {
    database = await createPostgresDatabase(postgresUrl!)
  })
  afterAll(async () => {
    await server?.kill()
    await database?.drop()
  })

  const SESSIONS = scale(8, 16)
  const ROUNDS = scale(3, 6)
  const BATCHES_PER_ROUND = scale(150, 600)

  it("keeps every acknowledged batch exactly once, never a partial one, across repeated kills under load", async () => {
    let client: ChronicleClient = serviceClient((await start()).url)
    const books = newBooks(await createSessions(client, SESSIONS))
    let kills = 0
    for (let round = 0; round < ROUNDS; round++) {
      const load = startLoad(() => client, books, { maxBatch: 5 })
      const target = books.acknowledged.size + BATCHES_PER_ROUND
      await eventually("the load to make progress", async () =>
        books.acknowledged.size >= target ? true : undefined,
      )
      // Mid-flight: writers are waiting on the server at this moment.
      expect(await server!.kill("SIGKILL")).toBe("SIGKILL")
      kills++
      await load.stop()
      client = serviceClient((await start()).url)
      const afterKill = await audit(client, books, { retried: false })
      expect(afterKill).toMatchObject({ lost: 0, duplicated: 0, partial: 0 })
    }
    const inFlight = books.pending.size
    const retries = await retryPending(client, books)
    // Retry everything acknowledged too: the same idempotency keys must change nothing.
    for (const batch of [...books.acknowledged.values()].slice(0, scale(50, 300))) {
      const again = await client.messages.appendMany.mutate({
        sessionId: batch.sessionId,
        idempotencyKey: batch.key,
        messages: Array.from({ length: batch.size }, (_, i) => ({
          role: "user" as const,
          content: `${batch.key}#${i}`,
        })),
      })
      expect(again.items).toHaveLength(batch.size)
    }
    const final = await audit(client, books, { retried: true })
    expect(final).toMatchObject({ lost: 0, duplicated: 0, partial: 0 })
    expect(books.pending.size).toBe(0)
    const status = await client.projections.status.query()
    report("crash under load", {
      kills,
      eventsWritten: final.events,
      batchesAcknowledged: books.acknowledged.size,
      inFlightAtKills: inFlight,
      retried: retries,
      lost: final.lost,
      duplicated: final.duplicated,
      partial: final.partial,
      refusalsByStatus: Object.fromEntries(books.failures),
      readModelTables: readModelTables(status).length,
    })
  })

  it("survives a kill during a projection rebuild: the read models come back equal to the log's", async () => {
    const client = serviceClient(server?.url ?? (await start()).url)
    await rebuildSettled(client, database.url)
    const tables = readModelTables(await client.projections.status.query())
    const before = await readModelFingerprint(database.url, tables)
    let caught = 0
    const attempts = scale(3, 10)

    for (let i = 0; i < attempts; i++) {
      // Through the API: the server runs the rebuild; it is killed while the database works.
      const c = serviceClient(server!.url)
      const rebuilding = c.projections.rebuild.mutate().catch(() => undefined)
      if (await rebuildObserved(database.url)) caught++
      await server!.kill("SIGKILL")
      await rebuilding
      const restarted = serviceClient((await start()).url)
      await rebuildSettled(restarted, database.url)
      expect(await readModelFingerprint(database.url, tables)).toEqual(before)
    }

    // Through the CLI (`chronicle rebuild`), killed the same way.
    await server!.kill("SIGKILL")
    const cli = spawnCli(["rebuild"], childEnv(database.url))
    if (await rebuildObserved(database.url)) caught++
    cli.child.kill("SIGKILL")
    await cli.exited
    const restarted = serviceClient((await start()).url)
    await rebuildSettled(restarted, database.url)
    expect(await readModelFingerprint(database.url, tables)).toEqual(before)

    // And a rebuild left to finish gives the same rows again.
    await restarted.projections.rebuild.mutate()
    await rebuildSettled(restarted, database.url)
    expect(await readModelFingerprint(database.url, tables)).toEqual(before)
    // Most kills must land while the rebuild runs, or this test proves little.
    expect(caught).toBeGreaterThanOrEqual(Math.ceil((attempts + 1) / 2))
    report("crash during rebuild", {
      kills: attempts + 1,
      killedWhileRebuilding: caught,
      tables: tables.length,
    })
  })
})

/** Waits until the database is running a rebuild statement; false if none was seen. */
const rebuildObserved = (url: string) =>
  withSql(url, async (sql) => {
    for (let i = 0; i < 3000; i++) {
      const active = await sql`select 1 from pg_stat_activity
                                where datname = current_database() and pid <> pg_backend_pid()
                                  and state = 'active' and query ilike '%rebuild%'`
      if (active.length > 0) return true
      await sleep(1)
    }
    return false
  })
