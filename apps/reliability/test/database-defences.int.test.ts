/**
 * The database's own defences, on a private cluster set up like Supabase (the `anon`,
 * `authenticated` and `service_role` roles and a minimal `auth.uid()` shim exist before the
 * migrations run): the log refuses UPDATE, DELETE and TRUNCATE whoever asks; the API roles
 * cannot write; and under row-level security user A reads none of user B's rows in any table.
 */
import { randomUUID } from "node:crypto"
import { clientFor, startTestServer, type TestServer } from "@chronicle/server/testing"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PrivateCluster, report, startPrivateCluster, withSql } from "./support.ts"

// Supabase provides auth.uid() from the request's JWT; on plain Postgres, the `sub` claim
// PostgREST puts in request.jwt.claim.sub is enough.
const SUPABASE_SHIM = `
  create role anon nologin;
  create role authenticated nologin;
  create role service_role nologin bypassrls;
  create role chronicle_app login;
  create schema auth;
  create function auth.uid() returns uuid language sql stable as
    $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
  grant usage on schema auth to anon, authenticated, service_role;`

describe("the database's own defences (a private cluster with Supabase's roles)", () => {
  let cluster: PrivateCluster
  let t: TestServer
  let sql: postgres.Sql
  let url: string
  const alice = randomUUID()
  const bob = randomUUID()
  const BOB_SECRET = `bob-secret-${randomUUID()}`
  const bobIds: Array<string> = [bob]

  beforeAll(async () => {
    cluster = await startPrivateCluster()
    await withSql(cluster.url, (s) => s.unsafe("create database app"))
    url = cluster.urlOf("app")
    await withSql(url, (s) => s.unsafe(SUPABASE_SHIM))
    t = await startTestServer({
      name: "postgres",
      prepare: async () => ({
        database: { kind: "postgres", url, prepare: true, listen: true, pooler: "none" },
        drop: async () => {},
      }),
    })
    // Something of everything, for both users.
    for (const [owner, secret] of [
      [alice, "alice's"],
      [bob, BOB_SECRET],
    ] as const) {
      const c = clientFor(t.server.url, await t.authority.hs256Token({ sub: owner }))
      const session = await c.sessions.create.mutate({ title: secret, externalKey: secret })
      await c.messages.append.mutate({ sessionId: session.id, role: "user", content: secret })
      await c.revisions.add.mutate({ sessionId: session.id, ir: { secret } })
      await c.drafts.add.mutate({ sessionId: session.id, code: secret, language: "ts", valid: true })
      await c.holes.resolve.mutate({ sessionId: session.id, holeId: secret, value: secret, confidence: 1 })
      await c.toolRuns.record.mutate({ sessionId: session.id, tool: secret, input: {}, status: "succeeded" })
      const checkpoint = await c.checkpoints.create.mutate({ sessionId: session.id, label: secret })
      const file = await c.files.put.mutate({
        name: secret,
        mimeType: "text/plain",
        contentBase64: Buffer.from(secret).toString("base64"),
      })
      await c.files.attach.mutate({ sessionId: session.id, fileId: file.id })
      await c.files.detach.mutate({ sessionId: session.id, fileId: file.id })
      await c.sessions.update.mutate({ id: session.id, title: secret })
      await c.sessions.rollback.mutate({ id: session.id, checkpointId: checkpoint.id })
      const fork = await c.sessions.fork.mutate({ id: session.id, checkpointId: checkpoint.id })
      const job = await c.jobs.create.mutate({ type: secret, sessionId: session.id, input: { secret } })
      await c.jobs.addTask.mutate({ id: job.id, name: secret })
      await c.jobs.start.mutate({ id: job.id })
      await c.artifacts.record.mutate({ jobId: job.id, fileId: file.id, kind: "output" })
      await c.jobs.complete.mutate({ id: job.id, output: secret })
      await c.sandboxes.register.mutate({ sessionId: session.id, provider: "e2b", externalId: secret })
      // A LangGraph thread: a checkpoint with a channel value, and a task's pending writes.
      const serialized = { type: "json", data: Buffer.from(JSON.stringify({ secret })).toString("base64") }
      await c.graphs.putCheckpoint.mutate({
        threadId: secret,
        checkpointNs: "",
        checkpointId: "checkpoint-1",
        parentCheckpointId: null,
        checkpoint: serialized,
        metadata: { secret },
        channelVersions: { messages: "1.5" },
        blobs: [{ channel: "messages", version: "1.5", value: serialized }],
      })
      await c.graphs.putWrites.mutate({
        threadId: secret,
        checkpointNs: "",
        checkpointId: "checkpoint-1",
        taskId: secret,
        taskPath: "",
        writes: [{ idx: 0, channel: "messages", value: serialized }],
      })
      if (owner === bob) bobIds.push(session.id, file.id, job.id, fork.id, checkpoint.id)
    }
    sql = postgres(url, { max: 1, onnotice: () => {} })
  })
  afterAll(async () => {
    await sql?.end({ timeout: 1 })
    await t?.close()
    await cluster?.destroy()
  })

  /** Runs `query` as `role`, with `sub` as the JWT's subject. */
  const as = (role: string, sub: string | null, query: string) =>
    sql.begin(async (tx) => {
      await tx.unsafe(`set local role ${role}`)
      await tx.unsafe("select set_config('request.jwt.claim.sub', $1, true)", [sub ?? ""])
      return tx.unsafe(query)
    })

  /** The SQLSTATE a statement was refused with; "no rows" when it ran but touched nothing. */
  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      (result) => ((result as { count?: number } | undefined)?.count === 0 ? "no rows" : "allowed"),
      (e: { code?: string }) => e.code ?? "error",
    )

  it("refuses UPDATE, DELETE and TRUNCATE of the log to its owner, an application role with every privilege, and the API roles", async () => {
    // An application role an operator granted everything: the triggers still hold.
    await sql.unsafe(`grant usage on schema chronicle to chronicle_app;
                      grant all privileges on all tables in schema chronicle to chronicle_app;
                      grant all privileges on all sequences in schema chronicle to chronicle_app`)
    const logDigest = () =>
      sql`select count(*)::int as n, md5(string_agg(to_jsonb(e)::text, '' order by global_position)) as digest
            from chronicle.events e`
    const [before] = await logDigest()
    const statements = [
      "update chronicle.events set data = '{}'::jsonb",
      "delete from chronicle.events",
      "truncate chronicle.events",
      "truncate chronicle.events cascade",
    ]
    const outcomes: Record<string, string> = {}
    for (const statement of statements) {
      outcomes[`owner: ${statement}`] = await refusal(sql.begin((tx) => tx.unsafe(statement)))
      outcomes[`chronicle_app: ${statement}`] = await refusal(as("chronicle_app", null, statement))
      for (const role of ["authenticated", "anon"]) {
        outcomes[`${role}: ${statement}`] = await refusal(as(role, alice, statement))
      }
    }
    for (const [who, code] of Object.entries(outcomes)) {
      // CH001: the append-only trigger; 42501: no privilege; "no rows": row-level security
      // gives a role without a write policy nothing to change.
      if (who.startsWith("owner")) expect(code, who).toBe("CH001")
      else if (who.startsWith("chronicle_app")) expect(["CH001", "no rows"], who).toContain(code)
      else expect(code, who).toBe("42501")
    }
    // The API roles cannot write the log, the streams or any read model directly either.
    const tables = await sql<Array<{ name: string }>>`
      select table_name as name from information_schema.tables
       where table_schema = 'chronicle' and table_type = 'BASE TABLE' order by 1`
    let writesRefused = 0
    for (const { name } of tables) {
      for (const statement of [`delete from chronicle."${name}"`, `truncate chronicle."${name}" cascade`]) {
        for (const role of ["authenticated", "anon"]) {
          const code = await refusal(as(role, alice, statement))
          expect(["42501", "no rows"], `${role}: ${statement}`).toContain(code)
          writesRefused++
        }
      }
    }
    const [after] = await logDigest()
    expect(after).toEqual(before)
    report("database defences: append-only", {
      logMutationsRefused: Object.keys(outcomes).length,
      apiRoleWritesRefused: writesRefused,
      tables: tables.length,
    })
  })

  it("shows user A none of user B's rows in any table, and an anonymous reader nothing", async () => {
    const tables = await sql<Array<{ name: string; rls: boolean }>>`
      select c.relname as name, c.relrowsecurity as rls
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'chronicle' and c.relkind = 'r'
       order by 1`
    const leaks: Array<string> = []
    let checked = 0
    let visibleToAlice = 0
    let anonymousRows = 0
    const emptyTables: Array<string> = []
    for (const { name } of tables) {
      const [{ total }] = (await sql.unsafe(`select count(*)::int as total from chronicle."${name}"`)) as [
        { total: number },
      ]
      let rows: Array<{ row: string }>
      try {
        rows = (await as(
          "authenticated",
          alice,
          `select to_jsonb(t)::text as row from chronicle."${name}" t`,
        )) as unknown as Array<{ row: string }>
      } catch (error) {
        // A table the API roles may not read at all holds nothing they can leak.
        expect((error as { code?: string }).code, name).toBe("42501")
        continue
      }
      checked++
      visibleToAlice += rows.length
      for (const { row } of rows) {
        if (row.includes(BOB_SECRET) || bobIds.some((id) => row.includes(id))) {
          leaks.push(`${name}: ${row.slice(0, 200)}`)
        }
      }
      const anonymous = (await as(
        "anon",
        null,
        `select to_jsonb(t)::text as row from chronicle."${name}" t`,
      ).catch((error: { code?: string }) => {
        expect(error.code, name).toBe("42501")
        return []
      })) as unknown as Array<{ row: string }>
      anonymousRows += anonymous.length
      for (const { row } of anonymous) {
        if ([alice, bob, ...bobIds].some((id) => row.includes(id)))
          leaks.push(`${name}: ${row.slice(0, 200)} to anon`)
      }
      if (total === 0) emptyTables.push(name)
    }
    expect(leaks).toEqual([])
    expect(visibleToAlice).toBeGreaterThan(0)
    // The graph tables hold both users' rows, so their policies were really put to the test.
    expect(emptyTables.filter((name) => name.startsWith("graph_"))).toEqual([])
    // And the views over them read with the caller's rights.
    const views = await sql<Array<{ name: string }>>`
      select table_name as name from information_schema.views where table_schema = 'chronicle' order by 1`
    for (const { name } of views) {
      const rows = await refusal(
        as("authenticated", alice, `select to_jsonb(v)::text as row from chronicle."${name}" v`).then((r) => {
          for (const { row } of r as unknown as Array<{ row: string }>) {
            if (row.includes(BOB_SECRET) || bobIds.some((id) => row.includes(id)))
              leaks.push(`${name}: ${row}`)
          }
        }),
      )
      expect(["allowed", "42501"], name).toContain(rows)
    }
    expect(leaks).toEqual([])

    // Every owner column is the first column of an index, so the policies stay cheap.
    const unindexed = await sql<Array<{ name: string }>>`
      select c.relname as name
        from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'chronicle' and c.relkind = 'r' and a.attname = 'owner_id'
         and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indkey[0] = a.attnum)`
    const policies = await sql<Array<{ qual: string }>>`
      select qual from pg_policies where schemaname = 'chronicle'`
    report("database defences: row-level security", {
      tables: tables.length,
      tablesReadable: checked,
      tablesWithRls: tables.filter((x) => x.rls).length,
      views: views.length,
      rowsVisibleToA: visibleToAlice,
      rowsVisibleToAnon: anonymousRows,
      tablesLeftEmptyBySeed: emptyTables,
      leaks: leaks.length,
      policies: policies.length,
      policiesCallingAuthUidOncePerQuery: policies.filter((p) => /\(\s*select auth\.uid\(\)/i.test(p.qual))
        .length,
      ownerColumnsWithoutLeadingIndex: unindexed.map((u) => u.name),
    })
    expect(unindexed.map((u) => u.name)).toEqual([])
  })
})
