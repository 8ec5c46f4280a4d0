/**
 * The service as the database's least-privileged role (supabase/schemas/06_security.sql):
 * the owner migrates; a login role that is a member of chronicle_runtime runs the server. It
 * can append and read, run the projection engine and take snapshots, but it cannot alter the
 * log's tables, disable the append-only trigger, rewrite an event, move a stream's version,
 * insert an event of its own or import back-dated history; and it does not migrate.
 */
import { randomUUID } from "node:crypto"
import { createPostgresDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest"
import { cli } from "./cli-support.ts"
import {
  type Callers,
  callers,
  runEnded,
  startTestServer,
  type TestDatabase,
  type TestServer,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

/** A database that already exists, as `url` names it (the server migrates it only if it may). */
const existing = (url: string): TestDatabase => ({
  name: "postgres",
  prepare: async () => ({
    database: { kind: "postgres", url, prepare: true, listen: true, pooler: "none" },
    drop: async () => {},
  }),
})

const as = (url: string, role: string) => {
  const u = new URL(url)
  u.username = role
  u.password = ""
  return u.toString()
}

/** The SQLSTATE a statement fails with (undefined if it succeeds). */
const failure = async (sql: postgres.Sql, text: string) => {
  try {
    await sql.unsafe(text)
    return undefined
  } catch (error) {
    return (error as { code?: string }).code
  }
}

describe.runIf(env.postgresUrl !== null)("the service as chronicle_runtime (Postgres)", () => {
  const role = `chronicle_rt_${randomUUID().slice(0, 8)}`
  let database: Awaited<ReturnType<typeof createPostgresDatabase>>
  let owner: postgres.Sql
  let runtime: postgres.Sql
  let runtimeUrl: string
  let t: TestServer
  let c: Callers

  beforeAll(async () => {
    database = await createPostgresDatabase(env.postgresUrl!)
    const migrated = await cli(["migrate"], database.url)
    expect(migrated.code, migrated.stderr).toBe(0)
    owner = postgres(database.url, { max: 1, onnotice: () => {} })
    await owner.unsafe(`create role ${role} login in role chronicle_runtime`)
    runtimeUrl = as(database.url, role)
    runtime = postgres(runtimeUrl, { max: 1, onnotice: () => {} })
    t = await startTestServer(existing(runtimeUrl))
    c = await callers(t)
  })
  afterAll(async () => {
    await t?.close()
    await runtime?.end({ timeout: 1 })
    await database?.drop()
    await owner?.unsafe(`drop role if exists ${role}`).catch(() => {})
    await owner?.end({ timeout: 1 })
  })

  it("serves sessions, files, projections and snapshots, and exports, as that role", async () => {
    expect((await runtime`select current_user as u`)[0]!.u).toBe(role)
    const me = c.asAlice
    const s = await me.sessions.create.mutate({ title: "least privilege" })
    for (const content of ["one", "two", "three"])
      await me.messages.append.mutate({ sessionId: s.id, role: "user", content })
    const cp = await me.checkpoints.create.mutate({ sessionId: s.id, label: "three" })
    await me.messages.append.mutate({ sessionId: s.id, role: "assistant", content: "abandoned" })
    await me.sessions.rollback.mutate({ id: s.id, checkpointId: cp.id })
    const child = await me.sessions.fork.mutate({ id: s.id, checkpointId: cp.id })
    expect((await me.messages.list.query({ sessionId: s.id })).items.map((m) => m.content)).toEqual([
      "one",
      "two",
      "three",
    ])
    expect((await me.messages.list.query({ sessionId: child.id })).items).toHaveLength(3)
    const file = await me.files.put.mutate({
      name: "a.txt",
      mimeType: "text/plain",
      contentBase64: Buffer.from("bytes").toString("base64"),
    })
    const read = await me.files.get.query({ id: file.id, includeContent: true })
    expect(Buffer.from(read.contentBase64!, "base64").toString()).toBe("bytes")
    await me.files.attach.mutate({ sessionId: s.id, fileId: file.id })
    await me.revisions.add.mutate({ sessionId: s.id, ir: { steps: [1] } })
    await me.drafts.add.mutate({ sessionId: s.id, code: "x", language: "ts", valid: true })
    await me.holes.resolve.mutate({ sessionId: s.id, holeId: "h", value: "v", confidence: 1 })
    await me.toolRuns.record.mutate({
      sessionId: s.id,
      tool: "t",
      input: {},
      output: {},
      status: "succeeded",
    })
    const job = await me.jobs.create.mutate({ type: "work", sessionId: s.id, input: {} })
    await me.jobs.start.mutate({ id: job.id })
    await me.jobs.complete.mutate({ id: job.id, output: {} })
    await me.graphs.putCheckpoint.mutate({
      threadId: "t",
      checkpointNs: "",
      checkpointId: "cp-1",
      parentCheckpointId: null,
      checkpoint: { type: "json", data: Buffer.from("{}").toString("base64") },
      metadata: {},
      channelVersions: {},
      blobs: [],
    })
    expect((await me.graphs.list.query({ threadId: "t" })).items).toHaveLength(1)
    expect((await me.sessions.timeline.query({ id: s.id })).items.length).toBeGreaterThan(5)
    expect((await me.messages.list.query({ sessionId: s.id, asOf: { version: 2 } })).items).toHaveLength(1)
    expect((await me.sessions.list.query({ search: "least" })).items.map((x) => x.id)).toContain(s.id)
    expect((await me.analytics.sessionSummary.query({ sessionId: s.id })).items).toHaveLength(1)
    expect((await me.jobs.list.query({})).items).toHaveLength(1)
    // The async projection (the daemon, as this role) folds the day.
    await vi.waitFor(
      async () => {
        const days = await me.analytics.daily.query()
        expect(days.reduce((n, d) => n + d.messages, 0)).toBe(4)
      },
      { timeout: 30_000, interval: 100 },
    )

    // The engine: a rebuild (shadow schema, swap) and a snapshot (made, then dropped).
    const ended = (runId: string) => runEnded(c.asService, runId)
    const rebuild = await c.asService.projections.rebuild.mutate({ projections: ["sessions"] })
    expect(await ended(rebuild.runId)).toMatchObject({ state: "completed" })
    expect((await me.sessions.get.query({ id: s.id })).title).toBe("least privilege")
    const { head } = await c.asService.projections.status.query()
    const label = `rt_${randomUUID().slice(0, 8)}`
    const snap = await c.asService.projections.snapshot.mutate({
      label,
      asOf: { cursor: head.cursor },
      projections: ["sessions"],
    })
    expect(await ended(snap.runId)).toMatchObject({ state: "completed" })
    await c.asService.projections.dropSnapshot.mutate({ label })
    expect((await c.asService.projections.snapshots.query()).map((x) => x.label)).not.toContain(label)

    // `chronicle export` reads everything as that role.
    const exported = await cli(["export", "--out", "/dev/null"], runtimeUrl)
    expect(exported.code, exported.stderr).toBe(0)
    // Erasure is the role's too (the retention sweep runs as it): a session purged, its bytes gone.
    const doomed = await me.sessions.create.mutate({ title: "to erase" })
    await me.messages.append.mutate({ sessionId: doomed.id, role: "user", content: "x".repeat(100_000) })
    const purged = await cli(["purge", doomed.id], runtimeUrl)
    expect(purged.code, purged.stderr).toBe(0)
    expect(purged.stderr).toContain("1 file content(s) deleted")
    expect((await me.sessions.get.query({ id: doomed.id })).status).toBe("deleted")
    // So is pruning a LangGraph thread to its last checkpoints (the sweep's graph retention): a
    // messages list that grew by one item per checkpoint reads whole from the kept ones.
    const items = (texts: Array<string>) =>
      texts.map((x) => ({ type: "json", data: Buffer.from(x).toString("base64") }))
    const save = (id: string, parent: string | null, version: string, base: string | null, add: string) =>
      me.graphs.putCheckpoint.mutate({
        threadId: "pruned",
        checkpointNs: "",
        checkpointId: id,
        parentCheckpointId: parent,
        checkpoint: { type: "json", data: Buffer.from(id).toString("base64") },
        metadata: {},
        channelVersions: { messages: version },
        blobs: [
          {
            channel: "messages",
            version,
            list: { base, keep: base === null ? 0 : Number(base), items: items([add]) },
          },
        ],
      })
    await save("cp-1", null, "1", null, "a")
    await save("cp-2", "cp-1", "2", "1", "b")
    await save("cp-3", "cp-2", "3", "2", "c")
    const args = ["purge", "--graph-checkpoints", "--keep", "2", "--thread", "pruned"]
    const dry = await cli([...args, "--dry-run"], runtimeUrl)
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stderr).toContain(
      "Would prune 1 checkpoint(s) of 1 thread(s), keeping the last 2 of each (dry run: nothing written)",
    )
    expect((await me.graphs.list.query({ threadId: "pruned" })).items).toHaveLength(3)
    const prune = await cli(args, runtimeUrl)
    expect(prune.code, prune.stderr).toBe(0)
    expect(prune.stderr).toContain("pruned 1/1 thread(s)")
    expect(prune.stderr).toContain(
      "Pruned 1 checkpoint(s) of 1 thread(s), keeping the last 2 of each: 1 event(s) redacted",
    )
    const kept = (await me.graphs.list.query({ threadId: "pruned" })).items
    expect(kept.map((k) => [k.checkpointId, k.blobs])).toEqual([
      ["cp-3", [{ channel: "messages", version: "3", items: items(["a", "b", "c"]) }]],
      ["cp-2", [{ channel: "messages", version: "2", items: items(["a", "b"]) }]],
    ])
    // And an owner's erasure: sessions, files, jobs and LangGraph threads, audited in the log.
    const erased = await cli(["purge", "--owner", c.alice], runtimeUrl)
    expect(erased.code, erased.stderr).toBe(0)
    const threads = Number(/1 job\(s\), (\d+) LangGraph thread\(s\)/.exec(erased.stderr)?.[1])
    expect(threads).toBeGreaterThanOrEqual(1)
    expect((await me.graphs.list.query({ threadId: "pruned" })).items).toEqual([])
    const audits = await owner`select type, count(*)::int as n from chronicle.events
                                where type in ('JobPurged', 'GraphThreadPurged') group by type order by type`
    expect(audits).toEqual([
      { type: "GraphThreadPurged", n: threads },
      { type: "JobPurged", n: 1 },
    ])
    // Nothing the server did in the background was refused either.
    expect(t.logs.filter((line) => JSON.stringify(line).includes("permission denied"))).toEqual([])
  })

  it("cannot alter, disable the trigger on, rewrite or add to the log outside the append functions", async () => {
    const [before] =
      await owner`select count(*)::int as n, max(global_position)::text as last from chronicle.events`
    const [stream] = await owner`select stream_id, version from chronicle.streams limit 1`
    const attempts: Record<string, string> = {
      disableTrigger: "alter table chronicle.events disable trigger user",
      dropTrigger: "drop trigger events_no_update_delete on chronicle.events",
      updateEvent: "update chronicle.events set data = '{}'::jsonb",
      deleteEvent: "delete from chronicle.events",
      truncate: "truncate chronicle.events",
      insertEvent: `insert into chronicle.events (stream_id, stream_version, event_id, type, data, metadata)
                    values ('${stream!.stream_id}', 999, gen_random_uuid(), 'Forged', '{}', '{}')`,
      moveVersion: `update chronicle.streams set version = version + 5 where stream_id = '${stream!.stream_id}'`,
      insertStream:
        "insert into chronicle.streams (stream_id, stream_type, version) values ('session-x', 'session', 1)",
      rewriteOrder: "update chronicle.event_seq set seq = seq + 1000",
      moveSequencer: "update chronicle.sequencer set last_seq = 0",
      importBackdated: `select * from chronicle.import_events('session-${randomUUID()}',
        '[{"version":1,"event_id":"${randomUUID()}","type":"SessionStarted","schema_version":1,"data":{},"metadata":{},"recorded_at":"2001-01-01T00:00:00Z"}]'::jsonb)`,
      registerProjection: "select chronicle.refresh_projection_dispatch()",
      writeReadModel: "update chronicle.sessions set title = 'rewritten'",
      dropTable: "drop table chronicle.messages",
      createSchema: "create schema planted",
      dropOtherSchema: "drop schema public cascade",
    }
    const codes: Record<string, string | undefined> = {}
    for (const [name, text] of Object.entries(attempts)) codes[name] = await failure(runtime, text)
    // 42501: insufficient privilege (or "must be owner"). Nothing succeeded.
    expect(codes).toEqual(Object.fromEntries(Object.keys(attempts).map((name) => [name, "42501"])))
    const [after] =
      await owner`select count(*)::int as n, max(global_position)::text as last from chronicle.events`
    expect(after).toEqual(before)
    const [still] = await owner`select version from chronicle.streams where stream_id = ${stream!.stream_id}`
    expect(still!.version).toBe(stream!.version)
    // What it may do, it does through the functions: an append as that role.
    const appended = await runtime.unsafe(
      `select * from chronicle.append_events('session-${randomUUID()}', 'session', null,
        '[{"event_id":"${randomUUID()}","type":"Probe","data":{}}]'::jsonb)`,
    )
    expect(appended[0]!.stream_version).toBe(1)
    // No function is PUBLIC's.
    const publicFunctions = await owner`
      select p.oid::regprocedure::text as f from pg_proc p
       where p.pronamespace = 'chronicle'::regnamespace
         and has_function_privilege('public', p.oid, 'EXECUTE')`
    expect(publicFunctions.map((r) => r.f)).toEqual([])
  })

  it("does not migrate: a pending migration is refused with what to do", async () => {
    const other = await createPostgresDatabase(env.postgresUrl!)
    try {
      expect((await cli(["migrate"], other.url)).code).toBe(0)
      const sql = postgres(other.url, { max: 1, onnotice: () => {} })
      try {
        // The newest migration "not applied yet", as after an upgrade of the service.
        const [newest] = await sql`delete from chronicle.schema_migrations
                   where version = (select max(version) from chronicle.schema_migrations)
                   returning version, name, checksum`
        const refused = await cli(["migrate"], as(other.url, role))
        expect(refused.code).not.toBe(0)
        expect(refused.stderr).toContain(`${newest!.name}: is not applied`)
        expect(refused.stderr).toContain(`role ${role} does not own the chronicle schema`)
        expect(refused.stderr).toContain("chronicle migrate")
        // Once it is recorded (as the owner's migrate would), the role's server starts there.
        await sql`insert into chronicle.schema_migrations ${sql(newest!)}`
        const server = await startTestServer(existing(as(other.url, role)))
        await server.close()
      } finally {
        await sql.end({ timeout: 1 })
      }
    } finally {
      await other.drop()
    }
  })
})
