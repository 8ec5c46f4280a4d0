/**
 * A build folds a batch set-wise for every session event but starts, forks, rollbacks and
 * purges: content, updates of the title and metadata, lifecycle changes, attachments and
 * checkpoints. Whatever the sessions' events are, however they interleave, and wherever the
 * batches cut the log, the rebuilt read models equal a stop-the-world fold of the log event by
 * event.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleEvent } from "@chronicle/events"
import { EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels } from "../src/index.ts"
import { activityFromLog, activityTable, engineOf, scratchFold } from "./engine-support.ts"
import { env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"

type Step =
  | { readonly kind: "message" | "toolRun" | "draft" | "checkpoint" | "rollback" | "fork" }
  | { readonly kind: "title"; readonly title: string | null }
  | { readonly kind: "metadata"; readonly n: number }
  | { readonly kind: "titleAndMetadata"; readonly title: string; readonly n: number }
  | { readonly kind: "archived" | "deleted" | "expired" | "reopened" | "annotated" }
  | { readonly kind: "attach" | "detach"; readonly file: number }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constantFrom({ kind: "message" } as const), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      { kind: "toolRun" } as const,
      { kind: "draft" } as const,
      { kind: "checkpoint" } as const,
      { kind: "annotated" } as const,
    ),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("title" as const),
      title: fc.option(fc.string({ maxLength: 6 })),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("metadata" as const), n: fc.integer({ min: 0, max: 9 }) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("titleAndMetadata" as const),
      title: fc.string({ maxLength: 6 }),
      n: fc.integer({ min: 0, max: 9 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.constantFrom(
      { kind: "archived" } as const,
      { kind: "deleted" } as const,
      { kind: "expired" } as const,
      { kind: "reopened" } as const,
    ),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom("attach" as const, "detach" as const),
      file: fc.integer({ min: 0, max: 1 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.constantFrom({ kind: "rollback" } as const, { kind: "fork" } as const), weight: 1 },
)

/** Steps of several sessions, interleaved: [session index, step]. */
const logArb = fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), stepArb), { minLength: 5, maxLength: 60 })

interface Live {
  readonly id: string
  readonly owner: string
  readonly files: ReadonlyArray<string>
  version: number
  messages: number
}

describe.each(testDatabases(env))("set-wise batches over random session events on $name", (database) => {
  let h: Harness
  beforeAll(async () => {
    h = await makeHarness(database)
  })
  afterAll(() => h.dispose())

  /** Starts four sessions, then appends the steps one event at a time, in their order. */
  const play = async (steps: ReadonlyArray<readonly [number, Step]>) => {
    const sessions: Array<Live> = []
    for (let i = 0; i < 4; i++) {
      const session = {
        id: randomUUID(),
        owner: randomUUID(),
        files: [randomUUID(), randomUUID()],
        version: 1,
        messages: 0,
      }
      await h.append(sessionStream(session.id), [ev.started(session.id, session.owner, { title: `s${i}` })])
      sessions.push(session)
    }
    for (const [index, step] of steps) {
      const s = sessions[index]!
      const event = ((): ChronicleEvent | undefined => {
        switch (step.kind) {
          case "message":
            s.messages++
            return ev.message(s.messages, `m${s.version}`)
          case "toolRun":
            return ev.toolRun()
          case "draft":
            return ev.draft({ valid: s.version % 2 === 0 })
          case "checkpoint":
            return ev.checkpoint(s.version, "0")
          case "title":
            return ev.updated({ title: step.title })
          case "metadata":
            return ev.updated({ metadata: { n: step.n } })
          case "titleAndMetadata":
            return ev.updated({ title: step.title, metadata: { n: step.n } })
          case "archived":
            return ev.archived()
          case "deleted":
            return ev.deleted()
          case "expired":
            return ev.expired()
          case "reopened":
            return ev.reopened()
          case "attach":
            return ev.attach(s.files[step.file]!)
          case "detach":
            return ev.detach(s.files[step.file]!)
          case "rollback":
            return s.version >= 2 ? ev.rolledBack(1 + (s.version % (s.version - 1))) : undefined
          case "annotated":
            return undefined
          case "fork":
            return undefined
        }
      })()
      if (step.kind === "annotated") {
        // A type no read model has: it only moves the session's version.
        await h.run(
          Effect.flatMap(EventStore, (store) =>
            store.append(sessionStream(s.id), [{ type: "Annotated", data: { at: s.version } }]),
          ),
        )
        s.version++
      } else if (step.kind === "fork") {
        const child = randomUUID()
        await h.append(sessionStream(child), [
          ev.forked({ sessionId: child, ownerId: s.owner, parentId: s.id, atVersion: s.version }),
          ev.message(1_000, "in the fork"),
        ])
      } else if (event !== undefined) {
        await h.append(sessionStream(s.id), [event])
        s.version++
      }
    }
  }

  it("rebuilds the read models equal to a fold event by event, wherever the batches cut the log", async () => {
    const engine = await engineOf(h)
    await fc.assert(
      fc.asyncProperty(logArb, fc.integer({ min: 1, max: 120 }), async (steps, batchSize) => {
        await play(steps)
        const run = await engine.run((p) =>
          Effect.flatMap(p.startRebuild({ projections: ["sessions", "activity"] }), (r) =>
            p.execute(r.id, { batchSize }),
          ),
        )
        expect(run.state).toBe("completed")
        expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
        expect(await activityTable(h)).toEqual(await activityFromLog(h))
      }),
      { numRuns: 8 },
    )
    await engine.dispose()
  })
})
