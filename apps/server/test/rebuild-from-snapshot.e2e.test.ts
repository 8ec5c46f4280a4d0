import { randomUUID } from "node:crypto"
import { dumpReadModels } from "@chronicle/projections"
import { Database } from "@chronicle/store"
import { createPostgresDatabase } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { cli, logHead, withDatabase } from "./cli-support.ts"
import {
  type Callers,
  callers,
  refusal,
  runEnded,
  sql,
  startTestServer,
  type TestServer,
  testDatabases,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

describe.each(testDatabases(env))("projections.rebuild from a snapshot, on $name", (database) => {
  let t: TestServer
  let c: Callers
  beforeAll(async () => {
    t = await startTestServer(database)
    c = await callers(t)
  })
  afterAll(() => t?.close())

  const ended = (runId: string) => runEnded(c.asService, runId)

  it("rebuilds the sessions projection from a snapshot for the service role, and refuses snapshots it cannot use", async () => {
    const me = c.asAlice
    const s = await me.sessions.create.mutate({ title: "seeded" })
    for (const content of ["one", "two", "three"])
      await me.messages.append.mutate({ sessionId: s.id, role: "user", content })
    const { head } = await c.asService.projections.status.query()
    const label = `api_${randomUUID().slice(0, 8)}`
    const snap = await c.asService.projections.snapshot.mutate({
      label,
      asOf: { cursor: head.cursor },
      projections: ["sessions"],
    })
    const snapshot = await ended(snap.runId)
    expect(snapshot).toMatchObject({ state: "completed", asOfCursor: head.cursor })

    // History moves on after the snapshot.
    await me.messages.append.mutate({ sessionId: s.id, role: "assistant", content: "four" })
    await me.sessions.rollback.mutate({ id: s.id, toVersion: 3 })
    await me.messages.append.mutate({ sessionId: s.id, role: "user", content: "five" })
    const before = await me.sessions.get.query({ id: s.id })
    const messages = (await me.messages.list.query({ sessionId: s.id })).items.map((m) => m.content)
    expect(messages).toEqual(["one", "two", "five"])

    await refusal(me.projections.rebuild.mutate({ fromSnapshot: label }), {
      code: "FORBIDDEN",
      tag: "Forbidden",
    })
    await refusal(c.asService.projections.rebuild.mutate({ fromSnapshot: "nope" }), {
      code: "NOT_FOUND",
      tag: "NotFound",
      message: "snapshot nope was not found",
    })
    await refusal(c.asService.projections.rebuild.mutate({ fromSnapshot: "Not A Label" }), {
      code: "BAD_REQUEST",
      tag: "InvalidInput",
      message: "fromSnapshot: must start with a lower-case letter and hold only a-z, 0-9 and _ (at most 40)",
    })
    await refusal(
      c.asService.projections.rebuild.mutate({ projections: ["sessions", "jobs"], fromSnapshot: label }),
      {
        code: "BAD_REQUEST",
        tag: "InvalidCommand",
        message: `fromSnapshot: snapshot ${label} holds sessions, not jobs; name only projections it holds, or rebuild the others from the log`,
      },
    )

    const { runId, run: started } = await c.asService.projections.rebuild.mutate({
      projections: ["sessions"],
      fromSnapshot: label,
    })
    expect(started).toMatchObject({
      kind: "rebuild",
      fromSnapshot: label,
      eventsSeeded: snapshot.eventsDone,
    })
    expect(started.eventsDone).toBeGreaterThanOrEqual(snapshot.eventsDone)
    const run = await ended(runId)
    expect(run).toMatchObject({ state: "completed", fromSnapshot: label, eventsSeeded: snapshot.eventsDone })
    expect(run.eventsDone).toBeGreaterThanOrEqual(snapshot.eventsDone + 3)
    expect(await me.sessions.get.query({ id: s.id })).toEqual(before)
    expect((await me.messages.list.query({ sessionId: s.id })).items.map((m) => m.content)).toEqual(messages)

    // A snapshot made before snapshots recorded their versions is refused as a seed.
    await sql(t.server, `update chronicle.projection_runs set versions = null where label = '${label}'`)
    await refusal(
      c.asService.projections.rebuild.mutate({ projections: ["sessions"], fromSnapshot: label }),
      {
        code: "CONFLICT",
        tag: "InvalidTransition",
        message: `Cannot rebuild from snapshot ${label} (versions unknown): it was built before snapshots recorded the versions of their projections; rebuild from the log`,
      },
    )
  })
})

/** `sessions` sessions of a start and 99 messages each (two appends), and a job for every fifth. */
const fill = (url: string, sessions: number) =>
  withDatabase(
    url,
    Effect.flatMap(Database, (d) =>
      Effect.forEach(
        Array.from({ length: sessions }, (_, i) => {
          const s = randomUUID()
          const o = `00000000-0000-4000-8000-${String(i % 3).padStart(12, "0")}`
          const event = (type: string, data: string) =>
            `jsonb_build_object('event_id', gen_random_uuid(), 'type', '${type}', 'data', ${data})`
          const statements = [
            `select chronicle.append_events('session-${s}', 'session', -2, jsonb_build_array(${event(
              "SessionStarted",
              `jsonb_build_object('sessionId', '${s}', 'ownerId', '${o}', 'title', 'S${i}', 'metadata', '{}'::jsonb, 'externalKey', null)`,
            )}), '${o}'::uuid)`,
            `select chronicle.append_events('session-${s}', 'session', -1, (
               select jsonb_agg(${event("MessageAppended", `jsonb_build_object('messageId', gen_random_uuid(), 'seq', k, 'role', 'user', 'content', 'message ' || k, 'metadata', '{}'::jsonb, 'createdAt', null)`)} order by k)
                 from generate_series(1, 99) k), '${o}'::uuid)`,
          ]
          if (i % 5 === 0) {
            const j = randomUUID()
            statements.push(
              `select chronicle.append_events('job-${j}', 'job', -2, jsonb_build_array(
                 ${event("JobCreated", `jsonb_build_object('jobId', '${j}', 'ownerId', '${o}', 'sessionId', '${s}', 'parentJobId', null, 'jobType', 'build', 'input', '{}'::jsonb)`)},
                 ${event("JobStarted", `jsonb_build_object('worker', 'w')`)}), '${o}'::uuid)`,
            )
          }
          return statements
        }).flat(),
        (statement) => d.query(statement),
        { discard: true },
      ),
    ),
  )

describe.runIf(env.postgresUrl !== null)("chronicle rebuild --from-snapshot on Postgres", () => {
  const drops: Array<() => Promise<void>> = []
  afterAll(async () => {
    for (const drop of drops) await drop()
  })

  it("rebuilds every projection from a snapshot, replaying only the events after it, and refuses an unknown one", async () => {
    const db = await createPostgresDatabase(env.postgresUrl!)
    drops.push(db.drop)
    expect((await cli(["migrate"], db.url)).code).toBe(0)
    await fill(db.url, 20)
    const atSnapshot = await logHead(db.url)
    const snapshot = await cli(["rebuild", "--all", "--as-of", atSnapshot.cursor, "--label", "base"], db.url)
    expect(snapshot.code, snapshot.stderr).toBe(0)
    await fill(db.url, 10)
    const total = (await logHead(db.url)).n
    expect(total).toBeGreaterThan(atSnapshot.n)
    const before = await withDatabase(db.url, dumpReadModels())

    const rebuilt = await cli(["rebuild", "--all", "--from-snapshot", "base", "--batch-size", "200"], db.url)
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    expect(rebuilt.stderr).toContain(`from snapshot base (${atSnapshot.n} events) (run `)
    const lines = rebuilt.stderr.split("\n").filter((l) => l.startsWith("["))
    expect(lines.at(-1)).toContain(
      `100%  ${total.toLocaleString("en-US")}/${total.toLocaleString("en-US")} events`,
    )
    expect(rebuilt.stdout).toMatch(
      new RegExp(
        `^Rebuilt .+ from snapshot base \\(${atSnapshot.n} events\\) and ${total - atSnapshot.n} events after it \\(\\d+ events/s\\); the new tables are live$`,
        "m",
      ),
    )
    expect(await withDatabase(db.url, dumpReadModels())).toEqual(before)

    const unknown = await cli(["rebuild", "--all", "--from-snapshot", "nope"], db.url)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("chronicle: snapshot nope was not found")
    const both = await cli(
      ["rebuild", "sessions", "--from-snapshot", "base", "--as-of", atSnapshot.cursor],
      db.url,
    )
    expect(both.code).toBe(2)
    expect(both.stderr).toContain(
      "rebuild: --from-snapshot rebuilds the live tables, --as-of builds a snapshot",
    )
  }, 300_000)
})
