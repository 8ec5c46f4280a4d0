/**
 * Behind a session-mode pooler (`pool_mode=session`), Chronicle keeps its prepared statements
 * and LISTEN: each of its connections has a server connection of its own for as long as it
 * lives, so a statement prepared on it is there at its next use. The same load completes.
 *
 * Behind a transaction-mode pooler (Debian's PgBouncer, `pool_mode=transaction`, a pool of 4,
 * in front of a private cluster), as Supabase's pooler on port 6543 serves Chronicle: eight
 * clients at once through the real server (a child process, `chronicle serve`).
 *
 * postgres.js pipelines queries onto a busy connection; the pooler forwards only the first one
 * queued behind the running query, so the others never get an answer: requests hang forever
 * (while `/healthz` may still answer 200, from a connection not yet stuck: it was asserted
 * here once, and failed when its probe landed on a stuck one). With the pooler recognised, Chronicle sends one query at a time on a
 * connection, and the load completes. Whatever happens, SIGTERM ends the process.
 */
import { createChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type ChildServer,
  type PgBouncer,
  type PrivateCluster,
  report,
  scale,
  sleep,
  startChildServer,
  startPgBouncer,
  startPrivateCluster,
  withSql,
} from "./support.ts"

const CLIENTS = 8
const ROUNDS = scale(25, 250)

/** Eight clients, each appending to its own session and reading lists, `ROUNDS` times. */
const startLoad = (url: string) => {
  let done = 0
  const worker = async (i: number) => {
    const chronicle = createChronicleClient({ url })
    const session = await chronicle.sessions.create.mutate({ title: `client ${i}` })
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all([
        chronicle.messages.append.mutate({ sessionId: session.id, role: "user", content: `${round}` }),
        chronicle.messages.list.query({ sessionId: session.id, limit: 5 }),
        chronicle.sessions.list.query({ limit: 5 }),
        chronicle.events.readAll.query({ limit: 10 }),
        chronicle.checkpoints.create.mutate({ sessionId: session.id }),
      ])
      done++
    }
    return (await chronicle.messages.list.query({ sessionId: session.id, limit: 500 })).items.length
  }
  const all = Promise.all(Array.from({ length: CLIENTS }, (_, i) => worker(i)))
  return { all, done: () => done }
}

/** Whether the load stops moving: no round completes for `quietMs`, with rounds left to do. */
const stalls = async (load: ReturnType<typeof startLoad>, quietMs: number) => {
  const finished = load.all.then(
    () => true,
    () => true,
  )
  let last = -1
  while (true) {
    const before = load.done()
    const ended = await Promise.race([finished, sleep(quietMs).then(() => false)])
    if (ended) return false
    if (load.done() === before && before === last) return true
    last = load.done()
  }
}

/** The whole load goes through, without a stall; then SIGTERM ends the server with 0. */
const completesLoad = async (server: ChildServer, name: string) => {
  const started = Date.now()
  const load = startLoad(server.url)
  expect(await stalls(load, 10_000)).toBe(false)
  const messages = await load.all
  expect(messages).toEqual(Array.from({ length: CLIENTS }, () => ROUNDS))
  report(name, { clients: CLIENTS, rounds: ROUNDS, requests: CLIENTS * ROUNDS * 5, ms: Date.now() - started })
  expect(await server.kill("SIGTERM")).toBe(0)
}

describe("behind a transaction-mode PgBouncer, eight clients at once", () => {
  let cluster: PrivateCluster
  let bouncer: PgBouncer

  beforeAll(async () => {
    cluster = await startPrivateCluster()
    await withSql(cluster.url, async (sql) => {
      await sql.unsafe("create database pipelined")
      await sql.unsafe("create database recognised")
    })
    bouncer = await startPgBouncer(cluster)
  })
  afterAll(async () => {
    await bouncer?.stop()
    await cluster?.destroy()
  })

  it("hangs when the pooler is not recognised (queries pipelined), and SIGTERM still ends the server", async () => {
    // What a user had before: prepared statements and LISTEN off, pipelining on.
    const server = await startChildServer({
      DATABASE_URL: bouncer.urlOf("pipelined"),
      CHRONICLE_PG_POOLER: "none",
      CHRONICLE_PG_PREPARE: "false",
      CHRONICLE_PG_LISTEN: "false",
      CHRONICLE_SHUTDOWN_TIMEOUT_MS: "2000",
    })
    try {
      const load = startLoad(server.url)
      load.all.catch(() => undefined)
      expect(await stalls(load, 3_000)).toBe(true)
      expect(load.done()).toBeLessThan(CLIENTS * ROUNDS)
    } finally {
      server.process.kill("SIGTERM")
    }
    // A hung database connection does not keep the process alive past its shutdown.
    const exited = await Promise.race([server.exited, sleep(60_000).then(() => "still running")])
    expect(exited).not.toBe("still running")
  })

  it("completes the load once the pooler is recognised (?pgbouncer=true), and exits 0 on SIGTERM", async () => {
    const server = await startChildServer({ DATABASE_URL: `${bouncer.urlOf("recognised")}?pgbouncer=true` })
    expect(server.output()).toContain("through a transaction-mode pooler")
    await completesLoad(server, "pooler")
  })
})

describe("behind a session-mode PgBouncer, with prepared statements and LISTEN", () => {
  let cluster: PrivateCluster
  let bouncer: PgBouncer

  beforeAll(async () => {
    cluster = await startPrivateCluster()
    await withSql(cluster.url, (sql) => sql.unsafe("create database session"))
    // The server's pool (10) and its LISTEN connection, each holding a server connection.
    bouncer = await startPgBouncer(cluster, 20, "session")
  })
  afterAll(async () => {
    await bouncer?.stop()
    await cluster?.destroy()
  })

  it("completes the load, and exits 0 on SIGTERM", async () => {
    const server = await startChildServer({
      DATABASE_URL: bouncer.urlOf("session"),
      CHRONICLE_PG_POOLER: "session",
    })
    expect(server.output()).toContain("through a session-mode pooler")
    await completesLoad(server, "pooler.session")
  })
})
