/**
 * A rebuild's swap keeps the read-model tables in the publications that listed them (on
 * Supabase, Realtime's change feeds come from the supabase_realtime publication), with their
 * column lists and row filters, and keeps their replica identity: FULL, NOTHING, or USING INDEX
 * the index of the same name. Publications FOR ALL TABLES and FOR TABLES IN SCHEMA still cover
 * the new tables. The rebuilt tables still equal a from-scratch fold, and stay writable under
 * their publications' rules afterwards.
 */
import { randomUUID } from "node:crypto"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels } from "../src/index.ts"
import { engineOf, scratchFold } from "./engine-support.ts"
import { env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"
import { fillLog } from "./workload.ts"

// What a Supabase project sets up for Realtime, and two other kinds of publication. The
// replica identities are those the publications need for updates: a row filter on sessions
// needs FULL (it names columns outside the primary key); messages' column list holds its key.
const SETUP = [
  "alter table chronicle.sessions replica identity full",
  "alter table chronicle.revisions replica identity using index revisions_pkey",
  "alter table chronicle.tool_runs replica identity nothing",
  `create publication supabase_realtime
     for table chronicle.sessions, chronicle.messages, chronicle.revisions, chronicle.jobs`,
  `create publication chronicle_feed
     for table chronicle.sessions where (status <> 'deleted'),
               chronicle.messages (session_id, message_id, seq, role, content)`,
  "create publication chronicle_schema for tables in schema chronicle with (publish = 'insert')",
  "create publication everything for all tables with (publish = 'insert')",
]

interface Listed {
  readonly pubname: string
  readonly relname: string
  readonly columns: ReadonlyArray<string> | null
  readonly filter: string | null
}

/** The tables each publication lists by name (pg_publication_rel), with column list and row filter. */
const listed = (h: Harness) =>
  h.query<Listed>(
    `select p.pubname::text, n.nspname || '.' || c.relname as relname,
            (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
              where a.attrelid = pr.prrelid and a.attnum = any (pr.prattrs)) as columns,
            pg_get_expr(pr.prqual, pr.prrelid) as filter
       from pg_publication_rel pr
       join pg_publication p on p.oid = pr.prpubid
       join pg_class c on c.oid = pr.prrelid
       join pg_namespace n on n.oid = c.relnamespace
      order by 1, 2`,
  )

/** What Realtime reads: every publication's chronicle tables, however they are included. */
const published = (h: Harness) =>
  h.query(
    `select pubname::text, tablename::text, attnames::text[] as attnames, rowfilter
       from pg_publication_tables where schemaname = 'chronicle' order by 1, 2`,
  )

/** Each chronicle table's replica identity, and the index it uses, by name. */
const identities = (h: Harness) =>
  h.query<{ relname: string; identity: string; index: string | null }>(
    `select c.relname::text, c.relreplident::text as identity,
            (select i.relname::text from pg_index x join pg_class i on i.oid = x.indexrelid
              where x.indrelid = c.oid and x.indisreplident) as index
       from pg_class c
      where c.relnamespace = 'chronicle'::regnamespace and c.relkind = 'r'
      order by 1`,
  )

const oids = (h: Harness, tables: ReadonlyArray<string>) =>
  h.query<{ relname: string; oid: string }>(
    `select c.relname::text, c.oid::text from pg_class c
      where c.relnamespace = 'chronicle'::regnamespace and c.relname = any ($1::text[]) order by 1`,
    [tables],
  )

describe.each(testDatabases(env))("a rebuild's swap and publications on $name", (database) => {
  let h: Harness
  beforeAll(async () => {
    h = await makeHarness(database)
    await fillLog(h)
    for (const statement of SETUP) await h.query(statement)
  })
  afterAll(() => h.dispose())

  it("keeps the swapped tables in their publications, with column lists, row filters and replica identity", async () => {
    const listedBefore = await listed(h)
    // The setup is what the assertions below rely on: without it they would hold trivially.
    expect(listedBefore).toEqual([
      {
        pubname: "chronicle_feed",
        relname: "chronicle.messages",
        columns: ["session_id", "message_id", "seq", "role", "content"],
        filter: null,
      },
      {
        pubname: "chronicle_feed",
        relname: "chronicle.sessions",
        columns: null,
        filter: expect.stringMatching(/status <> 'deleted'/),
      },
      { pubname: "supabase_realtime", relname: "chronicle.jobs", columns: null, filter: null },
      { pubname: "supabase_realtime", relname: "chronicle.messages", columns: null, filter: null },
      { pubname: "supabase_realtime", relname: "chronicle.revisions", columns: null, filter: null },
      { pubname: "supabase_realtime", relname: "chronicle.sessions", columns: null, filter: null },
    ])
    const publishedBefore = await published(h)
    const identitiesBefore = await identities(h)
    expect(identitiesBefore).toEqual(
      expect.arrayContaining([
        { relname: "sessions", identity: "f", index: null },
        { relname: "revisions", identity: "i", index: "revisions_pkey" },
        { relname: "tool_runs", identity: "n", index: null },
        { relname: "messages", identity: "d", index: null },
      ]),
    )
    const swapped = ["sessions", "messages", "revisions", "jobs", "tool_runs"]
    const oidsBefore = await oids(h, swapped)

    const engine = await engineOf(h)
    const run = await engine.run((p) =>
      Effect.flatMap(p.startRebuild(), (r) => p.execute(r.id, { batchSize: 50 })),
    )
    await engine.dispose()
    expect(run).toMatchObject({ state: "completed", phase: "done", kind: "rebuild" })

    // New tables, under the old names, in the same publications, as the same kind of member.
    const oidsAfter = await oids(h, swapped)
    expect(oidsAfter.map((r) => r.relname)).toEqual(oidsBefore.map((r) => r.relname))
    for (const [i, after] of oidsAfter.entries()) expect(after.oid).not.toBe(oidsBefore[i]!.oid)
    expect(await listed(h)).toEqual(listedBefore)
    expect(await published(h)).toEqual(publishedBefore)
    expect(await identities(h)).toEqual(identitiesBefore)
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
  })

  it("leaves the new tables writable under their publications' rules", async () => {
    // Updates of a table in a publication that publishes them are checked against its replica
    // identity (row filter and column list columns must be part of it): appends update sessions.
    const id = randomUUID()
    await h.append(sessionStream(id), [ev.started(id, randomUUID()), ev.message(1, "after the swap")])
    await h.append(sessionStream(id), [
      ev.updated({ title: "renamed" }),
      ev.message(2, "second"),
      ev.revision(1),
      ev.toolRun(),
      ev.rolledBack(2),
    ])
    await h.append(sessionStream(id), [ev.deleted()])
    expect(await h.one("select status, title from chronicle.sessions where id = $1::uuid", [id])).toEqual({
      status: "deleted",
      title: null,
    })
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
  })
})
