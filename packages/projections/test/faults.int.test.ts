/**
 * The projection engine under faults: a swap that never keeps appends waiting on a reader, a
 * failed rebuild that ends failed (error recorded, schema dropped) and is retried with
 * back-off rather than in a loop, a handler's error that fails its run visibly, a worker
 * paused past the takeover window that can change nothing, and rebuilds that fold with the
 * registered handler (the set-wise path serves only the versions it was written for). Also:
 * snapshots keep their as-of selector as an object, runs are born claimed, and swapped-in
 * tables keep the live tables' storage parameters.
 */
import { randomUUID } from "node:crypto"
import { Database, EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels, type Run, readModelTables } from "../src/index.ts"
import {
  activityFromLog,
  activityRows,
  activityTable,
  engineHarnessFor,
  engineOf,
  scratchFold,
  startSessions,
  waitFor,
  writer,
} from "./engine-support.ts"
import { env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"
import { fillLog } from "./workload.ts"

/** A promise and the function that resolves it. */
const gate = () => {
  let open!: () => void
  const opened = new Promise<void>((resolve) => {
    open = resolve
  })
  return { open, opened }
}

/** The tables of the `sessions` projection: every read model but those of jobs, files and sandboxes. */
const SESSION_TABLES = readModelTables.filter(
  (table) => !["files", "jobs", "tasks", "artifacts", "sandboxes"].includes(table),
)

/**
 * The sessions and activity read models as a from-scratch fold of the whole log by the
 * handlers registered now, one event at a time in the log's order, into a scratch schema (in a
 * transaction that is rolled back).
 */
const foldByRegisteredHandlers = (h: Harness) =>
  h.run(
    Effect.gen(function* () {
      yield* Effect.flatMap(EventStore, (store) => store.sequenceAll())
      const db = yield* Database
      let result: { sessions: unknown; activity: unknown } | undefined
      yield* db
        .transaction(
          Effect.gen(function* () {
            yield* db.query(`do $$
              declare
                t text;
                e chronicle.events;
              begin
                create schema fold_scratch;
                for t in select unnest(p.tables) from chronicle.projections p where p.name in ('sessions', 'activity') loop
                  execute format('create table fold_scratch.%I (like chronicle.%I including all)', t, t);
                end loop;
                perform set_config('search_path', 'fold_scratch', true);
                for e in select ev.* from chronicle.event_seq q
                           join chronicle.events ev on ev.global_position = q.global_position order by q.seq loop
                  perform chronicle.project_selected(e, array['sessions', 'activity']);
                end loop;
                perform set_config('search_path', 'chronicle', true);
              end $$`)
            result = {
              sessions: yield* dumpReadModels(SESSION_TABLES, "fold_scratch"),
              activity: yield* db.query(activityRows("fold_scratch")),
            }
            return yield* Effect.fail("roll back" as const)
          }),
        )
        .pipe(Effect.ignore)
      return result!
    }),
  )

const buildSchemas = (h: Harness) =>
  h.query<{ nspname: string }>(
    "select nspname from pg_namespace where nspname like 'chronicle\\_build\\_%' or nspname like 'chronicle\\_retired\\_%'",
  )

const rebuildRunsOf = (h: Harness, name: string) =>
  h.query<{ id: string; state: string; error: string | null }>(
    `select id::text, state, error from chronicle.projection_runs
      where kind = 'rebuild' and $1 = any (projections) order by started_at`,
    [name],
  )

/** Moves every run's times back, as if that many seconds had passed since. */
const timePasses = (h: Harness, seconds: number) =>
  h.query(
    `update chronicle.projection_runs
        set started_at = started_at - make_interval(secs => $1),
            finished_at = finished_at - make_interval(secs => $1),
            heartbeat_at = heartbeat_at - make_interval(secs => $1)`,
    [seconds],
  )

const nextVersion = (h: Harness, name: string) =>
  h
    .one<{ v: number }>("select version + 1 as v from chronicle.projections where name = $1", [name])
    .then((r) => r.v)

describe.each(testDatabases(env))("the projection engine under faults on $name", (database) => {
  const { h, sessions } = engineHarnessFor(database, 3)

  it("ends a failed rebuild failed with its error and no schema left, keeps the live tables, and retries with back-off", async () => {
    const engine = await engineOf(h)
    const before = await h.run(dumpReadModels(SESSION_TABLES))
    await h.query(
      "create materialized view chronicle.fault_titles as select id, title from chronicle.sessions",
    )
    const version = await nextVersion(h, "sessions")
    await h.query(
      `select chronicle.register_projection('sessions', $1, 'inline', 'chronicle.project_session',
         (select tables from chronicle.projections where name = 'sessions'), array['session'])`,
      [version],
    )
    const settled = async (count: number) =>
      waitFor(
        () => rebuildRunsOf(h, "sessions"),
        (runs) => runs.length === count && runs.every((r) => r.state !== "running"),
        `${count} rebuild run(s) of sessions to end`,
      )

    await engine.run((p) => p.tick())
    const [first] = await settled(1)
    expect(first!.state).toBe("failed")
    expect(await buildSchemas(h)).toEqual([])
    // Not in a loop: no new attempt before the back-off (10 s after one failure) has passed.
    for (let i = 0; i < 5; i++) await engine.run((p) => p.tick())
    expect(await rebuildRunsOf(h, "sessions")).toHaveLength(1)
    expect(first!.error).toContain("materialized view chronicle.fault_titles")
    const failing = (await engine.run((p) => p.status())).projections.find((p) => p.name === "sessions")!
    expect(failing).toMatchObject({ state: "failed", builtVersion: version - 1, version })
    expect(failing.lastError).toContain("materialized view chronicle.fault_titles")
    expect(failing.retryAt).not.toBeNull()
    // Its last good tables keep serving.
    expect(await h.run(dumpReadModels(SESSION_TABLES))).toEqual(before)

    await timePasses(h, 11)
    await engine.run((p) => p.tick())
    const second = await settled(2)
    expect(second.map((r) => r.state)).toEqual(["failed", "failed"])
    expect(await buildSchemas(h)).toEqual([])
    // The back-off doubles: 11 s after the second failure is not yet 20 s.
    await timePasses(h, 11)
    for (let i = 0; i < 3; i++) await engine.run((p) => p.tick())
    expect(await rebuildRunsOf(h, "sessions")).toHaveLength(2)

    // Once the obstacle is gone, the next attempt goes through and the error is cleared.
    await h.query("drop materialized view chronicle.fault_titles")
    await timePasses(h, 10)
    await engine.run((p) => p.tick())
    const third = await settled(3)
    expect(third.map((r) => r.state)).toEqual(["failed", "failed", "completed"])
    const live = (await engine.run((p) => p.status())).projections.find((p) => p.name === "sessions")!
    expect(live).toMatchObject({ state: "live", builtVersion: version, lastError: null, retryAt: null })
    expect(await buildSchemas(h)).toEqual([])
    await engine.dispose()
    expect(await h.run(dumpReadModels(SESSION_TABLES))).toEqual(before)
  })

  it("fails a rebuild whose handler raises, with the handler's error, visibly and once", async () => {
    const engine = await engineOf(h)
    await h.append(sessionStream(sessions[0]!), [ev.message(7_000, "poison")])
    await h.query(
      "create table chronicle.fault_counts (stream_id text primary key, n integer not null default 0)",
    )
    await h.query(`create function chronicle.project_fault_counts(e chronicle.events) returns void
      language plpgsql as $$
      begin
        if e.type = 'MessageAppended' and e.data ->> 'content' = 'poison' then
          raise exception 'cannot count a poisoned message in %', e.stream_id;
        end if;
        insert into fault_counts as f (stream_id, n) values (e.stream_id, 1)
        on conflict (stream_id) do update set n = f.n + 1;
      end $$`)
    await h.query(`select chronicle.register_projection('fault_counts', 1, 'async', 'chronicle.project_fault_counts',
                     array['fault_counts'], array['session'])`)
    expect(await h.one("select state from chronicle.projections where name = 'fault_counts'")).toEqual({
      state: "backfilling",
    })
    await engine.run((p) => p.tick())
    const [run] = await waitFor(
      () => rebuildRunsOf(h, "fault_counts"),
      (runs) => runs.length === 1 && runs[0]!.state !== "running",
      "the backfill to end",
      400,
    )
    expect(run!.state).toBe("failed")
    expect(run!.error).toContain("cannot count a poisoned message in session-")
    expect(await buildSchemas(h)).toEqual([])
    const status = (await engine.run((p) => p.status())).projections.find((p) => p.name === "fault_counts")!
    expect(status.state).toBe("failed")
    expect(status.lastError).toContain("cannot count a poisoned message")
    expect(status.retryAt).not.toBeNull()
    for (let i = 0; i < 3; i++) await engine.run((p) => p.tick())
    expect(await rebuildRunsOf(h, "fault_counts")).toHaveLength(1)
    await engine.dispose()
    await h.query("delete from chronicle.projections where name = 'fault_counts'")
    await h.query("select chronicle.refresh_projection_dispatch()")
  })

  it("lets a worker paused past the takeover window change nothing once another has claimed its run", async () => {
    const a = await engineOf(h)
    const b = await engineOf(h)
    const started = await a.run((p) => p.startRebuild({ projections: ["sessions", "activity"] }))
    const aPaused = gate()
    const aResumes = gate()
    let aBatches = 0
    const aRun = a
      .run((p) =>
        p.execute(started.id, {
          batchSize: 10,
          onProgress: async () => {
            if (++aBatches !== 3) return
            aPaused.open()
            await aResumes.opened
          },
        }),
      )
      .catch((error: unknown) => error)
    await aPaused.opened
    // A stops reporting for longer than the takeover window; B takes the run over.
    await h.query(
      "update chronicle.projection_runs set heartbeat_at = now() - interval '1 minute' where id = $1",
      [started.id],
    )
    const bPaused = gate()
    const bResumes = gate()
    let bBatches = 0
    const bRun = b.run((p) =>
      p.execute(started.id, {
        batchSize: 10,
        onProgress: async () => {
          if (++bBatches !== 1) return
          bPaused.open()
          await bResumes.opened
        },
      }),
    )
    await bPaused.opened
    // A wakes up while B holds the run: whatever it tries is refused.
    aResumes.open()
    const aSaw = await aRun
    const midway = await h.one<{ state: string; error: string | null }>(
      "select state, error from chronicle.projection_runs where id = $1",
      [started.id],
    )
    expect(midway).toEqual({ state: "running", error: null })
    expect(
      await h.query(
        "select name from chronicle.projections where state = 'failed' or last_error is not null",
      ),
    ).toEqual([])
    expect((aSaw as Run).state).toBe("running")
    bResumes.open()
    const done = await bRun
    await a.dispose()
    await b.dispose()
    expect(done).toMatchObject({ state: "completed", error: null })
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
  })

  it("rebuilds with a changed handler equal a fold of the log by that handler", async () => {
    const engine = await engineOf(h)
    // activity v-next counts assistants' messages only; sessions v-next stores messages upper-cased.
    await h.query(`create function chronicle.project_activity_assistants(e chronicle.events) returns void
      language plpgsql as $$
      begin
        perform chronicle.project_activity(e);
        if e.type = 'MessageAppended' and e.data ->> 'role' <> 'assistant' then
          update activity_daily a set messages = a.messages - 1
            from activity_streams s
           where s.stream_id = e.stream_id and a.owner_id = s.owner_id
             and a.day = (e.recorded_at at time zone 'UTC')::date;
        end if;
      end $$`)
    await h.query(`create function chronicle.project_session_shouting(e chronicle.events) returns void
      language plpgsql as $$
      begin
        perform chronicle.project_session(e);
        if e.type = 'MessageAppended' then
          update messages m set content = upper(m.content)
           where m.session_id = chronicle.stream_uuid(e.stream_id) and m.message_id = (e.data ->> 'messageId')::uuid;
        end if;
      end $$`)
    await h.query(
      `select chronicle.register_projection('activity', $1, 'async', 'chronicle.project_activity_assistants',
         array['activity_streams', 'activity_daily', 'activity_daily_drafts'], array['session', 'job'])`,
      [await nextVersion(h, "activity")],
    )
    await h.query(
      `select chronicle.register_projection('sessions', $1, 'inline', 'chronicle.project_session_shouting',
         (select tables from chronicle.projections where name = 'sessions'), array['session'])`,
      [await nextVersion(h, "sessions")],
    )
    const run = await engine.run((p) =>
      Effect.flatMap(p.startRebuild({ projections: ["sessions", "activity"] }), (r) =>
        p.execute(r.id, { batchSize: 50 }),
      ),
    )
    expect(run.state).toBe("completed")
    const fold = await foldByRegisteredHandlers(h)
    // The handlers do change the result (else this would prove nothing).
    expect(fold.activity).not.toEqual(await activityFromLog(h))
    expect(JSON.stringify(fold.sessions)).not.toMatch(/"content":"first"/)
    expect(await h.run(dumpReadModels(SESSION_TABLES))).toEqual(fold.sessions)
    expect(await activityTable(h)).toEqual(fold.activity)
    // Wherever the batches cut the log, the rebuild is that fold.
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 400 }), async (batchSize) => {
        const again = await engine.run((p) =>
          Effect.flatMap(p.startRebuild({ projections: ["activity"] }), (r) =>
            p.execute(r.id, { batchSize }),
          ),
        )
        expect(again.state).toBe("completed")
        expect(await activityTable(h)).toEqual(fold.activity)
      }),
      { numRuns: 4 },
    )
    await engine.dispose()
  })

  it("keeps the live tables' storage parameters across a rebuild", async () => {
    const engine = await engineOf(h)
    const options = () =>
      h
        .one<{ options: Array<string> | null }>(
          "select reloptions as options from pg_class where oid = 'chronicle.sessions'::regclass",
        )
        .then((r) => r.options)
    expect(await options()).toEqual(["fillfactor=80"])
    const run = await engine.run((p) =>
      Effect.flatMap(p.startRebuild({ projections: ["sessions"] }), (r) => p.execute(r.id)),
    )
    await engine.dispose()
    expect(run.state).toBe("completed")
    expect(await options()).toEqual(["fillfactor=80"])
  })

  it("keeps a snapshot's as-of selector as an object", async () => {
    const engine = await engineOf(h)
    const head = await h.run(Effect.flatMap(EventStore, (s) => s.head()))
    const label = `asof_${randomUUID().slice(0, 8)}`
    const run = await engine.run((p) => p.startSnapshot({ label, asOf: { cursor: head.cursor } }))
    expect(run.asOf).toEqual({ cursor: head.cursor })
    expect(
      await h.one(
        "select jsonb_typeof(as_of) as type, as_of ->> 'cursor' as cursor from chronicle.projection_runs where id = $1",
        [run.id],
      ),
    ).toEqual({ type: "object", cursor: head.cursor })
    await engine.run((p) => p.cancel(run.id))
    await engine.dispose()
  })

  it("creates a run already claimed by its creator, so another daemon cannot take it first", async () => {
    const creator = await engineOf(h)
    const other = await engineOf(h)
    const started = await creator.run((p) => p.startRebuild({ projections: ["jobs"] }))
    const claimed = await h.one<{ worker: string | null; heartbeat: boolean }>(
      "select worker, heartbeat_at is not null as heartbeat from chronicle.projection_runs where id = $1",
      [started.id],
    )
    expect(claimed.worker).not.toBeNull()
    expect(claimed.heartbeat).toBe(true)
    // Another process's daemon leaves it to its creator.
    const seen = await other.run((p) => p.execute(started.id))
    expect(seen).toMatchObject({ state: "running", eventsDone: 0 })
    expect(await h.one("select worker from chronicle.projection_runs where id = $1", [started.id])).toEqual({
      worker: claimed.worker,
    })
    const done = await creator.run((p) => p.execute(started.id))
    expect(done.state).toBe("completed")
    await creator.dispose()
    await other.dispose()
  })
})

