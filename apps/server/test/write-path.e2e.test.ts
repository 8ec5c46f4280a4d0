/**
 * The write path over HTTP, on both databases: a command decides on the state the last one
 * left (or the read model), appends in one round trip, and answers from its events — exactly
 * what the read models then hold. Concurrent writers on one session all land (each decided
 * again when another moved the stream first); a state another process made stale conflicts and
 * is decided again; an idempotency key returns the first result for the same request and
 * refuses a different one, naming the key.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { clientFor, refusal, seed, startTestServer, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

describe.each(testDatabases(env))("the write path, on $name", (database) => {
  let t: TestServer
  let me: ChronicleClient
  const owner = randomUUID()

  beforeAll(async () => {
    t = await startTestServer(database)
    me = clientFor(t.server.url, await t.authority.hs256Token({ sub: owner }))
  })
  afterAll(() => t?.close())

  it("answers each append with exactly what the read models then hold", async () => {
    const session = await me.sessions.create.mutate({ title: "answers" })
    const [message] = await me.messages.append
      .mutate({
        sessionId: session.id,
        role: "user",
        content: "hello",
        metadata: { b: 1, a: { z: [1, 2], y: null } },
      })
      .then((m) => [m])
    const revision = await me.revisions.add.mutate({
      sessionId: session.id,
      ir: { steps: [1, 2] },
      note: "n",
    })
    const draft = await me.drafts.add.mutate({
      sessionId: session.id,
      code: "x",
      language: "ts",
      valid: true,
      metrics: { tests: 3 },
      revisionNumber: 1,
    })
    const hole = await me.holes.resolve.mutate({
      sessionId: session.id,
      holeId: "h",
      value: { v: 1 },
      confidence: 0.25,
    })
    const run = await me.toolRuns.record.mutate({
      sessionId: session.id,
      tool: "pytest",
      input: { file: "a" },
      output: { ok: false },
      status: "failed",
      durationMs: 1500,
      error: "2 failed",
    })
    expect((await me.messages.list.query({ sessionId: session.id })).items).toEqual([message])
    expect((await me.revisions.list.query({ sessionId: session.id })).items).toEqual([revision])
    expect((await me.drafts.list.query({ sessionId: session.id })).items).toEqual([draft])
    expect((await me.holes.list.query({ sessionId: session.id })).items).toEqual([hole])
    expect((await me.toolRuns.list.query({ sessionId: session.id })).items).toEqual([run])

    const job = await me.jobs.create.mutate({ type: "build", sessionId: session.id, input: { n: 1 } })
    const started = await me.jobs.start.mutate({ id: job.id })
    const progressed = await me.jobs.progress.mutate({ id: job.id, progress: 0.4, message: "half-way" })
    expect(progressed).toEqual(await me.jobs.get.query({ id: job.id }))
    const completed = await me.jobs.complete.mutate({ id: job.id, output: { ok: true } })
    expect(completed).toEqual(await me.jobs.get.query({ id: job.id }))
    expect(started.state).toBe("running")
    expect(completed).toMatchObject({ state: "completed", progress: 0.4, output: { ok: true } })
  })

  it("16 writers on one session with no expected version: every message lands, seq 1 to n", async () => {
    const session = await me.sessions.create.mutate({ title: "crowd" })
    const writers = 16
    const each = database.name === "postgres" ? 8 : 4
    await Promise.all(
      Array.from({ length: writers }, (_, w) =>
        (async () => {
          for (let i = 0; i < each; i++)
            await me.messages.append.mutate({ sessionId: session.id, role: "user", content: `${w}.${i}` })
        })(),
      ),
    )
    const listed = await me.messages.list.query({ sessionId: session.id, limit: 500 })
    expect(listed.items.map((m) => m.seq)).toEqual(Array.from({ length: writers * each }, (_, i) => i + 1))
    expect(new Set(listed.items.map((m) => m.content)).size).toBe(writers * each)
  })

  it("decides again on a state another process moved: no conflict for the caller, the seq continues", async () => {
    const session = await me.sessions.create.mutate({ title: "stale" })
    await me.messages.append.mutate({ sessionId: session.id, role: "user", content: "one" })
    // Another writer (straight to the store) moves the stream the server's cache remembers.
    await seed(t.server, `session-${session.id}`, [
      {
        type: "MessageAppended",
        data: {
          messageId: randomUUID(),
          seq: 2,
          role: "assistant",
          content: "two",
          metadata: {},
          createdAt: null,
        },
      },
    ])
    const third = await me.messages.append.mutate({ sessionId: session.id, role: "user", content: "three" })
    expect(third).toMatchObject({ seq: 3, version: 4 })
    // A caller that pins the version it read is told the stream moved.
    await refusal(
      me.messages.append.mutate({ sessionId: session.id, role: "user", content: "x", expectedVersion: 3 }),
      { code: "CONFLICT", tag: "VersionConflict" },
    )
  })

  it("an idempotency key returns the first result for the same request, and refuses another request naming the key", async () => {
    const session = await me.sessions.create.mutate({ title: "keys" })
    const request = {
      sessionId: session.id,
      role: "user" as const,
      content: "pay once",
      idempotencyKey: "order-17",
    }
    const first = await me.messages.append.mutate(request)
    const again = await me.messages.append.mutate({ ...request })
    expect(again).toEqual(first)
    await refusal(me.messages.append.mutate({ ...request, content: "pay twice" }), {
      code: "CONFLICT",
      tag: "IdempotencyConflict",
      message: /order-17/,
    })
    const listed = await me.messages.list.query({ sessionId: session.id })
    expect(listed.items.map((m) => m.content)).toEqual(["pay once"])
  })
})
