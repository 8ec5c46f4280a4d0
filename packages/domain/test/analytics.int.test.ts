import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { serviceActor } from "../src/actor.ts"
import { Analytics } from "../src/analytics.ts"
import { Content } from "../src/content.ts"
import { Jobs } from "../src/jobs.ts"
import { Sessions } from "../src/sessions.ts"
import { type DomainRuntime, makeDomainRuntime, newUser, type Services } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

describe.each(testDatabases(env))("analytics on $name", (database) => {
  let runtime: DomainRuntime
  const run = <A, E>(effect: Effect.Effect<A, E, Services | Analytics>) => runtime.runPromise(effect)
  beforeAll(async () => {
    runtime = makeDomainRuntime(database.layer())
    await run(Effect.void)
  })
  afterAll(() => runtime.dispose())

  it("summarises sessions, users, drafts and jobs from effective content only", async () => {
    const alice = newUser()
    const bob = newUser()
    const s = await run(Effect.flatMap(Sessions, (x) => x.create(alice, { title: "a" })))
    await run(
      Effect.flatMap(Content, (c) => c.appendMessages(alice, s.id, [{ role: "user", content: "hello" }])),
    )
    await run(
      Effect.flatMap(Content, (c) => c.recordDraft(alice, s.id, { code: "1", language: "ts", valid: true })),
    )
    const cp = await run(Effect.flatMap(Sessions, (x) => x.createCheckpoint(alice, s.id, null)))
    await run(
      Effect.flatMap(Content, (c) => c.recordDraft(alice, s.id, { code: "2", language: "ts", valid: false })),
    )
    await run(
      Effect.flatMap(Content, (c) => c.recordDraft(alice, s.id, { code: "3", language: "py", valid: false })),
    )
    await run(Effect.flatMap(Sessions, (x) => x.rollback(alice, s.id, { checkpointId: cp.id })))
    await run(
      Effect.flatMap(Content, (c) => c.recordDraft(alice, s.id, { code: "4", language: "ts", valid: false })),
    )
    const job = await run(Effect.flatMap(Jobs, (j) => j.create(alice, { type: "generate", sessionId: s.id })))
    await run(Effect.flatMap(Jobs, (j) => j.transition(alice, job.id, { type: "StartJob", worker: null })))
    await run(Effect.flatMap(Jobs, (j) => j.transition(alice, job.id, { type: "CompleteJob", output: null })))
    await run(Effect.flatMap(Sessions, (x) => x.create(bob, {})))

    const summary = await run(Effect.flatMap(Analytics, (a) => a.sessionSummary(alice, { sessionId: s.id })))
    expect(summary.items[0]).toMatchObject({
      sessionId: s.id,
      counts: { messages: 1, drafts: 2, jobs: 1 },
      validDrafts: 1,
      invalidDrafts: 1,
      draftSuccessRate: 0.5,
    })
    const users = await run(Effect.flatMap(Analytics, (a) => a.users(alice, {})))
    expect(users.items).toHaveLength(1)
    expect(users.items[0]).toMatchObject({
      ownerId: (alice as { userId: string }).userId,
      sessions: 1,
      messages: 1,
      drafts: 2,
      jobs: 1,
      completedJobs: 1,
    })
    const everyone = await run(Effect.flatMap(Analytics, (a) => a.users(serviceActor(), { limit: 500 })))
    expect(everyone.items.length).toBeGreaterThanOrEqual(2)

    const drafts = await run(Effect.flatMap(Analytics, (a) => a.draftValidation(alice)))
    // The py draft was reverted by the rollback.
    expect(drafts).toEqual([
      expect.objectContaining({ language: "ts", drafts: 2, validDrafts: 1, successRate: 0.5 }),
    ])
    const jobs = await run(Effect.flatMap(Analytics, (a) => a.jobStats(alice)))
    expect(jobs).toEqual([
      expect.objectContaining({
        jobType: "generate",
        jobs: 1,
        byState: expect.objectContaining({ completed: 1 }),
      }),
    ])
    expect(jobs[0]!.avgProcessingSeconds).toBeGreaterThanOrEqual(0)

    const activity = await run(Effect.flatMap(Analytics, (a) => a.recentActivity(alice, { limit: 3 })))
    expect(activity.items).toHaveLength(3)
    expect(activity.nextCursor).not.toBeNull()
    const rest = await run(
      Effect.flatMap(Analytics, (a) => a.recentActivity(alice, { cursor: activity.nextCursor, limit: 500 })),
    )
    const kinds = [...activity.items, ...rest.items].map((i) => i.kind).sort()
    expect(kinds).toEqual(["draft", "draft", "job", "message"])
    expect((await run(Effect.flatMap(Analytics, (a) => a.recentActivity(bob, {})))).items).toEqual([])
  })
})
