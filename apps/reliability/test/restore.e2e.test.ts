/**
 * A dump and restore into another server — how people move to Supabase, restore a backup or
 * clone production. The log's order is data (chronicle.event_seq), so on the new server every
 * event reads back in the same order, cursors handed out before the dump resume exactly,
 * events the old server had not yet ordered are ordered once, new appends come after all of
 * them, the async daemon's lag is honest and a rebuild equals the restored read models.
 */
import { execFile } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import type { ChronicleClient } from "@chronicle/client"
import type {} from "@chronicle/store/vitest-global-setup"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { childEnv, serviceClient } from "./load.ts"
import { readModelFingerprint, readModelTables, rebuildSettled } from "./projections.ts"
import {
  type ChildServer,
  eventually,
  PG_BIN,
  type PrivateCluster,
  report,
  startChildServer,
  startPrivateCluster,
  withSql,
} from "./support.ts"

const run = promisify(execFile)
const postgresUrl = inject("postgresUrl")

interface Item {
  readonly eventId: string
  readonly cursor: string | null
}

/** The whole log through the API, page by page, with the cursor after each page. */
const readAll = async (client: ChronicleClient, after?: string) => {
  const items: Array<Item> = []
  let cursor = after
  for (;;) {
    const page = await client.events.readAll.query({
      limit: 200,
      ...(cursor === undefined ? {} : { after: cursor }),
    })
    items.push(...page.items)
    cursor = page.cursor
    if (page.nextCursor === null) return { items, cursor }
  }
}

