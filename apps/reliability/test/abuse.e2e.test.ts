/**
 * An attacker with a valid user token against the real server (a child process, Postgres):
 * one small GET that batches `messages.list` calls over a session of ~1 MB messages, alone and
 * four at once. The response, the server's memory and everyone else's latency must stay
 * bounded by the configured budgets, and every refusal must be a clear 4xx, never a 500.
 */
import { randomUUID } from "node:crypto"
import { request } from "node:http"
import { startTestAuthority, type TestAuthority } from "@chronicle/api/testing"
import { createChronicleClient } from "@chronicle/client"
import { createPostgresDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { type ChildServer, report, rssOf, sleep, startChildServer } from "./support.ts"

const postgresUrl = inject("postgresUrl")
const MiB = 1024 * 1024
/** The budgets the server runs with here: its defaults. */
const RESPONSE_BUDGET = 16 * MiB
const MESSAGE_BYTES = 1_000_000
const MESSAGES = 12
const CALLS = 10

interface Answer {
  readonly status: number
  readonly bytes: number
  readonly body: string
}

/** A raw GET, its body counted as it arrives (kept whole only when `keep`: it may be huge). */
const get = (url: string, token: string, keep = false) =>
  new Promise<Answer>((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let bytes = 0
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length
        if (keep || bytes < 65_536) chunks.push(chunk)
      })
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, bytes, body: Buffer.concat(chunks).toString() }),
      )
      res.on("error", reject)
    })
    req.on("error", reject)
    req.end()
  })

/** Samples a process's RSS every 25 ms while `work` runs; returns the peak. */
const peakRss = async <A>(pid: number, work: () => Promise<A>) => {
  let peak = await rssOf(pid)
  let running = true
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await rssOf(pid).catch(() => 0))
      await sleep(25)
    }
  })()
  try {
    const result = await work()
    return { result, peak }
  } finally {
    running = false
    await sampler
  }
}

