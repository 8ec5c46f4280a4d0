/**
 * The projection engine against real databases: rebuilds that never take the read models
 * down while appends continue, runs that resume after their worker dies without applying an
 * event twice, two daemons that never both apply, point-in-time snapshots, cancellation, and
 * a new registered version that rebuilds itself.
 */
import { randomUUID } from "node:crypto"
import { EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { dumpReadModels, Projections, type Run } from "../src/index.ts"
import {
  activityFromLog,
  activityTable,
  engineHarnessFor,
  engineOf,
  scratchFold,
  waitFor,
  writer,
} from "./engine-support.ts"
import { env, ev, sessionStream } from "./support.ts"

describe.each(testDatabases(env))("the projection engine on $name", (database) => {
  const { h, sessions } = engineHarnessFor(database, 4)

  it("rebuilds every projection while appends continue; readers never see an empty or half-built table", async () => {
    const engine = await engineOf(h)
    const before = await h.one<{ n: number }>("select count(*)::int as n from chronicle.messages")
    // A reader checks, as often as it can, that the tables are whole: no fewer messages than
    // before the rebuild began, and every session's counter equal to its effective messages.
    let readerStop = false
    const anomalies: Array<string> = []
    let reads = 0
    const reader = (async () => {
      while (!readerStop) {
        const [row] = await h.query<{ messages: number; sessions: number; counted: number; stored: number }>(
          `select (select count(*)::int from chronicle.messages) as messages,
                  (select count(*)::int from chronicle.sessions) as sessions,
                  (select count(*)::int from chronicle.messages m join chronicle.sessions s on s.id = m.session_id
                    where s.effective @> m.version) as counted,
                  (select coalesce(sum(message_count), 0)::int from chronicle.sessions) as stored`,
        )
        reads++
        if (row!.messages < before.n) anomalies.push(`only ${row!.messages} messages`)
        if (row!.sessions === 0) anomalies.push("no sessions")
        if (row!.counted !== row!.stored) anomalies.push(`counters ${row!.stored} ≠ rows ${row!.counted}`)
      }
    })()
    const writing = writer(h, sessions, 1_000)

    const progress: Array<Run> = []
    const run = await engine.run((p) =>
      Effect.flatMap(p.startRebuild(), (r) =>
        p.execute(r.id, { batchSize: 25, onProgress: (x) => progress.push(x) }),
      ),
    )
    const appended = await writing.stop()
    readerStop = true
    await reader
    await engine.dispose()

    expect(run).toMatchObject({ state: "completed", phase: "done", kind: "rebuild" })
    expect(run.projections).toEqual(
      expect.arrayContaining(["sessions", "jobs", "files", "sandboxes", "activity"]),
    )
    expect(appended).toBeGreaterThan(0)
    expect(progress.length).toBeGreaterThan(1)
    expect(progress.map((p) => p.eventsDone)).toEqual(
      [...progress.map((p) => p.eventsDone)].sort((a, b) => a - b),
    )
    expect(reads).toBeGreaterThan(0)
    expect(anomalies).toEqual([])
    // The swapped-in tables equal a from-scratch fold of the whole log, appends included.
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    // No shadow or retired schema is left behind; the projections are live at their version.
    expect(await h.query("select nspname from pg_namespace where nspname like 'chronicle\\_%'")).toEqual([])
    expect(
      await h.query(
        "select name from chronicle.projections where state <> 'live' or built_version <> version",
      ),
    ).toEqual([])
    // Index names, views and the analytics columns survived the swap.
    expect(
      await h.query(
        "select indexname from pg_indexes where schemaname = 'chronicle' and indexname = 'messages_session_seq_idx'",
      ),
    ).toHaveLength(1)
    const [summary] = await h.query<{ n: number }>("select count(*)::int as n from chronicle.session_summary")
    expect(summary!.n).toBeGreaterThan(0)
  })

  it("resumes a run whose worker died mid-way without applying any event twice", async () => {
    const first = await engineOf(h)
    const started = await first.run((p) => p.startRebuild({ projections: ["sessions", "activity"] }))
    // The first worker dies after three batches: it stops between two batch transactions, as a
    // killed process does (whatever it had committed stays, nothing more is written).
    let batches = 0
    const died = await first.runtime.runPromiseExit(
      Effect.flatMap(Projections, (p) =>
        p.execute(started.id, {
          batchSize: 10,
          onProgress: () => {
            if (++batches === 3) throw new Error("the worker died")
          },
        }),
      ),
    )
    expect(died._tag).toBe("Failure")
    await first.dispose()
    const halfway = await h.one<{ state: string; events_done: number; phase: string }>(
      "select state, events_done::int, phase from chronicle.projection_runs where id = $1",
      [started.id],
    )
    expect(halfway.state).toBe("running")
    expect(halfway.events_done).toBeGreaterThanOrEqual(20)

    // Time passes: its heartbeat goes stale, and another process's daemon takes the run over.
    await h.query(
      "update chronicle.projection_runs set heartbeat_at = now() - interval '1 minute' where id = $1",
      [started.id],
    )
    const second = await engineOf(h)
    await second.run((p) => p.tick())
    const done = await waitFor(
      () => second.run((p) => p.run(started.id)),
      (r) => r.state !== "running",
      "the resumed run",
    )
    await second.dispose()
    const events = await h.one<{ n: number }>("select count(*)::int as n from chronicle.events")
    expect(done).toMatchObject({ state: "completed", eventsDone: events.n })
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
  })

  it("lets one daemon at a time apply an async projection, and two of them never double-apply", async () => {
    const a = await engineOf(h)
    const b = await engineOf(h)
    const writing = writer(h, sessions, 1_000)
    const ticks = (engine: typeof a) =>
      (async () => {
        let applied = 0
        for (let i = 0; i < 15; i++) applied += await engine.run((p) => p.tick())
        return applied
      })()
    const [byA, byB] = await Promise.all([ticks(a), ticks(b)])
    await writing.stop()
    let caughtUp = 0
    // Whoever holds the lease catches up; the other is held off.
    const holder = await h.one<{ lease_owner: string }>(
      "select lease_owner from chronicle.projections where name = 'activity'",
    )
    expect(holder.lease_owner).not.toBeNull()
    const status = await waitFor(
      async () => {
        caughtUp += await a.run((p) => p.tick())
        caughtUp += await b.run((p) => p.tick())
        return a.run((p) => p.status())
      },
      (s) => s.projections.find((p) => p.name === "activity")?.lagEvents === 0,
      "activity to catch up",
    )
    await a.dispose()
    await b.dispose()
    expect(byA + byB + caughtUp).toBeGreaterThan(0)
    expect(status.projections.find((p) => p.name === "activity")).toMatchObject({
      lagEvents: 0,
      state: "live",
    })
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
  })

  it("builds a point-in-time snapshot equal to the read models at that cursor, lists and drops it", async () => {
    const engine = await engineOf(h)
    const head = await h.run(Effect.flatMap(EventStore, (s) => s.head()))
    const expected = await h.run(dumpReadModels())
    // History moves on: content, a rollback.
    await h.append(sessionStream(sessions[0]!), [
      ev.message(5_000, "after the snapshot point"),
      ev.rolledBack(1),
    ])
    const label = `t_${randomUUID().slice(0, 8)}`
    const run = await engine.run((p) =>
      Effect.flatMap(p.startSnapshot({ label, asOf: { cursor: head.cursor } }), (r) => p.execute(r.id)),
    )
    expect(run).toMatchObject({ state: "completed", kind: "snapshot", asOfCursor: head.cursor })
    expect(await h.run(dumpReadModels(undefined, `analytics_asof_${label}`))).toEqual(expected)
    // The analytics views exist in the snapshot too, over its own tables.
    const [viewRows] = await h.query<{ n: number }>(
      `select count(*)::int as n from "analytics_asof_${label}".session_summary`,
    )
    expect(viewRows!.n).toBe(expected.sessions!.length)
    expect((await engine.run((p) => p.snapshots())).map((s) => s.label)).toContain(label)
    const again = await engine.run((p) =>
      Effect.flip(p.startSnapshot({ label, asOf: { cursor: head.cursor } })),
    )
    expect(again._tag).toBe("InvalidTransition")
    const future = await engine.run((p) =>
      p.startSnapshot({
        label: `${label}_now`,
        asOf: { timestamp: new Date(Date.now() + 60_000).toISOString() },
      }),
    )
    expect(future.asOfCursor).toMatch(/^\d+$/)
    await engine.run((p) => p.cancel(future.id))
    await engine.run((p) => p.dropSnapshot(label))
    expect(
      await h.query("select 1 from pg_namespace where nspname = $1", [`analytics_asof_${label}`]),
    ).toEqual([])
    expect((await engine.run((p) => Effect.flip(p.dropSnapshot(label))))._tag).toBe("NotFound")
    expect((await engine.run((p) => Effect.flip(p.startRebuild({ projections: ["nope"] }))))._tag).toBe(
      "NotFound",
    )
    await engine.dispose()
  })

  it("cancels a rebuild: the live tables stay, the shadow goes", async () => {
    const engine = await engineOf(h)
    const before = await h.run(dumpReadModels())
    const started = await engine.run((p) => p.startRebuild({ projections: ["sessions"] }))
    const conflict = await engine.run((p) => Effect.flip(p.startRebuild({ projections: ["sessions"] })))
    expect(conflict._tag).toBe("InvalidTransition")
    let cancelling: Promise<unknown> | undefined
    const run = await engine.run((p) =>
      p.execute(started.id, {
        batchSize: 10,
        onProgress: (r) => {
          if (cancelling === undefined && r.eventsDone >= 10)
            cancelling = engine.run((q) => q.cancel(started.id))
        },
      }),
    )
    await cancelling
    await engine.dispose()
    expect(run.state).toBe("cancelled")
    expect(run.eventsDone).toBeLessThan(run.eventsTotal)
    expect(await h.run(dumpReadModels())).toEqual(before)
    expect(await h.query("select nspname from pg_namespace where nspname like 'chronicle\\_%'")).toEqual([])
    expect(await h.one("select state from chronicle.projections where name = 'sessions'")).toEqual({
      state: "live",
    })
  })

  it("rebuilds a projection by itself when a new version is registered", async () => {
    const engine = await engineOf(h)
    await h.query(`select chronicle.register_projection('activity', 2, 'async', 'chronicle.project_activity',
                     array['activity_streams', 'activity_daily', 'activity_daily_drafts'], array['session', 'job'])`)
    expect(
      await h.one("select state, built_version from chronicle.projections where name = 'activity'"),
    ).toEqual({
      state: "rebuilding",
      built_version: 1,
    })
    await engine.run((p) => p.tick())
    await waitFor(
      () =>
        h.one<{ state: string; built_version: number }>(
          "select state, built_version from chronicle.projections where name = 'activity'",
        ),
      (r) => r.state === "live" && r.built_version === 2,
      "version 2 to be built",
    )
    // The daemon applies what arrived after the build's cursor.
    await waitFor(
      async () => {
        await engine.run((p) => p.tick())
        return engine.run((p) => p.status())
      },
      (s) => s.projections.find((p) => p.name === "activity")?.lagEvents === 0,
      "activity to catch up",
    )
    await engine.dispose()
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
  })
})