describe.runIf(postgresUrl !== null)("a dump of a Chronicle database restored into another server", () => {
  let source: PrivateCluster
  let target: PrivateCluster
  let server: ChildServer | undefined
  let dir: string

  beforeAll(async () => {
    ;[source, target] = await Promise.all([startPrivateCluster(), startPrivateCluster()])
    dir = await mkdtemp(join(tmpdir(), "chronicle-dump-"))
    await withSql(source.url, (sql) => sql.unsafe("create database app"))
    await withSql(target.url, (sql) => sql.unsafe("create database app"))
  }, 60_000)
  afterAll(async () => {
    await server?.kill()
    await Promise.all([source?.destroy(), target?.destroy()])
    await rm(dir, { recursive: true, force: true })
  })

  it("keeps the order, every cursor and the read models; new appends follow; lag is honest; a rebuild is equal", async () => {
    // ----- history on the source server
    server = await startChildServer(childEnv(source.urlOf("app")))
    let client = serviceClient(server.url)
    for (let i = 0; i < 6; i++) {
      const session = await client.sessions.create.mutate({ title: `session ${i}` })
      const checkpoint = await client.checkpoints.create.mutate({ sessionId: session.id, label: "start" })
      for (let m = 0; m < 5; m++) {
        await client.messages.append.mutate({ sessionId: session.id, role: "user", content: `message ${m}` })
      }
      if (i % 2 === 0) await client.sessions.rollback.mutate({ id: session.id, checkpointId: checkpoint.id })
      const job = await client.jobs.create.mutate({ type: "build", sessionId: session.id, input: {} })
      await client.jobs.start.mutate({ id: job.id })
      await client.jobs.complete.mutate({ id: job.id, output: { ok: true } })
    }
    await rebuildSettled(client, source.urlOf("app"))
    const before = await readAll(client)
    const tables = readModelTables(await client.projections.status.query())
    await server.kill("SIGTERM")
    server = undefined
    // Appends made by SQL after the server stopped: committed, never ordered on this server.
    const [{ session_id: lateSession } = { session_id: "" }] = await withSql(
      source.urlOf("app"),
      (sql) =>
        sql<Array<{ session_id: string }>>`select id::text as session_id from chronicle.sessions limit 1`,
    )
    await withSql(source.urlOf("app"), (sql) =>
      sql.unsafe(
        `select chronicle.append_events('session-${lateSession}', 'session', -1,
           jsonb_build_array(jsonb_build_object('event_id', gen_random_uuid(), 'type', 'MessageAppended',
             'data', jsonb_build_object('messageId', gen_random_uuid(), 'seq', 1000, 'role', 'user',
               'content', 'appended after the server stopped', 'metadata', '{}'::jsonb))))`,
      ),
    )
    const sourceReadModels = await readModelFingerprint(source.urlOf("app"), tables)

    // ----- pg_dump, pg_restore into a fresh server
    const dump = join(dir, "app.dump")
    await run(join(PG_BIN, "pg_dump"), ["-Fc", "-f", dump, source.urlOf("app")])
    await source.stop()
    // The new server has no chronicle_runtime role (roles belong to a server): restored without
    // the privileges, which the migration step at start-up puts back (README, "Database roles").
    await run(join(PG_BIN, "pg_restore"), ["--no-owner", "--no-privileges", "-d", target.urlOf("app"), dump])
    expect(await readModelFingerprint(target.urlOf("app"), tables)).toEqual(sourceReadModels)

    server = await startChildServer(childEnv(target.urlOf("app")))
    const privileges = await withSql(target.urlOf("app"), (sql) =>
      sql.unsafe(`select
          exists (select 1 from pg_roles where rolname = 'chronicle_runtime') as role,
          has_function_privilege('chronicle_runtime', 'chronicle.append_events(text,text,integer,jsonb,uuid)', 'EXECUTE') as runtime,
          (select count(*)::int from pg_proc p where p.pronamespace = 'chronicle'::regnamespace
              and has_function_privilege('public', p.oid, 'EXECUTE')) as public_functions`),
    )
    expect(privileges[0]).toEqual({ role: true, runtime: true, public_functions: 0 })
    client = serviceClient(server.url)
    const after = await eventually("the restored log to be ordered", async () => {
      const all = await readAll(client)
      return all.items.length === before.items.length + 1 ? all : undefined
    })
    // The order and the cursors the source handed out, then the event it had not ordered.
    expect(after.items.slice(0, before.items.length)).toEqual(
      before.items.map((i) => expect.objectContaining(i)),
    )
    const late = after.items.at(-1)!
    expect(Number(late.cursor)).toBe(before.items.length + 1)
    for (const k of [0, 7, Math.floor(before.items.length / 2), before.items.length - 1]) {
      const resumed = await readAll(client, before.items[k]!.cursor!)
      expect(resumed.items.map((i) => i.eventId)).toEqual(after.items.slice(k + 1).map((i) => i.eventId))
    }

    // A new append on the new server comes after everything restored.
    const fresh = await client.sessions.create.mutate({ title: "after the restore" })
    await client.messages.append.mutate({ sessionId: fresh.id, role: "user", content: "new" })
    const tail = await readAll(client, after.cursor)
    expect(tail.items).toHaveLength(2)
    expect(tail.items.every((i) => Number(i.cursor) > before.items.length + 1)).toBe(true)

    // The async daemon: the late event and the new ones are counted, its lag comes down to 0.
    const activity = async () =>
      (await client.projections.status.query()).projections.find((p) => p.name === "activity")!
    expect((await activity()).lagEvents).toBeGreaterThanOrEqual(0)
    await rebuildSettled(client, target.urlOf("app"))
    expect(await activity()).toMatchObject({ state: "live", lagEvents: 0 })
    const counted = await withSql(
      target.urlOf("app"),
      (sql) =>
        sql<Array<{ messages: number }>>`select sum(messages)::int as messages from chronicle.activity_daily`,
    )
    const inLog = await withSql(
      target.urlOf("app"),
      (sql) =>
        sql<
          Array<{ n: number }>
        >`select count(*)::int as n from chronicle.events where type = 'MessageAppended'`,
    )
    expect(counted[0]!.messages).toBe(inLog[0]!.n)

    // A rebuild of everything equals what the restore brought plus what came since.
    const restored = await readModelFingerprint(target.urlOf("app"), tables)
    await client.projections.rebuild.mutate({})
    await rebuildSettled(client, target.urlOf("app"))
    expect(await readModelFingerprint(target.urlOf("app"), tables)).toEqual(restored)
    report("restore", { events: after.items.length + 2, resumedFrom: 4 })
  }, 240_000)
})