// Only a server runs a reader beside appends; the embedded database serialises transactions.
describe.each(testDatabases(env).filter((d) => d.name === "postgres"))(
  "the swap beside a long reader on $name",
  (database) => {
    let h: Harness
    beforeAll(async () => {
      h = await makeHarness(database, { max: 8 })
      await fillLog(h)
    })
    afterAll(() => h.dispose())

    it("never keeps appends waiting on a reader of a table it swaps", async () => {
      const sessions = await startSessions(h, 3)
      // The reader: a transaction that has read chronicle.sessions and stays open.
      const reading = gate()
      const release = gate()
      let readerPid = 0
      const reader = h.run(
        Effect.flatMap(Database, (db) =>
          db.transaction(
            Effect.gen(function* () {
              const [row] = yield* db.query<{ pid: number }>(
                "select pg_backend_pid() as pid, (select count(*) from chronicle.sessions) as n",
              )
              readerPid = row!.pid
              reading.open()
              yield* Effect.promise(() => release.opened)
            }),
          ),
        ),
      )
      await reading.opened
      const writing = writer(h, sessions, 1_000)
      const engine = await engineOf(h)
      const started = await engine.run((p) => p.startRebuild({ projections: ["sessions"] }))
      const running = engine.run((p) => p.execute(started.id, { batchSize: 50 }))
      // While the reader holds its lock, watch who waits on it: the swap must not (appends
      // would queue behind the swap), however often it tries.
      const eventCount = () =>
        h.one<{ n: number }>("select count(*)::int as n from chronicle.events").then((r) => r.n)
      const before = await eventCount()
      let waitingOnReader = 0
      let samples = 0
      let attempts = 0
      for (let i = 0; i < 2_000 && attempts < 4 && waitingOnReader === 0; i++) {
        const [row] = await h.query<{ waiting: number; attempts: number }>(
          `select (select count(*)::int from pg_stat_activity a where $1::int = any (pg_blocking_pids(a.pid))) as waiting,
                  (select coalesce((to_jsonb(r) ->> 'swap_attempts')::int, 0)
                     from chronicle.projection_runs r where r.id = $2) as attempts`,
          [readerPid, started.id],
        )
        samples++
        waitingOnReader += row!.waiting
        attempts = row!.attempts
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      const appendedMeanwhile = (await eventCount()) - before
      release.open()
      await reader
      const run = await running
      const appended = await writing.stop()
      await engine.dispose()
      expect(samples).toBeGreaterThan(0)
      expect(waitingOnReader).toBe(0)
      expect(attempts).toBeGreaterThanOrEqual(4)
      expect(appendedMeanwhile).toBeGreaterThan(0)
      expect(appended).toBeGreaterThan(0)
      expect(run).toMatchObject({ state: "completed" })
      expect(run.swapAttempts).toBeGreaterThanOrEqual(4)
      expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    })

    it("after its patient attempts, waits a moment for a table's readers, and swaps once they are gone", async () => {
      const id = randomUUID()
      await h.append(sessionStream(id), [ev.started(id, randomUUID()), ev.message(1, "first")])
      const reading = gate()
      const release = gate()
      const reader = h.run(
        Effect.flatMap(Database, (db) =>
          db.transaction(
            Effect.gen(function* () {
              yield* db.query("select count(*) from chronicle.sessions")
              reading.open()
              yield* Effect.promise(() => release.opened)
            }),
          ),
        ),
      )
      await reading.opened
      const writing = writer(h, [id], 5_000)
      const engine = await engineOf(h)
      const started = await engine.run((p) => p.startRebuild({ projections: ["sessions"] }))
      // From the second attempt on, the swap waits (briefly) for the reader rather than NOWAIT.
      const running = engine.run((p) => p.execute(started.id, { batchSize: 50, swapPatientAfter: 1 }))
      await waitFor(
        () =>
          h.one<{ attempts: number }>(
            "select swap_attempts as attempts from chronicle.projection_runs where id = $1",
            [started.id],
          ),
        (r) => r.attempts >= 3,
        "three deferred swaps",
      )
      release.open()
      await reader
      const run = await running
      const appended = await writing.stop()
      await engine.dispose()
      expect(run.state).toBe("completed")
      expect(run.swapAttempts).toBeGreaterThanOrEqual(3)
      expect(appended).toBeGreaterThan(0)
      expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    })
  },
)
