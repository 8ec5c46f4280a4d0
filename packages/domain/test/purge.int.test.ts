/**
 * Erasure, on both databases: a purged session (and its forks) leaves no trace of its text in
 * any table of the chronicle schemas; the log keeps its shape and still replays, a rebuild of
 * the read models equals the inline ones, other sessions are untouched; the append-only
 * trigger still refuses every other change to an event; only the service role purges; the
 * retention sweep purges sessions expired longer than its policy; point-in-time snapshots
 * (analytics_asof_<label> schemas) lose the session's text too.
 */
import { Projections, readModelTables } from "@chronicle/projections"
import { Database, EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { serviceActor } from "../src/actor.ts"
import { Content } from "../src/content.ts"
import { Files } from "../src/files.ts"
import { Purge } from "../src/purge.ts"
import { Retention } from "../src/retention.ts"
import { Sandboxes } from "../src/sandboxes.ts"
import { domainRuntimeFor, env, failureOf, newUser } from "./support.ts"

const SECRET = "Xylophone-Secret-7431"

/** The read models a rebuild makes (every inline projection's tables). */
const READ_MODELS = [...readModelTables, "graph_threads", "graph_checkpoints", "graph_blobs", "graph_writes"]

describe.each(testDatabases(env))("purging sessions on $name", (database) => {
  const domain = domainRuntimeFor(database, { sessionTtlHours: 24, purgeExpiredAfterDays: 7 })
  const { run, sessions, content, purge } = domain
  const sql = <T extends Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
    run(Effect.flatMap(Database, (db) => db.query<T>(text, params)))

  /**
   * Rows of every table of every chronicle schema (and every snapshot's analytics_asof_ schema)
   * whose text holds `needle`, by table.
   */
  const traces = async (needle: string) => {
    const tables = await sql<{ s: string; t: string }>(
      `select table_schema as s, table_name as t from information_schema.tables
        where (table_schema like 'chronicle%' or table_schema like 'analytics\\_asof\\_%')
          and table_type = 'BASE TABLE' order by 1, 2`,
    )
    expect(tables.length).toBeGreaterThan(20)
    const found: Record<string, number> = {}
    for (const { s, t } of tables) {
      const [row] = await sql<{ n: number }>(
        `select count(*)::int as n from "${s}"."${t}" x where x::text like '%' || $1 || '%'`,
        [needle],
      )
      if (row!.n > 0) found[`${s}.${t}`] = row!.n
    }
    return found
  }

  const dumpReadModels = () =>
    Effect.gen(function* () {
      const db = yield* Database
      const dump: Record<string, unknown> = {}
      for (const table of READ_MODELS) {
        const [row] = yield* db.query<{ rows: string }>(
          `select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text), '[]')::text as rows from chronicle.${table} t`,
        )
        dump[table] = JSON.parse(row!.rows)
      }
      return dump
    })

  /** The read models a from-scratch replay of the log makes, in a transaction rolled back. */
  const rebuilt = () =>
    run(
      Effect.gen(function* () {
        const db = yield* Database
        let dump: Record<string, unknown> | undefined
        yield* db
          .transaction(
            Effect.gen(function* () {
              yield* db.query("select chronicle.rebuild_read_models()")
              // The graph projection's tables too, from the graph streams.
              yield* db.query(
                `truncate chronicle.graph_threads, chronicle.graph_checkpoints, chronicle.graph_blobs, chronicle.graph_writes`,
              )
              yield* db.query(`do $$
                declare e chronicle.events;
                begin
                  perform set_config('search_path', 'chronicle, pg_temp', true);
                  for e in select * from chronicle.events where stream_id like 'graph-%' order by global_position loop
                    perform chronicle.project_graph(e);
                  end loop;
                end $$`)
              dump = yield* dumpReadModels()
              return yield* Effect.fail("roll back" as const)
            }),
          )
          .pipe(Effect.ignore)
        return dump!
      }),
    )

  /** A session with the secret in every kind of content, and a fork of it with more. */
  const secretSession = async () => {
    const alice = newUser()
    const s = await sessions((x) =>
      x.create(alice, { title: `title ${SECRET}`, metadata: { note: SECRET }, externalKey: `key-${SECRET}` }),
    )
    await content((c) =>
      c.appendMessages(alice, s.id, [{ role: "user", content: `hello ${SECRET}`, metadata: { m: SECRET } }], {
        idempotencyKey: `idem-${SECRET}`,
      }),
    )
    await content((c) => c.addRevision(alice, s.id, { ir: { step: SECRET }, note: SECRET }))
    await content((c) =>
      c.recordDraft(alice, s.id, {
        code: `print("${SECRET}")`,
        language: "py",
        valid: true,
        metrics: { s: SECRET },
      }),
    )
    await content((c) => c.resolveHole(alice, s.id, { holeId: "h1", value: SECRET, confidence: 0.5 }))
    await content((c) =>
      c.recordToolRun(alice, s.id, {
        tool: "search",
        input: { q: SECRET },
        output: { r: SECRET },
        status: "failed",
        error: SECRET,
      }),
    )
    const file = await run(
      Effect.flatMap(Files, (f) =>
        f.put(alice, {
          content: new TextEncoder().encode("bytes"),
          name: "plain.txt",
          mimeType: "text/plain",
        }),
      ),
    )
    await content((c) => c.attachFile(alice, s.id, file.id))
    const checkpoint = await sessions((x) => x.createCheckpoint(alice, s.id, `label ${SECRET}`))
    await sessions((x) => x.update(alice, s.id, { title: `renamed ${SECRET}` }))
    await content((c) =>
      c.appendMessages(alice, s.id, [{ role: "assistant", content: `reverted ${SECRET}` }]),
    )
    await sessions((x) => x.rollback(alice, s.id, { checkpointId: checkpoint.id }))
    const child = await sessions((x) => x.fork(alice, s.id, { checkpointId: checkpoint.id }))
    await content((c) => c.appendMessages(alice, child.id, [{ role: "user", content: `child ${SECRET}` }]))
    // Another session of the same owner, and one of another owner: never touched.
    const kept = await sessions((x) => x.create(alice, { title: "kept" }))
    await content((c) => c.appendMessages(alice, kept.id, [{ role: "user", content: "keep me" }]))
    const bob = newUser()
    const bobs = await sessions((x) => x.create(bob, { title: "bob's" }))
    await content((c) => c.appendMessages(bob, bobs.id, [{ role: "user", content: "bob keeps this" }]))
    return { alice, s, child, kept, bob, bobs }
  }

  it("erases a session and its forks: no trace of its text in any table, the log still replays, rebuilds equal", async () => {
    const { alice, s, child, kept, bob, bobs } = await secretSession()
    expect(Object.keys(await traces(SECRET)).length).toBeGreaterThan(5)
    const before = {
      kept: await content((c) => c.listMessages(alice, kept.id, {})),
      bobs: await content((c) => c.listMessages(bob, bobs.id, {})),
      keptSession: await sessions((x) => x.get(alice, kept.id)),
    }
    const versions = await sql<{ stream_id: string; n: number; max: number }>(
      `select stream_id, count(*)::int as n, max(stream_version) as max from chronicle.events
        where stream_id = any ($1::text[]) group by stream_id order by stream_id`,
      [[`session-${s.id}`, `session-${child.id}`]],
    )

    // A dry run says what would go and writes nothing.
    const head = await sql<{ n: number }>(`select count(*)::int as n from chronicle.events`)
    const dry = await purge((p) => p.purge(serviceActor(), { sessionId: s.id }, { dryRun: true }))
    expect(dry).toMatchObject({ dryRun: true, sessions: [{ id: s.id }, { id: child.id }] })
    expect(await sql(`select count(*)::int as n from chronicle.events`)).toEqual(head)
    expect(Object.keys(await traces(SECRET)).length).toBeGreaterThan(5)

    const progress: Array<[number, number]> = []
    const report = await purge((p) =>
      p.purge(
        serviceActor(),
        { sessionId: s.id },
        { reason: "erasure request 42", onProgress: (done, total) => progress.push([done, total]) },
      ),
    )
    expect(report.sessions.map((x) => x.id)).toEqual([s.id, child.id])
    expect(report.events).toBe(versions.reduce((n, v) => n + v.n, 0))
    expect(progress.at(-1)).toEqual([2, 2])

    // No table of any chronicle schema holds the text any more.
    expect(await traces(SECRET)).toEqual({})

    // The log kept its shape: the same events, versions and ids, and one SessionPurged more each.
    const after = await sql<{ stream_id: string; n: number; max: number }>(
      `select stream_id, count(*)::int as n, max(stream_version) as max from chronicle.events
        where stream_id = any ($1::text[]) group by stream_id order by stream_id`,
      [[`session-${s.id}`, `session-${child.id}`]],
    )
    expect(after).toEqual(versions.map((v) => ({ ...v, n: v.n + 1, max: v.max + 1 })))
    // It still replays: the timeline decodes every event, the last one records the purge.
    const timeline = await sessions((x) => x.timeline(serviceActor(), s.id, { limit: 500 }))
    expect(timeline.items.at(-1)).toMatchObject({
      type: "SessionPurged",
      data: {
        reason: "erasure request 42",
        throughVersion: versions.find((v) => v.stream_id === `session-${s.id}`)!.max,
      },
    })
    expect(await sessions((x) => x.get(alice, s.id))).toMatchObject({ status: "deleted", title: null })
    const messages = await content((c) => c.listMessages(alice, s.id, {}))
    expect(messages.items.map((m) => m.content)).toEqual([""])

    // A rebuild from the log makes exactly the read models the purge left.
    expect(await rebuilt()).toEqual(await run(dumpReadModels()))

    // Other sessions are untouched.
    expect(await content((c) => c.listMessages(alice, kept.id, {}))).toEqual(before.kept)
    expect(await content((c) => c.listMessages(bob, bobs.id, {}))).toEqual(before.bobs)
    expect(await sessions((x) => x.get(alice, kept.id))).toEqual(before.keptSession)

    // A purged session takes no more writes, and is not purged twice.
    const refused = await failureOf(
      domain.runtime,
      Effect.flatMap(Content, (c) => c.appendMessages(alice, s.id, [{ role: "user", content: "x" }])),
    )
    expect(refused._tag).toBe("InvalidTransition")
    expect((await purge((p) => p.purge(serviceActor(), { sessionId: s.id }))).sessions).toEqual([])
  })

  it("keeps the log append-only for everything but the purge function", async () => {
    const { s } = await secretSession()
    for (const statement of [
      `update chronicle.events set data = '{}'::jsonb where stream_id = 'session-${s.id}'`,
      `delete from chronicle.events where stream_id = 'session-${s.id}'`,
    ]) {
      const exit = await domain.runtime.runPromiseExit(Effect.flatMap(Database, (db) => db.query(statement)))
      expect(exit._tag).toBe("Failure")
      expect(String(exit)).toMatch(/append-only/)
    }
    // Setting the flag by hand to anything but the transaction's own id lets nothing through.
    const forged = await domain.runtime.runPromiseExit(
      Effect.flatMap(Database, (db) =>
        db.transaction(
          Effect.gen(function* () {
            yield* db.query(`select set_config('chronicle.redacting', '1', true)`)
            yield* db.query(
              `update chronicle.events set data = '{}'::jsonb where stream_id = 'session-${s.id}'`,
            )
          }),
        ),
      ),
    )
    expect(String(forged)).toMatch(/append-only/)
    expect(Object.keys(await traces(SECRET)).length).toBeGreaterThan(0)
    // The purge function does what nothing else may.
    await purge((p) => p.purge(serviceActor(), { sessionId: s.id }))
    expect(await traces(SECRET)).toEqual({})
  })

  it("lets only the service role purge, and purges every session and file of an owner", async () => {
    const { alice, s, kept, bobs, bob } = await secretSession()
    const put = (actor: typeof alice, text: string, name: string) =>
      run(
        Effect.flatMap(Files, (f) =>
          f.put(actor, { content: new TextEncoder().encode(text), name, mimeType: "text/plain" }),
        ),
      )
    // Bytes only Alice has, and bytes Bob has too: the first go, the second stay.
    const own = await put(alice, `only alice ${SECRET}`, `notes ${SECRET}.txt`)
    const shared = await put(alice, "shared bytes", "shared.txt")
    const bobsFile = await put(bob, "shared bytes", "bob.txt")
    const hex = Buffer.from(`only alice ${SECRET}`).toString("hex")
    expect(Object.keys(await traces(hex)).length).toBe(1)
    const forbidden = await failureOf(
      domain.runtime,
      Effect.flatMap(Purge, (p) => p.purge(alice, { sessionId: s.id })),
    )
    expect(forbidden._tag).toBe("Forbidden")
    const owner = alice.kind === "user" ? alice.userId : ""
    const report = await purge((p) => p.purge(serviceActor(), { ownerId: owner }))
    expect(report.sessions.map((x) => x.id).sort()).toContain(kept.id)
    expect(report.sessions.map((x) => x.id)).toContain(s.id)
    expect(report).toMatchObject({ files: 3, blobs: 1 })
    expect(await traces(SECRET)).toEqual({})
    expect(await traces(hex)).toEqual({})
    expect((await run(Effect.flatMap(Files, (f) => f.get(alice, own.id)))).name).toBe("redacted")
    const erased = await failureOf(
      domain.runtime,
      Effect.flatMap(Files, (f) => f.content(alice, own.id)),
    )
    expect(erased._tag).toBe("NotFound")
    expect((await run(Effect.flatMap(Files, (f) => f.content(bob, bobsFile.id)))).file.sha256).toBe(
      shared.sha256,
    )
    expect((await sessions((x) => x.get(alice, kept.id))).status).toBe("deleted")
    expect((await content((c) => c.listMessages(bob, bobs.id, {}))).items.map((m) => m.content)).toEqual([
      "bob keeps this",
    ])
    expect(await rebuilt()).toEqual(await run(dumpReadModels()))
  })

  it("erases an owner's LangGraph threads and jobs: no trace of their text in any table or blob, others untouched", async () => {
    // Lengths that are multiples of 3: their base64 is found inside the base64 of a value that starts with them.
    const GRAPH = "Graph-Secret-Quokka-9"
    const BOBS = "Bob-Graph-Thread-Keep"
    const JOB = "Job-Secret-Narwhal-55"
    const b64 = (text: string) => Buffer.from(text).toString("base64")
    const hex = (text: string) => Buffer.from(text).toString("hex")
    const alice = newUser()
    const bob = newUser()
    const { graphs, jobs } = domain
    /** A thread with the text in its checkpoint, metadata, a list, a large value (in the blob store) and a write. */
    const thread = async (actor: typeof alice, text: string) => {
      const input = {
        threadId: "conversation-1",
        checkpointNs: "",
        checkpointId: "1ef0-0001",
        parentCheckpointId: null,
        checkpoint: { type: "json", data: b64(`${text} checkpoint`) },
        metadata: { source: text },
        channelVersions: { messages: "1", big: "1" },
        blobs: [
          {
            channel: "messages",
            version: "1",
            list: { base: null, keep: 0, items: [{ type: "json", data: b64(text) }] },
          },
          { channel: "big", version: "1", value: { type: "bytes", data: b64(text.repeat(4000)) } },
        ],
      }
      await graphs((g) => g.putCheckpoint(actor, input))
      await graphs((g) =>
        g.putWrites(actor, {
          threadId: "conversation-1",
          checkpointNs: "",
          checkpointId: "1ef0-0001",
          taskId: "task-1",
          taskPath: "",
          writes: [{ idx: 0, channel: "messages", value: { type: "json", data: b64(text) } }],
        }),
      )
    }
    await thread(alice, GRAPH)
    await thread(bob, BOBS)
    const bobsTuple = await graphs((g) => g.getTuple(bob, { threadId: "conversation-1", checkpointNs: "" }))
    expect(bobsTuple?.checkpoint.data).toBe(b64(`${BOBS} checkpoint`))

    // A session of Alice's with a job on it, and a job of her own with tasks and an artifact.
    const s = await sessions((x) => x.create(alice, { title: "with a job" }))
    const onSession = await jobs((j) =>
      j.create(alice, { type: "summarize", input: { q: JOB }, sessionId: s.id }),
    )
    const job = await jobs((j) => j.create(alice, { type: "research", input: { q: JOB } }))
    await jobs((j) => j.transition(alice, job.id, { type: "StartJob", worker: null }))
    await jobs((j) => j.transition(alice, job.id, { type: "ProgressJob", progress: 0.5, message: JOB }))
    const task = await jobs((j) => j.addTask(alice, job.id, { name: "step", input: { t: JOB } }))
    await jobs((j) =>
      j.updateTask(alice, job.id, { taskId: task.id, status: "failed", output: { o: JOB }, error: JOB }),
    )
    const file = await run(
      Effect.flatMap(Files, (f) =>
        f.put(alice, {
          content: new TextEncoder().encode(`artifact ${JOB}`),
          name: `out ${JOB}.txt`,
          mimeType: "text/plain",
        }),
      ),
    )
    await jobs((j) => j.recordArtifact(alice, job.id, { fileId: file.id, kind: "code" }))
    await jobs((j) => j.transition(alice, job.id, { type: "CompleteJob", output: { answer: JOB } }))
    await jobs((j) => j.transition(alice, onSession.id, { type: "FailJob", error: JOB, details: { d: JOB } }))
    const bobsJob = await jobs((j) => j.create(bob, { type: "research", input: { q: BOBS } }))
    // A sandbox on her session, with the text in its metadata, URL and a status change's reason.
    const sandbox = await run(
      Effect.flatMap(Sandboxes, (x) =>
        x.register(alice, {
          sessionId: s.id,
          provider: "e2b",
          externalId: "sbx-1",
          url: `https://${JOB}.example`,
          metadata: { note: JOB },
        }),
      ),
    )
    await run(
      Effect.flatMap(Sandboxes, (x) =>
        x.changeStatus(alice, sandbox.id, { status: "failed", reason: JOB, url: `https://${JOB}.example/2` }),
      ),
    )

    // A point-in-time snapshot copies the threads and jobs.
    const label = `threads_${Date.now().toString(36)}`
    expect(await snapshotNow(label)).toMatchObject({ state: "completed" })
    for (const needle of [GRAPH, b64(GRAPH), hex(GRAPH), JOB]) {
      expect(Object.keys(await traces(needle)).length).toBeGreaterThan(0)
    }
    expect(Object.keys(await traces(JOB))).toEqual(
      expect.arrayContaining([`analytics_asof_${label}.jobs`, `analytics_asof_${label}.tasks`]),
    )
    expect(Object.keys(await traces(b64(GRAPH)))).toEqual(
      expect.arrayContaining([
        `analytics_asof_${label}.graph_checkpoints`,
        `analytics_asof_${label}.graph_writes`,
      ]),
    )
    const owner = alice.kind === "user" ? alice.userId : ""
    const report = await purge((p) => p.purge(serviceActor(), { ownerId: owner }, { reason: "erasure" }))
    expect(report).toMatchObject({ graphThreads: 1, jobs: 2, sandboxes: 1 })
    for (const needle of [GRAPH, b64(GRAPH), hex(GRAPH), JOB, b64(JOB), hex(JOB)]) {
      expect(await traces(needle)).toEqual({})
    }
    // The log records each erasure.
    const audit = await sql<{ type: string; n: number }>(
      `select type, count(*)::int as n from chronicle.events
        where stream_id = any ($1::text[]) and type in ('GraphThreadPurged', 'JobPurged', 'SandboxPurged') group by type order by type`,
      [
        [
          `job-${job.id}`,
          `job-${onSession.id}`,
          `sandbox-${sandbox.id}`,
          ...(
            await sql<{ s: string }>(
              `select 'graph-' || id::text as s from chronicle.graph_threads where owner_id = $1::uuid`,
              [owner],
            )
          ).map((r) => r.s),
        ],
      ],
    )
    expect(audit).toEqual([
      { type: "GraphThreadPurged", n: 1 },
      { type: "JobPurged", n: 2 },
      { type: "SandboxPurged", n: 1 },
    ])
    // The thread reads as empty; the jobs keep their shape, without their content.
    expect(
      await graphs((g) => g.getTuple(alice, { threadId: "conversation-1", checkpointNs: "" })),
    ).toBeNull()
    expect(await jobs((j) => j.get(alice, job.id))).toMatchObject({
      state: "completed",
      input: null,
      output: null,
    })
    // Bob's thread and job are untouched, his large value's bytes too.
    expect(await graphs((g) => g.getTuple(bob, { threadId: "conversation-1", checkpointNs: "" }))).toEqual(
      bobsTuple,
    )
    expect((await jobs((j) => j.get(bob, bobsJob.id))).input).toEqual({ q: BOBS })
    expect(Object.keys(await traces(hex(BOBS)))).toEqual(["chronicle.blobs"])
    // A rebuild from the log makes exactly the read models the purge left.
    expect(await rebuilt()).toEqual(await run(dumpReadModels()))
    // The snapshot still holds the jobs as of its cursor, as the redacted log makes them.
    expect(
      await sql(`select state, input from "analytics_asof_${label}".jobs where id = $1`, [job.id]),
    ).toEqual([{ state: "completed", input: null }])
    // Not purged twice.
    expect(await purge((p) => p.purge(serviceActor(), { ownerId: owner }))).toMatchObject({
      graphThreads: 0,
      jobs: 0,
      sandboxes: 0,
    })
  })

  it("deletes a large value only purged streams name, and keeps one a thread names again after its purge", async () => {
    const { graphs } = domain
    const b64 = (text: string) => Buffer.from(text).toString("base64")
    const big = { type: "bytes", data: b64("Shared-Large-Value-42".repeat(4000)) }
    const put = (actor: ReturnType<typeof newUser>, checkpointId: string) =>
      graphs((g) =>
        g.putCheckpoint(actor, {
          threadId: "taken-up-again",
          checkpointNs: "",
          checkpointId,
          parentCheckpointId: null,
          checkpoint: { type: "json", data: b64("{}") },
          metadata: {},
          channelVersions: { big: "1" },
          blobs: [{ channel: "big", version: "1", value: big }],
        }),
      )
    const alice = newUser()
    const bob = newUser()
    const ownerOf = (actor: typeof alice) => (actor.kind === "user" ? actor.userId : "")
    await put(alice, "1ef0-0001")
    // Only her purged thread named the value: its bytes go.
    expect(await purge((p) => p.purge(serviceActor(), { ownerId: ownerOf(alice) }))).toMatchObject({
      graphThreads: 1,
      blobs: 1,
    })
    // She takes the thread up again with the same value (its stream goes on after the purge),
    // and Bob's thread holds it too. His erasure leaves the bytes her thread still names.
    await put(alice, "1ef0-0002")
    await put(bob, "1ef0-0001")
    expect(await purge((p) => p.purge(serviceActor(), { ownerId: ownerOf(bob) }))).toMatchObject({
      graphThreads: 1,
      blobs: 0,
    })
    const tuple = await graphs((g) => g.getTuple(alice, { threadId: "taken-up-again", checkpointNs: "" }))
    expect(tuple?.blobs).toEqual([{ channel: "big", version: "1", value: big }])
    // Her second erasure takes the thread again, and then the bytes.
    expect(await purge((p) => p.purge(serviceActor(), { ownerId: ownerOf(alice) }))).toMatchObject({
      graphThreads: 1,
      blobs: 1,
    })
  })

  it("purges, in the retention sweep, the sessions expired longer than the policy", async () => {
    const alice = newUser()
    const idle = await sessions((x) => x.create(alice, { title: `idle ${SECRET}-retained` }))
    const now = Date.now()
    const sweep = (hours: number) =>
      run(Effect.flatMap(Retention, (r) => r.sweep(new Date(now + hours * 3_600_000))))
    const expired = await sweep(25)
    expect(expired.expired).toBeGreaterThanOrEqual(1)
    expect((await sessions((x) => x.get(alice, idle.id))).status).toBe("expired")
    // Expired (now, by the clock of the log) six days before the sweep: kept; eight: purged.
    await sweep(6 * 24)
    expect((await sessions((x) => x.get(alice, idle.id))).title).toBe(`idle ${SECRET}-retained`)
    const purged = await sweep(8 * 24)
    expect(purged.purged).toBeGreaterThanOrEqual(1)
    expect(await sessions((x) => x.get(alice, idle.id))).toMatchObject({ status: "deleted", title: null })
    expect(await traces(`${SECRET}-retained`)).toEqual({})
  })

  /** A completed snapshot of every projection as of the head of the log. */
  const snapshotNow = (label: string) =>
    run(
      Effect.gen(function* () {
        const [db, store] = yield* Effect.all([Database, EventStore])
        const head = yield* store.head()
        return yield* Effect.flatMap(Projections, (p) =>
          Effect.flatMap(p.startSnapshot({ label, asOf: { cursor: head.cursor } }), (r) => p.execute(r.id)),
        ).pipe(
          Effect.provide(
            Projections.layer.pipe(
              Layer.provide(Layer.mergeAll(Layer.succeed(Database, db), Layer.succeed(EventStore, store))),
            ),
          ),
        )
      }),
    )

  it("erases a purged session from every completed snapshot: its rows there are made again from the redacted log", async () => {
    const { alice, s, child, kept } = await secretSession()
    const label = `purge_${Date.now().toString(36)}`
    const schema = `analytics_asof_${label}`
    const snapshot = await snapshotNow(label)
    expect(snapshot).toMatchObject({ state: "completed", kind: "snapshot" })
    // The snapshot copied the session's text.
    const copied = Object.keys(await traces(SECRET)).filter((t) => t.startsWith(`${schema}.`))
    expect(copied).toEqual(
      expect.arrayContaining([`${schema}.messages`, `${schema}.sessions`, `${schema}.drafts`]),
    )
    const keptRows = await sql(
      `select to_jsonb(m) - 'id' as m from "${schema}".messages m where session_id = $1 order by seq`,
      [kept.id],
    )
    expect(keptRows).toHaveLength(1)

    await purge((p) => p.purge(serviceActor(), { sessionId: s.id }))

    // No table of any chronicle or snapshot schema holds the text any more.
    expect(await traces(SECRET)).toEqual({})
    // The snapshot still knows the sessions as of its cursor, as the redacted log makes them.
    const rows = await sql<{ id: string; title: string | null; message_count: number; status: string }>(
      `select id::text, title, message_count, status from "${schema}".sessions where id = any ($1::uuid[]) order by id`,
      [[s.id, child.id]],
    )
    expect(rows.map((r) => r.id)).toEqual([s.id, child.id].sort())
    for (const row of rows) expect(row).toMatchObject({ title: null, status: "active" })
    const messages = await sql<{ content: string }>(
      `select content from "${schema}".messages where session_id = $1 order by seq`,
      [s.id],
    )
    expect(messages.map((m) => m.content).every((c) => c === "")).toBe(true)
    expect(messages.length).toBeGreaterThan(0)
    // Another session's rows in the snapshot are untouched, and so is its owner's data.
    expect(
      await sql(
        `select to_jsonb(m) - 'id' as m from "${schema}".messages m where session_id = $1 order by seq`,
        [kept.id],
      ),
    ).toEqual(keptRows)
    expect((await sessions((x) => x.get(alice, kept.id))).title).toBe("kept")
  })

  it("erases a purged session from a rebuild in progress: the swapped-in tables hold none of its text", async () => {
    const { s } = await secretSession()
    const build = Effect.gen(function* () {
      const [db, store] = yield* Effect.all([Database, EventStore])
      const engine = Projections.layer.pipe(
        Layer.provide(Layer.mergeAll(Layer.succeed(Database, db), Layer.succeed(EventStore, store))),
      )
      return { engine, store }
    })
    const { engine, store } = await run(build)
    await run(store.head())
    const started = await run(
      Effect.flatMap(Projections, (p) => p.startRebuild({ projections: ["sessions"] })).pipe(
        Effect.provide(engine),
      ),
    )
    // A worker has applied the log so far to the shadow tables, then pauses.
    const [claim] = await sql<{ generation: string }>(
      `update chronicle.projection_runs set worker = 'paused-worker', generation = generation + 1, heartbeat_at = now()
        where id = $1 returning generation::text`,
      [started.id],
    )
    await sql("select chronicle.prepare_projection_build($1, 'paused-worker', $2::bigint)", [
      started.id,
      claim!.generation,
    ])
    const [batch] = await sql<{ applied: number }>(
      "select applied from chronicle.projection_build_batch($1, 'paused-worker', $2::bigint, 100000)",
      [started.id, claim!.generation],
    )
    expect(batch!.applied).toBeGreaterThan(0)
    expect(Object.keys(await traces(SECRET)).some((t) => t.startsWith("chronicle_build_"))).toBe(true)

    await purge((p) => p.purge(serviceActor(), { sessionId: s.id }))
    expect(await traces(SECRET)).toEqual({})

    // Another worker takes the run over and swaps the shadow tables in: still no trace.
    await sql("update chronicle.projection_runs set worker = null where id = $1", [started.id])
    const finished = await run(
      Effect.flatMap(Projections, (p) => p.execute(started.id)).pipe(Effect.provide(engine)),
    )
    expect(finished).toMatchObject({ state: "completed", kind: "rebuild" })
    expect(await traces(SECRET)).toEqual({})
    expect(await rebuilt()).toEqual(await run(dumpReadModels()))
  })
})
