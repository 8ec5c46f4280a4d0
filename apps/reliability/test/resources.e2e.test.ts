/**
 * Resource bounds of the real server (a child process, measured through /proc): 1,000 open
 * SSE subscriptions and a client that subscribes to the whole log and then stops reading do
 * not grow its memory without bound, and do not starve other requests. Every bound is a
 * ratio to figures measured in the same run.
 */
import { connect, type Socket } from "node:net"
import { createPostgresDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { childEnv, createSessions, OWNER, SERVICE_KEY, serviceClient } from "./load.ts"
import { type ChildServer, eventually, report, rssOf, scale, sleep, startChildServer } from "./support.ts"

const postgresUrl = inject("postgresUrl")
const MiB = 1024 * 1024

/** A raw SSE subscription on its own socket, so reading can be stopped for real. */
const openSubscription = (url: string, input: unknown, owner?: string) => {
  const { hostname, port } = new URL(url)
  const socket: Socket = connect(Number(port), hostname)
  let bytes = 0
  let events = 0
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length
    events += chunk.toString("latin1").split("\nid: ").length - 1
  })
  socket.on("error", () => {})
  const path = `/trpc/events.subscribe?input=${encodeURIComponent(JSON.stringify(input))}`
  socket.write(
    `GET ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\naccept: text/event-stream\r\n` +
      `authorization: Bearer ${SERVICE_KEY}\r\n${owner ? `x-chronicle-owner: ${owner}\r\n` : ""}\r\n`,
  )
  return {
    socket,
    bytes: () => bytes,
    events: () => events,
    close: () => socket.destroy(),
  }
}

describe.runIf(postgresUrl !== null)("resource bounds of the server (child process, Postgres)", () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>
  let server: ChildServer

  beforeAll(async () => {
    database = await createPostgresDatabase(postgresUrl!)
    server = await startChildServer({ ...childEnv(database.url), CHRONICLE_LOG_LEVEL: "error" })
  })
  afterAll(async () => {
    await server?.kill()
    await database?.drop()
  })

  it("holds 1,000 subscriptions and a stalled reader in bounded memory while still answering", async () => {
    const client = serviceClient(server.url)
    const [quiet, busy] = await createSessions(client, 2)
    const pid = server.process.pid!
    // Warm up every path once, then take the baseline.
    const warm = openSubscription(server.url, { sessionId: quiet })
    await client.messages.append.mutate({ sessionId: quiet!, role: "user", content: "warm" })
    await eventually("the warm-up subscription to see its event", async () =>
      warm.events() >= 2 ? true : undefined,
    )
    warm.close()
    await sleep(500)
    const baseline = await rssOf(pid)

    // 1,000 subscribers to one session; each gets its two events (session start, message).
    const count = 1000
    const subscribers = Array.from({ length: count }, () =>
      openSubscription(server.url, { sessionId: quiet }, OWNER),
    )
    // On a machine busy with other suites this phase has taken far longer than its 10 s alone:
    // a wait that fails says how far the subscribers got.
    const behind = (n: number) => {
      const short = subscribers.filter((s) => s.events() < n)
      return `${short.length} of ${count} subscribers have fewer than ${n} events (${short.filter((s) => s.bytes() === 0).length} got no byte at all)`
    }
    const opened = performance.now()
    await eventually(
      "every subscriber to receive the session's history",
      async () => (subscribers.every((s) => s.events() >= 2) ? true : undefined),
      { attempts: 1500, everyMs: 100, status: () => behind(2) },
    )
    const historyMs = performance.now() - opened
    await client.messages.append.mutate({ sessionId: quiet!, role: "user", content: "to all" })
    await eventually(
      "every subscriber to receive a new event",
      async () => (subscribers.every((s) => s.events() >= 3) ? true : undefined),
      { status: () => behind(3) },
    )
    const withSubscribers = await rssOf(pid)

    // A client that subscribes to the whole log and stops reading at once.
    const stalled = openSubscription(server.url, {})
    stalled.socket.pause()
    // Then the log grows, twice by the same amount, far beyond what the stalled client read.
    // Memory that tracked what it has not read would grow again in the second phase; memory
    // that is bounded levels off after the first.
    const messageBytes = 64 * 1024
    const batches = scale(8, 40)
    const grow = async (phase: number) => {
      for (let i = 0; i < batches; i++) {
        await client.messages.appendMany.mutate({
          sessionId: busy!,
          messages: Array.from({ length: 16 }, (_, j) => ({
            role: "user" as const,
            content: `${phase}-${i}-${j}-`.padEnd(messageBytes, "x"),
          })),
        })
      }
      await sleep(1000)
      return rssOf(pid)
    }
    const written = batches * 16 * messageBytes
    const afterFirst = await grow(1)
    const withStalled = await grow(2)

    // Other requests are still answered while all of that is open.
    const health = await fetch(`${server.url}/healthz`)
    expect(health.status).toBe(200)
    const listed = await client.sessions.list.query({ limit: 10 })
    expect(listed.items.length).toBeGreaterThan(0)
    const fresh = openSubscription(server.url, { sessionId: quiet }, OWNER)
    await eventually("a new subscriber to be served", async () => (fresh.events() >= 3 ? true : undefined))
    fresh.close()

    for (const s of subscribers) s.close()
    stalled.close()
    await sleep(1000)
    const afterClose = await rssOf(pid)

    const figures = {
      subscriptions: count,
      historyToAllSeconds: +(historyMs / 1000).toFixed(1),
      baselineMiB: +(baseline / MiB).toFixed(1),
      with1000SubscriptionsMiB: +(withSubscribers / MiB).toFixed(1),
      perSubscriptionKiB: +((withSubscribers - baseline) / count / 1024).toFixed(1),
      loggedPerPhaseMiB: +(written / MiB).toFixed(1),
      afterFirstPhaseMiB: +(afterFirst / MiB).toFixed(1),
      afterSecondPhaseMiB: +(withStalled / MiB).toFixed(1),
      stalledReaderReceivedMiB: +(stalled.bytes() / MiB).toFixed(2),
      afterCloseMiB: +(afterClose / MiB).toFixed(1),
    }
    report("resource bounds", figures)
    // 1,000 subscriptions cost a bounded amount each (measured 220–280 KiB: the HTTP response,
    // tRPC's SSE streams, a fiber, a queue and a timer per follower), not a multiple of the log.
    expect((withSubscribers - baseline) / count).toBeLessThan(512 * 1024)
    // Memory that kept what the stalled client has not read would grow by the same amount in
    // each phase (the same bytes are written); bounded memory grows less in the second phase
    // than in the first (the heap reaches its working size, the stalled follower's buffer is
    // full). The figures of each run are in docs/reliability.md.
    expect(withStalled - afterFirst).toBeLessThan(afterFirst - withSubscribers)
  }, 360_000)
})
