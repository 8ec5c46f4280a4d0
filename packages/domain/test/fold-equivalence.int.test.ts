/**
 * Property tests over random command sequences (messages, revisions, drafts, hole
 * resolutions, attachments, tool runs, title changes, checkpoints, rollbacks — nested — and
 * forks), run through the domain services against a real database:
 *  (a) what the read models serve equals the independent in-memory fold of the log;
 *  (b) reading as of a checkpoint after any later activity equals what was read when it was taken;
 *  (c) a fork's state equals its parent's state as of the fork point.
 */
import {
  foldSession,
  fromStored,
  type SessionEvent,
  type SessionEventRecord,
  type SessionView,
} from "@chronicle/events"
import { EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { type Actor, serviceActor } from "../src/actor.ts"
import { Content } from "../src/content.ts"
import { Files } from "../src/files.ts"
import type { Page } from "../src/rows.ts"
import { executeSessionCommand } from "../src/session/command.ts"
import type { AsOf } from "../src/session/load.ts"
import { Sessions } from "../src/sessions.ts"
import { type DomainRuntime, makeDomainRuntime, newUser, type Services } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

type Op =
  | { readonly op: "message"; readonly role: "user" | "assistant"; readonly text: string }
  | { readonly op: "revision"; readonly n: number }
  | { readonly op: "draft"; readonly valid: boolean; readonly useRevision: boolean }
  | { readonly op: "hole"; readonly hole: number; readonly confidence: number }
  | { readonly op: "attach"; readonly file: number }
  | { readonly op: "detach"; readonly file: number }
  | { readonly op: "toolRun"; readonly ok: boolean }
  | { readonly op: "title"; readonly title: string }
  | { readonly op: "checkpoint" }
  | { readonly op: "rollbackToCheckpoint"; readonly pick: number }
  | { readonly op: "rollbackToVersion"; readonly pick: number }
  | { readonly op: "fork"; readonly pick: number }
  | { readonly op: "switch"; readonly pick: number }
  | { readonly op: "expire" }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("message" as const),
      role: fc.constantFrom("user" as const, "assistant" as const),
      text: fc.string({ maxLength: 12 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("revision" as const), n: fc.integer({ min: 0, max: 9 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("draft" as const),
      valid: fc.boolean(),
      useRevision: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("hole" as const),
      hole: fc.integer({ min: 0, max: 2 }),
      confidence: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("attach" as const), file: fc.integer({ min: 0, max: 2 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("detach" as const), file: fc.integer({ min: 0, max: 2 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("toolRun" as const), ok: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("title" as const), title: fc.string({ maxLength: 8 }) }),
  },
  { weight: 2, arbitrary: fc.constant({ op: "checkpoint" as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("rollbackToCheckpoint" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("rollbackToVersion" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("fork" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("switch" as const), pick: fc.nat() }) },
  // The retention sweep's command: the next write reopens the session (SessionReopened).
  { weight: 1, arbitrary: fc.record({ op: fc.constant("expire" as const) }) },
)

/** Everything a reader sees of a session, in a form both sides can produce. */
interface Observed {
  readonly session: {
    title: string | null
    metadata: unknown
    counts: unknown
    parentId: string | null
    parentVersion: number | null
  }
  readonly messages: ReadonlyArray<unknown>
  readonly revisions: ReadonlyArray<unknown>
  readonly drafts: ReadonlyArray<unknown>
  readonly holes: ReadonlyArray<unknown>
  readonly files: ReadonlyArray<unknown>
  readonly toolRuns: ReadonlyArray<unknown>
}

const fromView = (v: SessionView): Observed => ({
  session: {
    title: v.title,
    metadata: v.metadata,
    counts: v.counts,
    parentId: v.parentId,
    parentVersion: v.parentVersion,
  },
  messages: v.messages.map((m) => [m.messageId, m.seq, m.role, m.content, m.version]),
  revisions: v.revisions.map((r) => [r.revisionId, r.number, r.ir, r.note, r.version]),
  drafts: v.drafts.map((d) => [d.draftId, d.valid, d.revisionNumber, d.version]),
  holes: v.holeResolutions.map((h) => [h.resolutionId, h.holeId, h.value, h.confidence, h.version]),
  files: v.files
    .map((f) => [f.fileId, f.name, f.version])
    .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  toolRuns: v.toolRuns.map((t) => [t.toolRunId, t.tool, t.status, t.version]),
})

const withoutToolRuns = (o: Observed) => ({
  ...o,
  session: { ...o.session, counts: { ...(o.session.counts as Record<string, number>), toolRuns: 0 } },
  toolRuns: [],
})

describe.each(testDatabases(env))("read models equal the fold of the log on $name", (database) => {
  let runtime: DomainRuntime
  const run = <A, E>(effect: Effect.Effect<A, E, Services>) => runtime.runPromise(effect)
  beforeAll(async () => {
    runtime = makeDomainRuntime(database.layer())
    await run(Effect.void)
  })
  afterAll(() => runtime.dispose())

  const all = async <A>(page: (cursor: string | null) => Effect.Effect<Page<A>, unknown, Services>) => {
    const items: Array<A> = []
    let cursor: string | null = null
    for (;;) {
      const p: Page<A> = await run(page(cursor))
      items.push(...p.items)
      cursor = p.nextCursor
      if (cursor === null) return items
    }
  }

  /** What the API would serve for the session, now or as of a version. */
  const observe = async (actor: Actor, id: string, asOf?: AsOf): Promise<Observed> => {
    const session = await run(Effect.flatMap(Sessions, (s) => s.get(actor, id, asOf)))
    const list = (cursor: string | null) => ({ limit: 3, cursor, ...(asOf ? { asOf } : {}) })
    const c = <A>(f: (c: Content["Service"], cursor: string | null) => Effect.Effect<Page<A>, unknown>) =>
      all((cursor) => Effect.flatMap(Content, (x) => f(x, cursor)))
    return {
      session: {
        title: session.title,
        metadata: session.metadata,
        counts: session.counts,
        parentId: session.parentId,
        parentVersion: session.parentVersion,
      },
      messages: (await c((x, k) => x.listMessages(actor, id, list(k)))).map((m) => [
        m.id,
        m.seq,
        m.role,
        m.content,
        m.version,
      ]),
      revisions: (await c((x, k) => x.listRevisions(actor, id, list(k)))).map((r) => [
        r.id,
        r.number,
        r.ir,
        r.note,
        r.version,
      ]),
      drafts: (await c((x, k) => x.listDrafts(actor, id, list(k)))).map((d) => [
        d.id,
        d.valid,
        d.revisionNumber,
        d.version,
      ]),
      holes: (await c((x, k) => x.listHoles(actor, id, list(k)))).map((h) => [
        h.id,
        h.holeId,
        h.value,
        h.confidence,
        h.version,
      ]),
      files: (await c((x, k) => x.listAttachedFiles(actor, id, list(k))))
        .map((f) => [f.fileId, f.name, f.version])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      toolRuns: (await c((x, k) => x.listToolRuns(actor, id, list(k)))).map((t) => [
        t.id,
        t.tool,
        t.status,
        t.version,
      ]),
    }
  }

  const eventsOf = async (id: string): Promise<Array<SessionEventRecord>> => {
    const page = await run(Effect.flatMap(EventStore, (s) => s.readStream(`session-${id}`)))
    return run(
      Effect.forEach(page.events, (e) =>
        Effect.map(
          fromStored({ type: e.type, data: e.data, schemaVersion: e.schemaVersion }).pipe(Effect.orDie),
          (event) => ({
            version: e.version,
            event: event as SessionEvent,
            recordedAt: e.recordedAt.toISOString(),
          }),
        ),
      ),
    )
  }

  /** The fold of a session's log, resolving fork parents from their own logs. */
  const foldOf = async (id: string, asOf?: number): Promise<SessionView> => {
    const logs = new Map<string, Array<SessionEventRecord>>()
    const load = async (sid: string) => {
      const events = await eventsOf(sid)
      logs.set(sid, events)
      const first = events[0]?.event
      if (first?.type === "SessionForked" && !logs.has(first.parentId)) await load(first.parentId)
    }
    await load(id)
    const resolve = (parentId: string, atVersion: number): SessionView =>
      foldSession(logs.get(parentId)!, { asOf: atVersion, parent: resolve })
    return foldSession(logs.get(id)!, { ...(asOf !== undefined ? { asOf } : {}), parent: resolve })
  }

  it("holds for random command sequences with checkpoints, nested rollbacks and forks", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 25 }), async (ops) => {
        const actor = newUser()
        const files = await Promise.all(
          [0, 1, 2].map((i) =>
            run(
              Effect.flatMap(Files, (f) =>
                f.put(actor, {
                  content: new TextEncoder().encode(`file ${i}`),
                  name: `f${i}.txt`,
                  mimeType: "text/plain",
                }),
              ),
            ),
          ),
        )
        const root = await run(Effect.flatMap(Sessions, (s) => s.create(actor, { title: "root" })))
        const sessionIds = [root.id]
        let current = root.id
        // Per checkpoint: what a reader saw at the moment it was taken.
        const checkpoints: Array<{ sessionId: string; id: string; version: number; seen: Observed }> = []
        const forks: Array<{ child: string; parent: string; atVersion: number; seenAtFork: Observed }> = []
        const tolerate = (effect: Effect.Effect<unknown, unknown, Services>) =>
          // Refusals (a lower-confidence hole, a detach of an unattached file…) are part of the game.
          runtime.runPromiseExit(effect)

        for (const op of ops) {
          const session = await run(Effect.flatMap(Sessions, (s) => s.get(actor, current)))
          switch (op.op) {
            case "message":
              await tolerate(
                Effect.flatMap(Content, (c) =>
                  c.appendMessages(actor, current, [{ role: op.role, content: op.text }]),
                ),
              )
              break
            case "revision":
              await tolerate(
                Effect.flatMap(Content, (c) =>
                  c.addRevision(actor, current, { ir: { n: op.n }, note: null }),
                ),
              )
              break
            case "draft":
              await tolerate(
                Effect.flatMap(Content, (c) =>
                  c.recordDraft(actor, current, {
                    code: "x",
                    language: "ts",
                    valid: op.valid,
                    revisionNumber:
                      op.useRevision && session.counts.revisions > 0 ? session.counts.revisions : null,
                  }),
                ),
              )
              break
            case "hole":
              await tolerate(
                Effect.flatMap(Content, (c) =>
                  c.resolveHole(actor, current, {
                    holeId: `h${op.hole}`,
                    value: op.confidence,
                    confidence: op.confidence,
                  }),
                ),
              )
              break
            case "attach":
              await tolerate(Effect.flatMap(Content, (c) => c.attachFile(actor, current, files[op.file]!.id)))
              break
            case "detach":
              await tolerate(Effect.flatMap(Content, (c) => c.detachFile(actor, current, files[op.file]!.id)))
              break
            case "toolRun":
              await tolerate(
                Effect.flatMap(Content, (c) =>
                  c.recordToolRun(actor, current, {
                    tool: "t",
                    input: {},
                    status: op.ok ? "succeeded" : "failed",
                  }),
                ),
              )
              break
            case "title":
              await tolerate(Effect.flatMap(Sessions, (s) => s.update(actor, current, { title: op.title })))
              break
            case "checkpoint": {
              const seen = await observe(actor, current)
              const cp = await run(Effect.flatMap(Sessions, (s) => s.createCheckpoint(actor, current, null)))
              checkpoints.push({ sessionId: current, id: cp.id, version: cp.version, seen })
              break
            }
            case "rollbackToCheckpoint": {
              const mine = checkpoints.filter((c) => c.sessionId === current)
              const target = mine[op.pick % Math.max(mine.length, 1)]
              if (target) {
                await run(
                  Effect.flatMap(Sessions, (s) => s.rollback(actor, current, { checkpointId: target.id })),
                )
                // (b) after a rollback the session reads exactly as it did at the checkpoint.
                // Tool runs are never reverted, so they are left out of this comparison.
                const after = await observe(actor, current)
                expect(withoutToolRuns(after)).toEqual(withoutToolRuns(target.seen))
              }
              break
            }
            case "rollbackToVersion":
              if (session.version > 1) {
                const to = 1 + (op.pick % (session.version - 1))
                await run(Effect.flatMap(Sessions, (s) => s.rollback(actor, current, { toVersion: to })))
              }
              break
            case "fork": {
              const at = 1 + (op.pick % session.version)
              const seenAtFork = await observe(actor, current, { version: at })
              const child = await run(
                Effect.flatMap(Sessions, (s) => s.fork(actor, current, { atVersion: at })),
              )
              forks.push({ child: child.id, parent: current, atVersion: at, seenAtFork })
              sessionIds.push(child.id)
              break
            }
            case "switch":
              current = sessionIds[op.pick % sessionIds.length]!
              break
            case "expire":
              await tolerate(
                executeSessionCommand(serviceActor(), current, () =>
                  Effect.succeed({
                    type: "ExpireSession" as const,
                    idleSince: new Date().toISOString(),
                    ttlHours: 1,
                  }),
                ),
              )
              break
          }
        }

        // (a) the read models equal the fold, now and as of every version.
        for (const id of sessionIds) {
          const view = await foldOf(id)
          expect(await observe(actor, id)).toEqual(fromView(view))
          for (let v = 1; v <= view.version; v += Math.max(1, Math.floor(view.version / 4))) {
            expect(await observe(actor, id, { version: v })).toEqual(fromView(await foldOf(id, v)))
          }
        }
        // (b) as of a checkpoint, after any later activity, equals what was seen when it was taken.
        for (const cp of checkpoints) {
          const asOf = await observe(actor, cp.sessionId, { checkpointId: cp.id })
          expect(asOf).toEqual(cp.seen)
        }
        // (c) a fork starts as its parent's state as of the fork point (rows re-versioned to 1).
        for (const fork of forks) {
          const childAtStart = await observe(actor, fork.child, { version: 1 })
          const strip = (o: Observed) => ({
            counts: o.session.counts,
            title: o.session.title,
            messages: o.messages.map((m) => (m as Array<unknown>).slice(0, 4)),
            revisions: o.revisions.map((r) => (r as Array<unknown>).slice(0, 4)),
            drafts: o.drafts.map((d) => (d as Array<unknown>).slice(0, 3)),
            holes: o.holes.map((h) => (h as Array<unknown>).slice(0, 4)),
            files: o.files.map((f) => (f as Array<unknown>).slice(0, 2)),
            toolRuns: o.toolRuns.map((t) => (t as Array<unknown>).slice(0, 3)),
          })
          expect(strip(childAtStart)).toEqual(strip(fork.seenAtFork))
        }
      }),
      { numRuns: database.name === "pglite" ? 12 : 20 },
    )
    // A hang guard, not a speed claim: 20 random sequences take ≈15–30 s, more on a busy machine.
  }, 240_000)
})
