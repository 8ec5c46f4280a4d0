/**
 * `chronicle rebuild … --as-of … --label` beside a running server. The CLI registers the run
 * already claimed by itself, then works it; the server's daemon takes over only runs whose
 * worker stopped reporting, so it never takes the new run first (when runs were registered
 * unclaimed, it often did). Should it take one over, the CLI follows the run to its end
 * instead of reporting it "ended running" and exiting 1 while the server completes it.
 *
 * The server's daemon ticks every 500 ms; this test ticks the server's engine in a tight loop
 * while the CLI runs, as a busy daemon would, and repeats.
 */
import { randomUUID } from "node:crypto"
import { Projections } from "@chronicle/projections"
import { createPostgresDatabase } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { cli } from "./cli-support.ts"
import { callers, startTestServer, type TestServer } from "./support.ts"

const postgresUrl = inject("postgresUrl")
const RUNS = 12

describe.runIf(postgresUrl !== null)("the CLI's snapshots beside a running server (Postgres)", () => {
  let t: TestServer
  let url: string
  beforeAll(async () => {
    const created = await createPostgresDatabase(postgresUrl!)
    url = created.url
    t = await startTestServer({
      name: "postgres",
      prepare: async () => ({
        database: { kind: "postgres", url: created.url, prepare: true, listen: true, pooler: "none" },
        drop: created.drop,
      }),
    })
    const { asAlice } = await callers(t)
    for (let i = 0; i < 5; i++) {
      const s = await asAlice.sessions.create.mutate({ title: `s${i}` })
      await asAlice.messages.appendMany.mutate({
        sessionId: s.id,
        messages: Array.from({ length: 20 }, (_, k) => ({ role: "user" as const, content: `m${k}` })),
      })
    }
  })
  afterAll(() => t?.close())

  it(`completes every snapshot run it registers beside a busy daemon, which never takes one first (${RUNS} runs)`, async () => {
    let ticking = true
    const busyDaemon = (async () => {
      while (ticking) await t.server.runtime.runPromise(Effect.flatMap(Projections, (p) => p.tick()))
    })()
    const outcomes: Array<{ code: number; stdout: string; stderr: string }> = []
    try {
      for (let i = 0; i < RUNS; i++) {
        const label = `race_${i}_${randomUUID().slice(0, 6)}`
        outcomes.push(await cli(["rebuild", "--all", "--as-of", "1", "--label", label], url))
      }
    } finally {
      ticking = false
      await busyDaemon
    }
    // The server's engine never had the run first: each was born claimed by the CLI.
    expect(outcomes.filter((o) => o.stderr.includes("following it"))).toEqual([])
    const failed = outcomes.filter((o) => o.code !== 0).map((o) => o.stderr.trim().split("\n").at(-1))
    expect(failed).toEqual([])
    for (const o of outcomes) expect(o.stdout).toMatch(/^Snapshot race_\d+_\w+ holds .* as of 1 /m)

    // Listed with dates a person reads, not JSON.
    const at = new Date()
    const byTime = await cli(["rebuild", "sessions", "--as-of", at.toISOString(), "--label", "by_time"], url)
    expect(byTime.code, byTime.stderr).toBe(0)
    const list = await cli(["snapshots"], url)
    const line = list.stdout.split("\n").find((l) => l.startsWith("by_time "))
    expect(line, list.stdout + list.stderr).toMatch(
      new RegExp(
        `as of ${at.toISOString().slice(0, 19).replace("T", " ")} UTC \\(cursor \\d+\\) .* taken \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} UTC$`,
      ),
    )
    expect(line).not.toContain("{")
  })
})
