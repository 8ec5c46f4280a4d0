/**
 * `chronicle purge` against Postgres, beside a running server: a dry run lists what would go
 * and writes nothing; a purge erases a session and its fork with progress on stderr, records
 * SessionPurged with the reason, and the server then reads the session as deleted and empty, and
 * the jobs run on it without their input.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { cli } from "./cli-support.ts"
import { clientFor, startTestServer, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const postgres = testDatabases(env).find((d) => d.name === "postgres")

describe.runIf(postgres !== undefined)("chronicle purge, on postgres", () => {
  let t: TestServer
  let me: ChronicleClient
  beforeAll(async () => {
    t = await startTestServer(postgres!)
    me = clientFor(t.server.url, await t.authority.hs256Token({ sub: randomUUID() }))
  })
  afterAll(() => t?.close())

  it("lists with --dry-run, then erases a session and its fork, recorded with the reason", async () => {
    const session = await me.sessions.create.mutate({ title: "private plans" })
    await me.messages.append.mutate({ sessionId: session.id, role: "user", content: "my secret plan" })
    const fork = await me.sessions.fork.mutate({ id: session.id, atVersion: 2 })
    const kept = await me.sessions.create.mutate({ title: "kept" })
    const job = await me.jobs.create.mutate({
      type: "plan",
      sessionId: session.id,
      input: { plan: "my secret plan" },
    })

    const dry = await cli(["purge", session.id, "--dry-run"], t.databaseUrl!)
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout.trim().split("\n")).toEqual([`${session.id}  2 event(s)`, `${fork.id}  1 event(s)`])
    expect(dry.stderr).toContain(
      "Would purge 2 session(s) and 1 job(s), 4 event(s) (dry run: nothing written)",
    )
    expect((await me.sessions.get.query({ id: session.id })).title).toBe("private plans")

    const done = await cli(["purge", session.id, "--reason", "erasure request 7"], t.databaseUrl!)
    expect(done.code, done.stderr).toBe(0)
    expect(done.stderr).toContain("purged 2/2 session(s)")
    expect(done.stderr).toContain(
      "Purged 2 session(s) and 1 job(s): 4 event(s) redacted, 0 file content(s) deleted",
    )
    expect(await me.sessions.get.query({ id: session.id })).toMatchObject({ status: "deleted", title: null })
    const messages = await me.messages.list.query({ sessionId: session.id })
    expect(messages.items.map((m) => m.content)).toEqual([""])
    const timeline = await me.sessions.timeline.query({ id: session.id })
    expect(timeline.items.at(-1)).toMatchObject({
      type: "SessionPurged",
      data: { reason: "erasure request 7", throughVersion: 2 },
    })
    expect((await me.sessions.get.query({ id: fork.id })).status).toBe("deleted")
    expect((await me.sessions.get.query({ id: kept.id })).title).toBe("kept")
    // The job run on the session lost its input, and its log records the purge.
    expect(await me.jobs.get.query({ id: job.id })).toMatchObject({ state: "queued", input: null })
  })

  it("erases a session's large values too: their bytes leave the blob store, other sessions' stay", async () => {
    const secret = `large secret ${randomUUID()} `.repeat(5_000)
    const shared = `shared output ${randomUUID()} `.repeat(5_000)
    const session = await me.sessions.create.mutate({ title: "large" })
    await me.messages.append.mutate({ sessionId: session.id, role: "user", content: secret })
    const output = { text: shared }
    await me.toolRuns.record.mutate({
      sessionId: session.id,
      tool: "t",
      input: {},
      output,
      status: "succeeded",
    })
    const kept = await me.sessions.create.mutate({ title: "kept" })
    await me.toolRuns.record.mutate({ sessionId: kept.id, tool: "t", input: {}, output, status: "succeeded" })

    const done = await cli(["purge", session.id], t.databaseUrl!)
    expect(done.code, done.stderr).toBe(0)
    expect(done.stderr).toContain("1 file content(s) deleted")
    const { default: postgres } = await import("postgres")
    const sql = postgres(t.databaseUrl!, { max: 1, onnotice: () => {} })
    try {
      // No row of any of Chronicle's tables holds the erased text, nor any blob its bytes.
      const marker = secret.slice(0, 60)
      const tables = await sql<Array<{ t: string }>>`
        select format('%I.%I', n.nspname, c.relname) as t from pg_class c
          join pg_namespace n on n.oid = c.relnamespace
         where c.relkind = 'r' and n.nspname like 'chronicle%'`
      for (const { t: table } of tables) {
        const [hit] = await sql.unsafe(
          `select count(*)::int as n from ${table} x where position($1 in x::text) > 0`,
          [marker],
        )
        expect(hit!.n, table).toBe(0)
      }
      const [blob] = await sql`select count(*)::int as n from chronicle.blobs
                                where position(${Buffer.from(marker)}::bytea in content) > 0`
      expect(blob!.n).toBe(0)
    } finally {
      await sql.end({ timeout: 1 })
    }
    // The other session's value, stored once for both, is still there.
    const runs = await me.toolRuns.list.query({ sessionId: kept.id })
    expect(runs.items[0]!.output).toEqual(output)
  })

  it("refuses a purge with nothing named, or an unknown session, in one line", async () => {
    const none = await cli(["purge"], t.databaseUrl!)
    expect(none.code).toBe(2)
    expect(none.stderr).toContain("purge: name the sessions, or give --owner or --expired-days")
    const unknown = await cli(["purge", randomUUID()], t.databaseUrl!)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/^chronicle: .*session .* not found/im)
    const noKeep = await cli(["purge", "--graph-checkpoints"], t.databaseUrl!)
    expect(noKeep.code).toBe(2)
    expect(noKeep.stderr).toContain(
      "purge: --graph-checkpoints needs --keep <k>, a whole number of checkpoints >= 1",
    )
    const stray = await cli(["purge", randomUUID(), "--keep", "3"], t.databaseUrl!)
    expect(stray.code).toBe(2)
    expect(stray.stderr).toContain("purge: --keep and --thread go with --graph-checkpoints")
  })
})
