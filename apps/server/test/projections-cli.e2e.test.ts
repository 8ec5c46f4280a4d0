import { randomUUID } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { dumpReadModels } from "@chronicle/projections"
import { Database } from "@chronicle/store"
import { createPostgresDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { cli, logHead, withDatabase } from "./cli-support.ts"
import { callers, startTestServer, type TestServer } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

/** Every read model, without the one column that names positions in this database's own log. */
const readModels = (url: string) =>
  withDatabase(
    url,
    dumpReadModels().pipe(
      Effect.map((dump) => ({
        ...dump,
        sessions: dump.sessions?.map(({ head_cursor: _, ...row }) => row),
      })),
    ),
  )

// The log is generated in the database as a bulk import would write it: per session a start,
// then 999 messages and drafts in appends of 100 (about 50 ms each, so the commit-safe
// watermark of readers elsewhere on the server is never held back for long), plus a job every
// ten sessions: 100 sessions, 100,030 events.
const fillSession = (i: number): ReadonlyArray<string> => {
  const s = randomUUID()
  const o = `00000000-0000-4000-8000-${String(i % 7).padStart(12, "0")}`
  const event = (type: string, data: string) =>
    `jsonb_build_object('event_id', gen_random_uuid(), 'type', '${type}', 'data', ${data})`
  const content = (from: number, to: number) =>
    `select chronicle.append_events('session-${s}', 'session', -1, (
       select jsonb_agg(case when k % 10 = 0 then
                ${event("DraftRecorded", `jsonb_build_object('draftId', gen_random_uuid(), 'code', 'x', 'language', case when k % 20 = 0 then 'python' else 'typescript' end, 'valid', k % 30 <> 0, 'metrics', '{}'::jsonb, 'revisionNumber', null)`)}
              else
                ${event("MessageAppended", `jsonb_build_object('messageId', gen_random_uuid(), 'seq', k, 'role', 'user', 'content', 'message ' || k, 'metadata', '{}'::jsonb, 'createdAt', null)`)}
              end order by k)
         from generate_series(${from}, ${to}) k), '${o}'::uuid)`
  const statements = [
    `select chronicle.append_events('session-${s}', 'session', -2, jsonb_build_array(${event(
      "SessionStarted",
      `jsonb_build_object('sessionId', '${s}', 'ownerId', '${o}', 'title', 'S${i}', 'metadata', '{}'::jsonb, 'externalKey', null)`,
    )}), '${o}'::uuid)`,
  ]
  for (let from = 1; from <= 999; from += 100) statements.push(content(from, Math.min(999, from + 99)))
  if (i % 10 === 0) {
    const j = randomUUID()
    statements.push(
      `select chronicle.append_events('job-${j}', 'job', -2, jsonb_build_array(
         ${event("JobCreated", `jsonb_build_object('jobId', '${j}', 'ownerId', '${o}', 'sessionId', '${s}', 'parentJobId', null, 'jobType', 'build', 'input', '{}'::jsonb)`)},
         ${event("JobStarted", `jsonb_build_object('worker', 'w')`)},
         ${event("JobCompleted", `jsonb_build_object('output', '{}'::jsonb)`)}), '${o}'::uuid)`,
    )
  }
  return statements
}

describe.runIf(env.postgresUrl !== null)("the chronicle CLI on Postgres", () => {
  const drops: Array<() => Promise<void>> = []
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "chronicle-projections-"))
  })
  afterAll(async () => {
    for (const drop of drops) await drop()
    await rm(dir, { recursive: true, force: true })
  })

  it("rebuilds a 100k-event log with live progress, builds a snapshot as of a cursor, lists and drops it", async () => {
    const db = await createPostgresDatabase(env.postgresUrl!)
    drops.push(db.drop)
    expect((await cli(["migrate"], db.url)).code).toBe(0)
    await withDatabase(
      db.url,
      Effect.flatMap(Database, (d) =>
        Effect.forEach(
          Array.from({ length: 100 }, (_, i) => fillSession(i + 1)).flat(),
          (statement) => d.query(statement),
          { discard: true },
        ),
      ),
    )
    const head = await logHead(db.url)
    const total = head.n
    expect(total).toBeGreaterThanOrEqual(100_000)
    const before = await readModels(db.url)

    const rebuilt = await cli(["rebuild", "--all", "--batch-size", "5000"], db.url)
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    // Progress lines: done/total, events/s, ETA, rising to 100%.
    const lines = rebuilt.stderr.split("\n").filter((l) => l.startsWith("["))
    console.log(`chronicle rebuild --all on ${total} events:\n${lines.join("\n")}`)
    expect(lines.length).toBeGreaterThanOrEqual(2)
    const done = lines.map((l) => Number(/(\d[\d,]*)\/[\d,]+ events/.exec(l)?.[1]?.replaceAll(",", "")))
    expect(done).toEqual([...done].sort((a, b) => a - b))
    expect(lines.at(-1)).toContain(
      `100%  ${total.toLocaleString("en-US")}/${total.toLocaleString("en-US")} events`,
    )
    expect(lines.some((l) => / events\/s {2}ETA \d/.test(l))).toBe(true)
    expect(rebuilt.stdout).toMatch(
      new RegExp(`from ${total} events \\(\\d+ events/s\\); the new tables are live`),
    )
    expect(await readModels(db.url)).toEqual(before)

    const status = await cli(["status"], db.url)
    expect(status.stdout).toMatch(/^messages|^sessions +inline +v1 +live +[\d,]+ +0 \(inline\)/m)
    expect(status.stdout).toMatch(/^activity +async +v1 +live +[\d,]+ +0 events, 0s/m)

    const snapshot = await cli(
      ["rebuild", "sessions", "--as-of", head.cursor, "--label", "before_more"],
      db.url,
    )
    expect(snapshot.code, snapshot.stderr).toBe(0)
    expect(snapshot.stdout).toContain(`Snapshot before_more holds sessions as of ${head.cursor}`)
    const list = await cli(["snapshots"], db.url)
    expect(list.stdout).toMatch(
      /^before_more {2}schema analytics_asof_before_more {2}as of cursor \d+ {2}\d+ events {2}sessions {2}taken \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/m,
    )
    const counts = await withDatabase(
      db.url,
      Effect.flatMap(Database, (d) =>
        d.query<{ live: number; snap: number }>(
          `select (select count(*)::int from chronicle.messages) as live,
                  (select count(*)::int from analytics_asof_before_more.messages) as snap`,
        ),
      ),
    )
    expect(counts[0]!.snap).toBe(counts[0]!.live)
    expect((await cli(["snapshots", "--drop", "before_more"], db.url)).stdout).toContain(
      "Dropped snapshot before_more",
    )
    const gone = await cli(["snapshots", "--drop", "before_more"], db.url)
    expect(gone.code).toBe(1)
    expect(gone.stderr.trim()).toBe("chronicle: snapshot before_more was not found")
    const unknown = await cli(["rebuild", "nope"], db.url)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toMatch(
      /^chronicle: projection nope \(known: activity, .*sessions\) was not found$/,
    )
    const usage = await cli(["rebuild"], db.url)
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain("rebuild: name the projections to rebuild, or give --all")
    const help = await cli(["rebuild", "--help"], db.url)
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("Usage: chronicle rebuild <name…|--all>")
  }, 600_000)

  it("moves the whole log to an empty database: every read model equal, a second import changes nothing", async () => {
    const created = await createPostgresDatabase(env.postgresUrl!)
    drops.push(created.drop)
    const sourceUrl = created.url
    // The server's database outlives the server: export reads it afterwards.
    const t: TestServer = await startTestServer({
      name: "postgres",
      prepare: async () => ({
        database: { kind: "postgres", url: sourceUrl, prepare: true, listen: true, pooler: "none" },
        drop: async () => {},
      }),
    })
    let closed = false
    try {
      const c = await callers(t)
      const me = c.asAlice
      const s = await me.sessions.create.mutate({ title: "to move" })
      await me.messages.append.mutate({ sessionId: s.id, role: "user", content: "one" })
      const cp = await me.checkpoints.create.mutate({ sessionId: s.id })
      await me.messages.append.mutate({ sessionId: s.id, role: "assistant", content: "two" })
      await me.drafts.add.mutate({ sessionId: s.id, code: "x", language: "typescript", valid: true })
      await me.sessions.rollback.mutate({ id: s.id, checkpointId: cp.id })
      const fork = await me.sessions.fork.mutate({ id: s.id, checkpointId: cp.id })
      await me.messages.append.mutate({ sessionId: fork.id, role: "user", content: "in the fork" })
      const job = await me.jobs.create.mutate({ type: "build", sessionId: s.id, input: { n: 1 } })
      await me.jobs.start.mutate({ id: job.id, worker: "w" })
      await me.jobs.complete.mutate({ id: job.id, output: { ok: true } })
      await c.asBob.sessions.create.mutate({ title: "bob's" })
      await t.close()
      closed = true
      const target = await createPostgresDatabase(env.postgresUrl!)
      drops.push(target.drop)
      const file = join(dir, "log.ndjson")
      const exported = await cli(["export", "--out", file], sourceUrl)
      expect(exported.code, exported.stderr).toBe(0)
      expect(exported.stderr).toMatch(/^Exported \d+ event\(s\) of the whole log/m)
      const first = await cli(["import", "--in", file], target.url)
      expect(first.code, first.stderr).toBe(0)
      expect(first.stderr).toMatch(/Imported \d+ stream\(s\): \d+ event\(s\) written, 0 already present/)
      expect(await readModels(target.url)).toEqual(await readModels(sourceUrl))
      const second = await cli(["import", "--in", file], target.url)
      expect(second.stderr).toMatch(/: 0 event\(s\) written, \d+ already present/)
      expect(await readModels(target.url)).toEqual(await readModels(sourceUrl))
    } finally {
      if (!closed) await t.close()
    }
  }, 300_000)
})