describe.runIf(postgresUrl !== null)("an attacker with a valid token (child process, Postgres)", () => {
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>
  let authority: TestAuthority
  let server: ChildServer
  let token: string
  let sessionId: string

  beforeAll(async () => {
    database = await createPostgresDatabase(postgresUrl!)
    authority = await startTestAuthority()
    server = await startChildServer({
      DATABASE_URL: database.url,
      SUPABASE_URL: authority.url,
      SUPABASE_JWT_SECRET: authority.jwtSecret,
      CHRONICLE_SESSION_TTL_HOURS: "0",
      CHRONICLE_LOG_LEVEL: "error",
      // The budget this suite measures against (the default is 32 MiB); a message must fit in it.
      CHRONICLE_MAX_RESPONSE_BYTES: String(RESPONSE_BUDGET),
      CHRONICLE_MAX_MESSAGE_BYTES: String(RESPONSE_BUDGET / 2),
    })
    token = await authority.hs256Token({ sub: randomUUID() })
    const client = createChronicleClient({ url: server.url, token })
    sessionId = (await client.sessions.create.mutate({ title: "big" })).id
    for (let i = 0; i < MESSAGES; i++) {
      await client.messages.append.mutate({
        sessionId,
        role: "user",
        content: `${i}:`.padEnd(MESSAGE_BYTES, "x"),
      })
    }
  })
  afterAll(async () => {
    await server?.kill()
    await authority?.close()
    await database?.drop()
  })

  const attack = () => {
    const input = Object.fromEntries(
      Array.from({ length: CALLS }, (_, i) => [String(i), { sessionId, limit: 500 }]),
    )
    const paths = Array.from({ length: CALLS }, () => "messages.list").join(",")
    return `${server.url}/trpc/${paths}?batch=1&input=${encodeURIComponent(JSON.stringify(input))}`
  }

  it("answers a batch of list calls over ~1 MB messages within the response budget, alone and four at once", async () => {
    const pid = server.process.pid!
    // Warm up the paths once, then take the baseline.
    await get(`${server.url}/trpc/sessions.list`, token)
    await sleep(300)
    const baseline = await rssOf(pid)
    const url = attack()

    const single = await peakRss(pid, () => get(url, token, true))
    // Someone else's request while four attacks run.
    const other = await authority.hs256Token({ sub: randomUUID() })
    const four = await peakRss(pid, async () => {
      const attacks = Array.from({ length: 4 }, () => get(url, token))
      await sleep(50)
      const started = performance.now()
      const bystander = await get(`${server.url}/trpc/sessions.list`, other)
      const bystanderMs = performance.now() - started
      return { answers: await Promise.all(attacks), bystander, bystanderMs }
    })

    const answers = [single.result, ...four.result.answers]
    const largest = Math.max(...answers.map((a) => a.bytes))
    report("abuse: batched lists of 1 MB messages", {
      requestBytes: url.length,
      calls: CALLS,
      statuses: answers.map((a) => a.status),
      largestResponseMiB: +(largest / MiB).toFixed(1),
      baselineRssMiB: +(baseline / MiB).toFixed(0),
      peakRssOneMiB: +(single.peak / MiB).toFixed(0),
      peakRssFourMiB: +(four.peak / MiB).toFixed(0),
      bystanderMs: Math.round(four.result.bystanderMs),
    })

    expect(four.result.bystander.status).toBe(200)
    // The first calls got pages of messages, ending early with a cursor; once the budget was
    // spent the others were refused, each with a message (a 207: answers and refusals mixed).
    const calls = JSON.parse(single.result.body) as ReadonlyArray<{
      result?: { data: { items: ReadonlyArray<unknown>; nextCursor: string | null } }
      error?: { message: string; data: { code: string; tag: string } }
    }>
    const answered = calls.filter((c) => c.result !== undefined)
    const refused = calls.filter((c) => c.error !== undefined)
    expect(answered.length + refused.length).toBe(CALLS)
    expect(answered.length).toBeGreaterThan(0)
    for (const call of answered) {
      expect(call.result!.data.items.length).toBeGreaterThan(0)
      expect(call.result!.data.items.length).toBeLessThan(MESSAGES)
      expect(call.result!.data.nextCursor).not.toBeNull()
    }
    for (const call of refused) {
      expect(call.error!.data).toMatchObject({ code: "PAYLOAD_TOO_LARGE", tag: "ResponseTooLarge" })
      expect(call.error!.message).toMatch(
        /^This call's answer \(\d+ bytes\) does not fit in what is left of the response budget/,
      )
    }
    for (const answer of answers) {
      // Never a 500: a call over the budget is refused on its own, with a message.
      expect(answer.status, answer.body.slice(0, 300)).toBeLessThan(500)
      // The whole response is within the budget, plus one message of slack for JSON framing.
      expect(answer.bytes).toBeLessThanOrEqual(RESPONSE_BUDGET + MESSAGE_BYTES)
    }
    // Memory grows by a multiple of the budget, not by what was asked for: the four requests
    // asked for 4 × 10 × 12 MB (they made the server hold more than that before).
    expect(four.peak - baseline).toBeLessThan(4 * CALLS * MESSAGES * MESSAGE_BYTES)
  })

  it("answers a body over the limit with 413 once it is read, never with a broken pipe", async () => {
    // 33 MiB against the default 32 MiB limit, sent ten times: an answer given before the body
    // was read (the connection then closed) left about one sender in three with EPIPE.
    const body = JSON.stringify({ sessionId, role: "user", content: "x".repeat(33 * 1024 * 1024) })
    const outcomes: Record<string, number> = {}
    for (let i = 0; i < 10; i++) {
      let outcome: string
      try {
        const res = await fetch(`${server.url}/trpc/messages.append`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
        })
        const answer = (await res.json()) as { error: { message: string } }
        expect(answer.error.message).toMatch(
          /^The request body is \d+ bytes, over the limit of 33554432 bytes$/,
        )
        outcome = String(res.status)
      } catch (error) {
        outcome = String((error as { cause?: { code?: string } }).cause?.code ?? error)
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
    }
    report("abuse: bodies over the limit", outcomes)
    expect(outcomes).toEqual({ "413": 10 })
  })
})
