/**
 * A rebuild that starts from a completed snapshot instead of the start of the log: its shadow
 * tables are seeded with the snapshot's, its cursor starts at the snapshot's bound, it catches
 * up while appends continue and swaps as a rebuild from the log does — and ends with the same
 * rows. Refused when the snapshot cannot stand for the log: unknown or dropped, not completed,
 * missing a projection, built with another version (or before versions were recorded).
 */
import { randomUUID } from "node:crypto"
import { EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { dumpReadModels, Projections, type Run } from "../src/index.ts"
import {
  activityFromLog,
  activityTable,
  engineOf,
  scratchFold,
  startSessions,
  writer,
} from "./engine-support.ts"
import { env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"
import { fillLog } from "./workload.ts"

const eventCount = (h: Harness) => h.one<{ n: number }>("select count(*)::int as n from chronicle.events")

const leftoverBuildSchemas = (h: Harness) =>
  h.query("select nspname from pg_namespace where nspname like 'chronicle\\_%'")

describe.each(testDatabases(env))("rebuilding from a snapshot on $name", (database) => {
  let h: Harness
  let sessions: Array<string>
  let owner: string
  /** Appends more history after a snapshot: content, a rollback, and a fork of a seeded session. */
  const moveOn = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const id = sessions[i % sessions.length]!
      await h.append(sessionStream(id), [ev.message(1_000 + i, `after ${i}`), ev.toolRun()])
    }
    await h.append(sessionStream(sessions[0]!), [ev.rolledBack(1)])
    const child = randomUUID()
    await h.append(sessionStream(child), [
      ev.forked({ sessionId: child, ownerId: owner, parentId: sessions[1]!, atVersion: 2 }),
    ])
  }
  /** A completed snapshot of every projection as of the head; returns its run. */
  const snapshotNow = async (label: string, projections?: ReadonlyArray<string>) => {
    const engine = await engineOf(h)
    const head = await h.run(Effect.flatMap(EventStore, (s) => s.head()))
    const run = await engine.run((p) =>
      Effect.flatMap(
        p.startSnapshot({
          label,
          asOf: { cursor: head.cursor },
          ...(projections === undefined ? {} : { projections }),
        }),
        (r) => p.execute(r.id),
      ),
    )
    await engine.dispose()
    expect(run).toMatchObject({ state: "completed", kind: "snapshot" })
    return run
  }

  beforeAll(async () => {
    h = await makeHarness(database)
    await fillLog(h)
    owner = randomUUID()
    sessions = await startSessions(h, 4, owner)
  })
  afterAll(() => h.dispose())

  it("seeds the shadow tables from the snapshot, catches up while appends continue, and ends equal to a rebuild from the log", async () => {
    const label = `seed_${randomUUID().slice(0, 8)}`
    const snapshot = await snapshotNow(label)
    const atSnapshot = await h.one<{ n: number }>(
      "select count(*)::int as n from chronicle.event_seq where seq <= $1::bigint",
      [snapshot.asOfCursor],
    )
    expect(snapshot.eventsDone).toBe(atSnapshot.n)
    await moveOn(30)

    const engine = await engineOf(h)
    const started = await engine.run((p) => p.startRebuild({ fromSnapshot: label }))
    // Progress starts where the snapshot ends, out of the whole log.
    expect(started).toMatchObject({
      kind: "rebuild",
      state: "running",
      fromSnapshot: label,
      eventsSeeded: snapshot.eventsDone,
      eventsDone: snapshot.eventsDone,
      eventsTotal: (await eventCount(h)).n,
    })
    const writing = writer(h, sessions, 2_000)
    const progress: Array<Run> = []
    const run = await engine.run((p) =>
      p.execute(started.id, { batchSize: 10, onProgress: (r) => progress.push(r) }),
    )
    const appended = await writing.stop()
    const snapshots = await engine.run((p) => p.snapshots())
    // The async projection follows what was appended after the swap.
    await vi.waitFor(
      async () => {
        await engine.run((p) => p.tick())
        const status = await engine.run((p) => p.status())
        expect(status.projections.find((p) => p.name === "activity")).toMatchObject({
          lagEvents: 0,
          state: "live",
        })
      },
      { timeout: 60_000, interval: 50 },
    )
    await engine.dispose()

    expect(run).toMatchObject({ state: "completed", phase: "done", fromSnapshot: label })
    expect(appended).toBeGreaterThan(0)
    expect(progress.length).toBeGreaterThan(1)
    const done = progress.map((p) => p.eventsDone)
    expect(done).toEqual([...done].sort((a, b) => a - b))
    expect(done[0]).toBeGreaterThanOrEqual(snapshot.eventsDone)
    // Every event once: the seed's, then the rest of the log, appends during the run included.
    // (The writer's appends after the swap went to the live tables inline.)
    const upToSwap = await h.one<{ n: number }>(
      `select count(*)::int as n from chronicle.event_seq q, chronicle.projection_runs r
        where r.id = $1 and q.seq <= r.cursor_seq`,
      [run.id],
    )
    expect(run.eventsDone).toBe(upToSwap.n)
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
    expect(await leftoverBuildSchemas(h)).toEqual([])
    expect(
      await h.query(
        "select name from chronicle.projections where state <> 'live' or built_version <> version",
      ),
    ).toEqual([])
    // The snapshot is still there, with the versions it was built with.
    expect(snapshots.find((s) => s.label === label)?.versions).toEqual(
      Object.fromEntries(
        (
          await h.query<{ name: string; version: number }>("select name, version from chronicle.projections")
        ).map((p) => [p.name, p.version]),
      ),
    )
  })

  it("refuses an unknown, dropped, unfinished or partial snapshot, or one made before versions were recorded", async () => {
    const engine = await engineOf(h)
    const unknown = await engine.refusal((p) => p.startRebuild({ fromSnapshot: "no_such_snapshot" }))
    expect(unknown).toMatchObject({ _tag: "NotFound", entity: "snapshot", id: "no_such_snapshot" })

    const partial = `part_${randomUUID().slice(0, 8)}`
    await snapshotNow(partial, ["sessions"])
    const missing = await engine.refusal((p) =>
      p.startRebuild({ projections: ["sessions", "jobs"], fromSnapshot: partial }),
    )
    expect(missing).toMatchObject({ _tag: "InvalidCommand", path: "fromSnapshot" })
    expect(missing.message).toBe(
      `fromSnapshot: snapshot ${partial} holds sessions, not jobs; name only projections it holds, or rebuild the others from the log`,
    )
    // Every projection (the default) is more than it holds, too.
    expect((await engine.refusal((p) => p.startRebuild({ fromSnapshot: partial })))._tag).toBe(
      "InvalidCommand",
    )

    // A snapshot from before this release recorded no versions.
    await h.query("update chronicle.projection_runs set versions = null where label = $1", [partial])
    const old = await engine.refusal((p) =>
      p.startRebuild({ projections: ["sessions"], fromSnapshot: partial }),
    )
    expect(old).toMatchObject({ _tag: "InvalidTransition", entity: "snapshot", id: partial })
    expect(old.message).toBe(
      `Cannot rebuild from snapshot ${partial} (versions unknown): it was built before snapshots recorded the versions of their projections; rebuild from the log`,
    )

    // Still being built, then cancelled.
    const pending = `pend_${randomUUID().slice(0, 8)}`
    const head = await h.run(Effect.flatMap(EventStore, (s) => s.head()))
    const building = await engine.run((p) =>
      p.startSnapshot({ label: pending, asOf: { cursor: head.cursor } }),
    )
    const unfinished = await engine.refusal((p) => p.startRebuild({ fromSnapshot: pending }))
    expect(unfinished).toMatchObject({ _tag: "InvalidTransition", state: "building" })
    expect(unfinished.message).toContain("it is still being built")
    await engine.run((p) => p.cancel(building.id))
    const cancelled = await engine.refusal((p) => p.startRebuild({ fromSnapshot: pending }))
    expect(cancelled).toMatchObject({ _tag: "InvalidTransition", state: "cancelled" })

    // Tables that no longer match the live ones (changed by hand), then dropped: as if it
    // never existed.
    const gone = `gone_${randomUUID().slice(0, 8)}`
    await snapshotNow(gone, ["sessions"])
    await h.query(`alter table "analytics_asof_${gone}".messages add column extra integer`)
    const changed = await engine.refusal((p) =>
      p.startRebuild({ projections: ["sessions"], fromSnapshot: gone }),
    )
    expect(changed).toMatchObject({ _tag: "InvalidTransition", state: "tables differ" })
    expect(changed.message).toContain(
      `its copy of messages in analytics_asof_${gone} is missing or differs from the live definition; rebuild from the log`,
    )
    await engine.run((p) => p.dropSnapshot(gone))
    expect(
      await engine.refusal((p) => p.startRebuild({ projections: ["sessions"], fromSnapshot: gone })),
    ).toMatchObject({ _tag: "NotFound", entity: "snapshot", id: gone })
    // Nothing was registered by any refusal.
    expect(
      await h.query("select id from chronicle.projection_runs where kind = 'rebuild' and state = 'running'"),
    ).toEqual([])
    await engine.dispose()
  })

  it("cancels a rebuild from a snapshot: the live tables stay, the shadow goes, the snapshot stays", async () => {
    const label = `cncl_${randomUUID().slice(0, 8)}`
    const snapshot = await snapshotNow(label, ["sessions", "activity"])
    await moveOn(40)
    const before = await h.run(dumpReadModels())
    const activityBefore = await activityTable(h)
    const engine = await engineOf(h)
    const started = await engine.run((p) =>
      p.startRebuild({ projections: ["sessions", "activity"], fromSnapshot: label }),
    )
    // The snapshot it has yet to copy cannot be dropped meanwhile.
    expect(await engine.refusal((p) => p.dropSnapshot(label))).toMatchObject({
      _tag: "InvalidTransition",
      state: "in use",
    })
    // It stops after its first batch — before a swap could begin, whatever the watermark
    // allowed that batch — seeded and part-way through, and is cancelled there.
    const stopped = await engine.runtime.runPromiseExit(
      Effect.flatMap(Projections, (p) =>
        p.execute(started.id, {
          batchSize: 10,
          onProgress: () => {
            throw new Error("stop here")
          },
        }),
      ),
    )
    expect(stopped._tag).toBe("Failure")
    expect(
      await h.one(
        "select state, seeded_at is not null as seeded from chronicle.projection_runs where id = $1",
        [started.id],
      ),
    ).toEqual({ state: "running", seeded: true })
    const run = await engine.run((p) => p.cancel(started.id))
    await engine.dispose()
    expect(run).toMatchObject({ state: "cancelled", eventsSeeded: snapshot.eventsDone })
    expect(run.eventsDone).toBeLessThan(run.eventsTotal)
    expect(await h.run(dumpReadModels())).toEqual(before)
    expect(await activityTable(h)).toEqual(activityBefore)
    expect(await leftoverBuildSchemas(h)).toEqual([])
    expect(
      await h.query(
        "select name, state from chronicle.projections where name in ('sessions', 'activity') order by name",
      ),
    ).toEqual([
      { name: "activity", state: "live" },
      { name: "sessions", state: "live" },
    ])
    expect(
      await h.query("select 1 from pg_namespace where nspname = $1", [`analytics_asof_${label}`]),
    ).toHaveLength(1)
  })

  it("resumes a rebuild from a snapshot whose worker died, without copying or applying anything twice", async () => {
    const label = `resm_${randomUUID().slice(0, 8)}`
    const snapshot = await snapshotNow(label, ["sessions", "activity"])
    await moveOn(40)
    const first = await engineOf(h)
    const started = await first.run((p) =>
      p.startRebuild({ projections: ["sessions", "activity"], fromSnapshot: label }),
    )
    // The first worker dies after its first batch (before a swap could begin), between two
    // batch transactions.
    const died = await first.runtime.runPromiseExit(
      Effect.flatMap(Projections, (p) =>
        p.execute(started.id, {
          batchSize: 10,
          onProgress: () => {
            throw new Error("the worker died")
          },
        }),
      ),
    )
    expect(died._tag).toBe("Failure")
    await first.dispose()
    const halfway = await h.one<{ state: string; events_done: number; seeded: boolean }>(
      "select state, events_done::int, seeded_at is not null as seeded from chronicle.projection_runs where id = $1",
      [started.id],
    )
    expect(halfway).toMatchObject({ state: "running", seeded: true })
    // The seed, and what the one batch applied (all ten, unless the watermark held some back).
    expect(halfway.events_done).toBeGreaterThanOrEqual(snapshot.eventsDone)
    expect(halfway.events_done).toBeLessThanOrEqual(snapshot.eventsDone + 10)

    // Its heartbeat goes stale; another process's daemon takes the run over.
    await h.query(
      "update chronicle.projection_runs set heartbeat_at = now() - interval '1 minute' where id = $1",
      [started.id],
    )
    const second = await engineOf(h)
    await second.run((p) => p.tick())
    const events = (await eventCount(h)).n
    await vi.waitFor(
      async () =>
        expect(await second.run((p) => p.run(started.id))).toMatchObject({
          state: "completed",
          eventsDone: events,
          eventsSeeded: snapshot.eventsDone,
        }),
      { timeout: 60_000, interval: 50 },
    )
    await second.dispose()
    expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
    expect(await activityTable(h)).toEqual(await activityFromLog(h))
  })

  it("refuses a snapshot built with another version of a projection, and accepts one built since", async () => {
    const label = `vers_${randomUUID().slice(0, 8)}`
    await snapshotNow(label, ["sandboxes"])
    await h.query(`select chronicle.register_projection('sandboxes', 2, 'inline', 'chronicle.project_sandbox',
                     array['sandboxes'], array['sandbox'])`)
    const engine = await engineOf(h)
    const stale = await engine.refusal((p) =>
      p.startRebuild({ projections: ["sandboxes"], fromSnapshot: label }),
    )
    expect(stale).toMatchObject({ _tag: "InvalidTransition", state: "built with sandboxes v1" })
    expect(stale.message).toBe(
      `Cannot rebuild from snapshot ${label} (built with sandboxes v1): sandboxes is now at v2; rebuild from the log, or from a snapshot built since`,
    )
    const fresh = `vers2_${randomUUID().slice(0, 8)}`
    await snapshotNow(fresh, ["sandboxes"])
    const run = await engine.run((p) =>
      Effect.flatMap(p.startRebuild({ projections: ["sandboxes"], fromSnapshot: fresh }), (r) =>
        p.execute(r.id),
      ),
    )
    await engine.dispose()
    expect(run).toMatchObject({ state: "completed", fromSnapshot: fresh })
    expect(
      await h.one("select state, built_version from chronicle.projections where name = 'sandboxes'"),
    ).toEqual({
      state: "live",
      built_version: 2,
    })
    expect(await h.run(dumpReadModels(["sandboxes"]))).toEqual(
      await scratchFold(h).then((d) => ({ sandboxes: d.sandboxes })),
    )
  })
})
