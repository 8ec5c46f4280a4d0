import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import {
  type Callers,
  callers,
  clientFor,
  refusal,
  startTestServer,
  type TestServer,
  testDatabases,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

/** Text only user A's session holds; a refusal that leaked data would contain it. */
const SECRET = `alice-secret-${randomUUID()}`

/** A session of user A's with something of everything in it. */
interface Fixture {
  /** User A. */
  readonly ownerId: string
  readonly sessionId: string
  readonly externalKey: string
  /** Of the session at version 3 (two messages). */
  readonly checkpointId: string
  /** Attached to the session. */
  readonly attachedFileId: string
  /** A's, not attached. */
  readonly looseFileId: string
  /** Queued, in the session. */
  readonly jobId: string
  /** Pending. */
  readonly taskId: string
  /** Starting. */
  readonly sandboxId: string
}

/**
 * One session-scoped procedure: how to call it on a fixture, what A must get back, whether
 * the service role needs `x-chronicle-owner` (it creates something owned by someone), and
 * whether a second call on the same fixture would be refused (a state change), so the
 * service role gets a fixture of its own.
 */
interface Row {
  readonly name: string
  readonly call: (client: ChronicleClient, fx: Fixture) => Promise<unknown>
  readonly check: (result: unknown, fx: Fixture) => void
  /** Runs as A before the matrix: puts the fixture in the state the call needs. */
  readonly arrange?: (owner: ChronicleClient, fx: Fixture) => Promise<unknown>
  readonly once?: boolean
  readonly serviceNeedsOwner?: boolean
}

const has = (expected: Record<string, unknown>) => (result: unknown) => expect(result).toMatchObject(expected)
const itemsOf = (result: unknown) => (result as { items: ReadonlyArray<Record<string, unknown>> }).items

const rows: ReadonlyArray<Row> = [
  // sessions
  {
    name: "sessions.get",
    call: (c, fx) => c.sessions.get.query({ id: fx.sessionId }),
    check: (r, fx) => expect(r).toMatchObject({ id: fx.sessionId, title: SECRET }),
  },
  {
    name: "sessions.get as of a checkpoint",
    call: (c, fx) => c.sessions.get.query({ id: fx.sessionId, asOf: { checkpointId: fx.checkpointId } }),
    check: has({ version: 3, counts: { messages: 2 } }),
  },
  {
    name: "sessions.getByKey",
    call: (c, fx) => c.sessions.getByKey.query({ externalKey: fx.externalKey }),
    check: (r, fx) => expect(r).toMatchObject({ id: fx.sessionId }),
    serviceNeedsOwner: true,
  },
  {
    name: "sessions.update",
    call: (c, fx) => c.sessions.update.mutate({ id: fx.sessionId, metadata: { touched: true } }),
    check: has({ metadata: { touched: true } }),
  },
  {
    name: "sessions.archive",
    call: (c, fx) => c.sessions.archive.mutate({ id: fx.sessionId }),
    check: has({ status: "archived" }),
    once: true,
  },
  {
    name: "sessions.delete",
    call: (c, fx) => c.sessions.delete.mutate({ id: fx.sessionId }),
    check: has({ status: "deleted" }),
    once: true,
  },
  {
    name: "sessions.rollback to a version",
    call: (c, fx) => c.sessions.rollback.mutate({ id: fx.sessionId, toVersion: 2 }),
    check: has({ counts: { messages: 1, files: 0 } }),
  },
  {
    name: "sessions.rollback to a checkpoint",
    call: (c, fx) => c.sessions.rollback.mutate({ id: fx.sessionId, checkpointId: fx.checkpointId }),
    check: has({ counts: { messages: 2, files: 0 } }),
  },
  {
    name: "sessions.fork at a version",
    call: (c, fx) => c.sessions.fork.mutate({ id: fx.sessionId, atVersion: 2 }),
    // The child is the parent owner's, whoever forks it.
    check: (r, fx) => expect(r).toMatchObject({ parentId: fx.sessionId, ownerId: fx.ownerId, version: 1 }),
  },
  {
    name: "sessions.fork at a checkpoint",
    call: (c, fx) => c.sessions.fork.mutate({ id: fx.sessionId, checkpointId: fx.checkpointId }),
    check: (r, fx) =>
      expect(r).toMatchObject({ parentId: fx.sessionId, parentVersion: 3, ownerId: fx.ownerId }),
  },
  {
    name: "sessions.timeline",
    call: (c, fx) => c.sessions.timeline.query({ id: fx.sessionId }),
    check: (r) => expect(itemsOf(r).length).toBeGreaterThanOrEqual(5),
  },
  {
    name: "sessions.export",
    call: (c, fx) => c.sessions.export.query({ id: fx.sessionId }),
    check: (r, fx) =>
      expect(r).toMatchObject({ format: "chronicle.session.v1", session: { id: fx.sessionId } }),
  },
  // content
  {
    name: "messages.append",
    call: (c, fx) => c.messages.append.mutate({ sessionId: fx.sessionId, role: "user", content: "more" }),
    check: (r, fx) => expect(r).toMatchObject({ content: "more", sessionId: fx.sessionId }),
  },
  {
    name: "messages.appendMany",
    call: (c, fx) =>
      c.messages.appendMany.mutate({
        sessionId: fx.sessionId,
        messages: [{ role: "user", content: "more" }],
      }),
    check: (r) => expect(itemsOf(r)).toMatchObject([{ content: "more" }]),
  },
  {
    name: "messages.list",
    call: (c, fx) => c.messages.list.query({ sessionId: fx.sessionId }),
    check: (r) => expect(itemsOf(r).map((m) => m.content)).toEqual([SECRET, "ok"]),
  },
  {
    name: "messages.list as of a version",
    call: (c, fx) => c.messages.list.query({ sessionId: fx.sessionId, asOf: { version: 2 } }),
    check: (r) => expect(itemsOf(r).map((m) => m.content)).toEqual([SECRET]),
  },
  {
    name: "revisions.add",
    call: (c, fx) => c.revisions.add.mutate({ sessionId: fx.sessionId, ir: { n: 1 } }),
    check: (r, fx) => expect(r).toMatchObject({ ir: { n: 1 }, sessionId: fx.sessionId }),
  },
  {
    name: "revisions.list",
    call: (c, fx) => c.revisions.list.query({ sessionId: fx.sessionId }),
    check: has({ items: [], nextCursor: null }),
  },
  {
    name: "drafts.add",
    call: (c, fx) => c.drafts.add.mutate({ sessionId: fx.sessionId, code: "x", language: "ts", valid: true }),
    check: has({ language: "ts", valid: true }),
  },
  {
    name: "drafts.list",
    call: (c, fx) => c.drafts.list.query({ sessionId: fx.sessionId }),
    check: has({ items: [] }),
  },
  {
    name: "holes.resolve",
    call: (c, fx) =>
      c.holes.resolve.mutate({ sessionId: fx.sessionId, holeId: "h", value: 1, confidence: 0.5 }),
    check: has({ holeId: "h", confidence: 0.5 }),
  },
  {
    name: "holes.list",
    call: (c, fx) => c.holes.list.query({ sessionId: fx.sessionId, holeId: "h" }),
    check: has({ items: [] }),
  },
  {
    name: "toolRuns.record",
    call: (c, fx) =>
      c.toolRuns.record.mutate({ sessionId: fx.sessionId, tool: "t", input: {}, status: "succeeded" }),
    check: has({ tool: "t" }),
  },
  {
    name: "toolRuns.list",
    call: (c, fx) => c.toolRuns.list.query({ sessionId: fx.sessionId }),
    check: has({ items: [] }),
  },
  // files
  {
    name: "files.get",
    call: (c, fx) => c.files.get.query({ id: fx.attachedFileId, includeContent: true }),
    check: (r) =>
      expect(Buffer.from((r as { contentBase64: string }).contentBase64, "base64").toString()).toBe(SECRET),
  },
  {
    name: "files.listAttached",
    call: (c, fx) => c.files.listAttached.query({ sessionId: fx.sessionId }),
    check: (r, fx) => expect(itemsOf(r)).toMatchObject([{ fileId: fx.attachedFileId }]),
  },
  {
    name: "files.attach",
    call: (c, fx) => c.files.attach.mutate({ sessionId: fx.sessionId, fileId: fx.looseFileId }),
    check: (r, fx) => expect(r).toMatchObject({ fileId: fx.looseFileId }),
    once: true,
  },
  {
    name: "files.detach",
    call: (c, fx) => c.files.detach.mutate({ sessionId: fx.sessionId, fileId: fx.attachedFileId }),
    check: has({ detached: true }),
    once: true,
  },
  // checkpoints
  {
    name: "checkpoints.create",
    call: (c, fx) => c.checkpoints.create.mutate({ sessionId: fx.sessionId, label: "mine" }),
    check: has({ label: "mine" }),
  },
  {
    name: "checkpoints.list",
    call: (c, fx) => c.checkpoints.list.query({ sessionId: fx.sessionId }),
    check: (r, fx) => expect(itemsOf(r)).toMatchObject([{ id: fx.checkpointId }]),
  },
  // sandboxes
  {
    name: "sandboxes.register",
    call: (c, fx) =>
      c.sandboxes.register.mutate({ sessionId: fx.sessionId, provider: "e2b", externalId: "another" }),
    check: (r, fx) =>
      expect(r).toMatchObject({ status: "starting", externalId: "another", ownerId: fx.ownerId }),
  },
  {
    name: "sandboxes.get",
    call: (c, fx) => c.sandboxes.get.query({ id: fx.sandboxId }),
    check: (r, fx) => expect(r).toMatchObject({ id: fx.sandboxId, sessionId: fx.sessionId }),
  },
  {
    name: "sandboxes.updateStatus",
    call: (c, fx) => c.sandboxes.updateStatus.mutate({ id: fx.sandboxId, status: "running" }),
    check: has({ status: "running" }),
    once: true,
  },
  {
    name: "sandboxes.list",
    call: (c, fx) => c.sandboxes.list.query({ sessionId: fx.sessionId }),
    check: (r, fx) => expect(itemsOf(r)).toMatchObject([{ id: fx.sandboxId }]),
  },
  // jobs
  {
    name: "jobs.create in the session",
    call: (c, fx) => c.jobs.create.mutate({ type: "test", sessionId: fx.sessionId }),
    check: (r, fx) =>
      expect(r).toMatchObject({ sessionId: fx.sessionId, state: "queued", ownerId: fx.ownerId }),
    serviceNeedsOwner: true,
  },
  {
    name: "jobs.get",
    call: (c, fx) => c.jobs.get.query({ id: fx.jobId }),
    check: (r, fx) => expect(r).toMatchObject({ id: fx.jobId, sessionId: fx.sessionId }),
  },
  {
    name: "jobs.start",
    call: (c, fx) => c.jobs.start.mutate({ id: fx.jobId }),
    check: has({ state: "running" }),
    once: true,
  },
  {
    name: "jobs.progress",
    arrange: (a, fx) => a.jobs.start.mutate({ id: fx.jobId }),
    call: (c, fx) => c.jobs.progress.mutate({ id: fx.jobId, progress: 0.5 }),
    check: has({ progress: 0.5 }),
  },
  {
    name: "jobs.pause",
    arrange: (a, fx) => a.jobs.start.mutate({ id: fx.jobId }),
    call: (c, fx) => c.jobs.pause.mutate({ id: fx.jobId }),
    check: has({ state: "paused" }),
    once: true,
  },
  {
    name: "jobs.resume",
    arrange: async (a, fx) => {
      await a.jobs.start.mutate({ id: fx.jobId })
      await a.jobs.pause.mutate({ id: fx.jobId })
    },
    call: (c, fx) => c.jobs.resume.mutate({ id: fx.jobId }),
    check: has({ state: "running" }),
    once: true,
  },
  {
    name: "jobs.complete",
    arrange: (a, fx) => a.jobs.start.mutate({ id: fx.jobId }),
    call: (c, fx) => c.jobs.complete.mutate({ id: fx.jobId, output: 1 }),
    check: has({ state: "completed", output: 1 }),
    once: true,
  },
  {
    name: "jobs.fail",
    call: (c, fx) => c.jobs.fail.mutate({ id: fx.jobId, error: "e" }),
    check: has({ state: "failed", error: "e" }),
    once: true,
  },
  {
    name: "jobs.cancel",
    call: (c, fx) => c.jobs.cancel.mutate({ id: fx.jobId }),
    check: has({ state: "cancelled" }),
    once: true,
  },
  {
    name: "jobs.addTask",
    call: (c, fx) => c.jobs.addTask.mutate({ id: fx.jobId, name: "more" }),
    check: has({ name: "more", status: "pending" }),
  },
  {
    name: "jobs.updateTask",
    call: (c, fx) => c.jobs.updateTask.mutate({ id: fx.jobId, taskId: fx.taskId, status: "running" }),
    check: (r, fx) => expect(r).toMatchObject({ id: fx.taskId, status: "running" }),
  },
  {
    name: "jobs.listTasks",
    call: (c, fx) => c.jobs.listTasks.query({ id: fx.jobId }),
    check: (r, fx) => expect(itemsOf(r)).toMatchObject([{ id: fx.taskId }]),
  },
  // artifacts
  {
    name: "artifacts.record",
    call: (c, fx) => c.artifacts.record.mutate({ jobId: fx.jobId, fileId: fx.looseFileId, kind: "output" }),
    check: (r, fx) => expect(r).toMatchObject({ jobId: fx.jobId, fileId: fx.looseFileId }),
  },
  {
    name: "artifacts.list of a job",
    call: (c, fx) => c.artifacts.list.query({ jobId: fx.jobId }),
    check: has({ items: [] }),
  },
  {
    name: "artifacts.list of a session",
    call: (c, fx) => c.artifacts.list.query({ sessionId: fx.sessionId }),
    check: has({ items: [] }),
  },
  // analytics of one session
  {
    name: "analytics.sessionSummary of a session",
    call: (c, fx) => c.analytics.sessionSummary.query({ sessionId: fx.sessionId }),
    check: (r, fx) =>
      expect(itemsOf(r)).toMatchObject([{ sessionId: fx.sessionId, counts: { messages: 2 } }]),
  },
  {
    name: "analytics.recentActivity of a session",
    call: (c, fx) => c.analytics.recentActivity.query({ sessionId: fx.sessionId }),
    check: (r) => expect(itemsOf(r).map((a) => a.kind)).toContain("message"),
  },
]

describe.each(testDatabases(env))("ownership over HTTP, on $name", (database) => {
  let t: TestServer
  let c: Callers

  beforeAll(async () => {
    t = await startTestServer(database)
    c = await callers(t)
  })
  afterAll(() => t?.close())

  const fixture = async (): Promise<Fixture> => {
    const a = c.asAlice
    const externalKey = `thread-${randomUUID()}`
    const put = (text: string) =>
      a.files.put.mutate({
        name: "secret.txt",
        mimeType: "text/plain",
        contentBase64: Buffer.from(text).toString("base64"),
      })
    const [session, attached, loose] = await Promise.all([
      a.sessions.create.mutate({ title: SECRET, metadata: { secret: SECRET }, externalKey }),
      put(SECRET),
      put(`${SECRET} too`),
    ])
    const sessionId = session.id
    await a.messages.appendMany.mutate({
      sessionId,
      messages: [
        { role: "user", content: SECRET },
        { role: "assistant", content: "ok" },
      ],
    }) // v2, v3
    const checkpoint = await a.checkpoints.create.mutate({ sessionId }) // v4
    await a.files.attach.mutate({ sessionId, fileId: attached.id }) // v5
    const [job, sandbox] = await Promise.all([
      a.jobs.create.mutate({ type: "build", sessionId, input: { secret: SECRET } }),
      a.sandboxes.register.mutate({ sessionId, provider: "e2b", externalId: "sbx" }),
    ])
    const task = await a.jobs.addTask.mutate({ id: job.id, name: "compile" })
    return {
      ownerId: c.alice,
      sessionId,
      externalKey,
      checkpointId: checkpoint.id,
      attachedFileId: attached.id,
      looseFileId: loose.id,
      jobId: job.id,
      taskId: task.id,
      sandboxId: sandbox.id,
    }
  }

  /** Everything a refused call must have left as it was, read as the service role. */
  const stateOf = async (fx: Fixture) => {
    const s = c.asService
    const [session, job, tasks, sandbox, sandboxes, forks, jobs, artifacts, file] = await Promise.all([
      s.sessions.get.query({ id: fx.sessionId }),
      s.jobs.get.query({ id: fx.jobId }),
      s.jobs.listTasks.query({ id: fx.jobId }),
      s.sandboxes.get.query({ id: fx.sandboxId }),
      s.sandboxes.list.query({ sessionId: fx.sessionId }),
      s.sessions.list.query({ parentId: fx.sessionId }),
      s.jobs.list.query({ sessionId: fx.sessionId }),
      s.artifacts.list.query({ sessionId: fx.sessionId }),
      s.files.get.query({ id: fx.looseFileId }),
    ])
    return { session, job, tasks, sandbox, sandboxes, forks, jobs, artifacts, file }
  }

  it.each(rows)(
    "$name: A succeeds; B gets NOT_FOUND; the service role succeeds; no, expired and forged tokens get UNAUTHORIZED",
    async (row) => {
      const fx = await fixture()
      await row.arrange?.(c.asAlice, fx)
      const before = await stateOf(fx)

      const denied = await refusal(row.call(c.asBob, fx), { code: "NOT_FOUND", tag: "NotFound" })
      expect(denied.message).toMatch(/ was not found$/)
      expect(JSON.stringify(denied)).not.toContain(SECRET)
      expect(JSON.stringify(denied)).not.toContain(c.alice)

      const strangers: ReadonlyArray<[ChronicleClient, string | RegExp]> = [
        [c.anonymous, "Missing credentials: send the header Authorization: Bearer <token>"],
        [c.expired, "The token has expired"],
        [c.forged, "The token's signature does not verify"],
        [c.wrongSecret, "The token's signature does not verify"],
      ]
      const refusals = await Promise.all(
        strangers.map(([client, message]) =>
          refusal(row.call(client, fx), { code: "UNAUTHORIZED", tag: "Unauthenticated", message }),
        ),
      )
      for (const r of refusals) expect(JSON.stringify(r)).not.toContain(SECRET)
      expect(await stateOf(fx)).toEqual(before)

      row.check(await row.call(c.asAlice, fx), fx)

      const forService = row.once ? await fixture() : fx
      if (row.once) await row.arrange?.(c.asAlice, forService)
      if (row.serviceNeedsOwner) {
        await refusal(row.call(c.asService, forService), {
          code: "FORBIDDEN",
          tag: "Forbidden",
          message:
            "The service role must name the owner it acts for (x-chronicle-owner header) to create data",
        })
        row.check(await row.call(c.asServiceFor(c.alice), forService), forService)
      } else {
        row.check(await row.call(c.asService, forService), forService)
      }
    },
  )

  it("keeps what a user creates theirs, even when made by forking, ensuring or the service role", async () => {
    const fx = await fixture()
    const child = await c.asService.sessions.fork.mutate({ id: fx.sessionId, atVersion: 3 })
    expect(child.ownerId).toBe(c.alice)
    expect((await c.asAlice.sessions.get.query({ id: child.id })).id).toBe(child.id)
    await refusal(c.asBob.sessions.get.query({ id: child.id }), { code: "NOT_FOUND" })

    const job = await c.asServiceFor(c.alice).jobs.create.mutate({ type: "svc", sessionId: fx.sessionId })
    expect(job.ownerId).toBe(c.alice)
    // The service role acting for B cannot hang B's job on A's session.
    await refusal(c.asServiceFor(c.bob).jobs.create.mutate({ type: "svc", sessionId: fx.sessionId }), {
      code: "NOT_FOUND",
    })

    // B ensuring A's external key gets a session of B's own; A's is untouched.
    const bobs = await c.asBob.sessions.ensure.mutate({ externalKey: fx.externalKey })
    expect(bobs).toMatchObject({ created: true, session: { ownerId: c.bob, version: 1 } })
    expect(bobs.session.id).not.toBe(fx.sessionId)
    expect((await c.asAlice.sessions.getByKey.query({ externalKey: fx.externalKey })).id).toBe(fx.sessionId)

    // B cannot attach A's file to B's own session, nor record it as an artifact of B's job.
    const bobJob = await c.asBob.jobs.create.mutate({ type: "b", sessionId: bobs.session.id })
    await refusal(c.asBob.files.attach.mutate({ sessionId: bobs.session.id, fileId: fx.looseFileId }), {
      code: "NOT_FOUND",
      message: `file ${fx.looseFileId} was not found`,
    })
    await refusal(
      c.asBob.artifacts.record.mutate({ jobId: bobJob.id, fileId: fx.looseFileId, kind: "code" }),
      {
        code: "NOT_FOUND",
        message: `file ${fx.looseFileId} was not found`,
      },
    )
    await refusal(c.asBob.jobs.create.mutate({ type: "b", parentJobId: fx.jobId }), {
      code: "NOT_FOUND",
      message: `job ${fx.jobId} was not found`,
    })
  })

  it("limits every list and every analytics view to the caller's own data; the service role sees all", async () => {
    const fx = await fixture()
    const ids = (page: { items: ReadonlyArray<{ id: string }> }) => page.items.map((x) => x.id)
    const summaries = (page: { items: ReadonlyArray<{ sessionId: string }> }) =>
      page.items.map((x) => x.sessionId)

    expect(ids(await c.asAlice.sessions.list.query({ limit: 500 }))).toContain(fx.sessionId)
    expect(ids(await c.asBob.sessions.list.query({ limit: 500 }))).not.toContain(fx.sessionId)
    expect(ids(await c.asServiceFor(c.bob).sessions.list.query({ limit: 500 }))).not.toContain(fx.sessionId)
    expect(ids(await c.asServiceFor(c.alice).sessions.list.query({ limit: 500 }))).toContain(fx.sessionId)
    expect(ids(await c.asService.sessions.list.query({ limit: 500 }))).toContain(fx.sessionId)

    expect(ids(await c.asAlice.files.list.query({ limit: 500 }))).toContain(fx.looseFileId)
    expect(ids(await c.asBob.files.list.query({ limit: 500 }))).not.toContain(fx.looseFileId)
    expect(ids(await c.asAlice.jobs.list.query({ limit: 500 }))).toContain(fx.jobId)
    expect(ids(await c.asBob.jobs.list.query({ limit: 500 }))).not.toContain(fx.jobId)
    expect(await c.asBob.jobs.list.query({ sessionId: fx.sessionId })).toEqual({
      items: [],
      nextCursor: null,
    })
    expect(ids(await c.asService.jobs.list.query({ sessionId: fx.sessionId }))).toEqual([fx.jobId])

    expect(summaries(await c.asAlice.analytics.sessionSummary.query({ limit: 500 }))).toContain(fx.sessionId)
    expect(summaries(await c.asBob.analytics.sessionSummary.query({ limit: 500 }))).not.toContain(
      fx.sessionId,
    )
    const activity = await c.asBob.analytics.recentActivity.query({ limit: 500 })
    expect(activity.items.some((a) => a.sessionId === fx.sessionId)).toBe(false)
    expect(JSON.stringify(activity)).not.toContain(SECRET)
    expect((await c.asAlice.analytics.users.query()).items.map((u) => u.ownerId)).toEqual([c.alice])
    expect((await c.asBob.analytics.users.query()).items.map((u) => u.ownerId)).not.toContain(c.alice)
    expect((await c.asService.analytics.users.query({ limit: 500 })).items.map((u) => u.ownerId)).toEqual(
      expect.arrayContaining([c.alice]),
    )
    expect((await c.asAlice.analytics.jobStats.query()).map((s) => s.jobType)).toContain("build")
    expect((await c.asBob.analytics.jobStats.query()).map((s) => s.jobType)).not.toContain("build")
    await c.asAlice.drafts.add.mutate({
      sessionId: fx.sessionId,
      code: "x",
      language: "alice-lang",
      valid: true,
    })
    expect((await c.asAlice.analytics.draftValidation.query()).map((s) => s.language)).toContain("alice-lang")
    expect((await c.asBob.analytics.draftValidation.query()).map((s) => s.language)).not.toContain(
      "alice-lang",
    )
  })

  it("makes the service role name an owner to create data, and lets only it manage projections", async () => {
    const forbidden = {
      code: "FORBIDDEN",
      tag: "Forbidden",
      message: "The service role must name the owner it acts for (x-chronicle-owner header) to create data",
    } as const
    await refusal(c.asService.sessions.create.mutate({}), forbidden)
    await refusal(c.asService.sessions.ensure.mutate({ externalKey: "k" }), forbidden)
    await refusal(c.asService.imports.conversation.mutate({ messages: [] }), forbidden)
    await refusal(
      c.asService.files.put.mutate({ name: "f", mimeType: "text/plain", contentBase64: "" }),
      forbidden,
    )
    await refusal(c.asService.jobs.create.mutate({ type: "x" }), forbidden)

    const made = await c.asServiceFor(c.alice).sessions.create.mutate({ title: "made for A" })
    expect(made.ownerId).toBe(c.alice)
    expect((await c.asAlice.sessions.get.query({ id: made.id })).title).toBe("made for A")
    const imported = await c.asServiceFor(c.bob).imports.conversation.mutate({
      messages: [{ role: "user", content: "hi" }],
    })
    expect(imported.ownerId).toBe(c.bob)
    const file = await c
      .asServiceFor(c.bob)
      .files.put.mutate({ name: "f", mimeType: "text/plain", contentBase64: "" })
    expect(file).toMatchObject({ ownerId: c.bob, size: 0 })

    // A user may name only themselves as the owner.
    await refusal(
      clientFor(t.server.url, await t.authority.es256Token({ sub: c.alice }), c.bob).sessions.list.query(),
      {
        code: "FORBIDDEN",
        message: "Only the service role may act for another owner (x-chronicle-owner)",
      },
    )
    await refusal(c.asServiceFor("not-a-uuid").sessions.list.query(), {
      code: "BAD_REQUEST",
      message: 'x-chronicle-owner: must be a UUID, got "not-a-uuid"',
    })

    // A Supabase token with the service_role role is the service role too.
    const serviceJwt = clientFor(t.server.url, await t.authority.es256Token({ role: "service_role" }))
    expect((await serviceJwt.sessions.get.query({ id: made.id })).id).toBe(made.id)
    expect((await serviceJwt.projections.status.query()).projections.map((p) => p.name)).toContain("sessions")

    for (const user of [c.asAlice, c.asBob]) {
      await refusal(user.projections.status.query(), { code: "FORBIDDEN", tag: "Forbidden" })
      await refusal(user.projections.rebuild.mutate(), {
        code: "FORBIDDEN",
        tag: "Forbidden",
        message: "Only the service role may rebuild the read models: it covers every owner's data",
      })
    }
    expect((await c.asService.projections.rebuild.mutate()).run.state).toBe("running")
  })

  it("refuses every procedure of the domain without valid credentials", async () => {
    const fx = await fixture()
    const everything = (x: ChronicleClient): ReadonlyArray<Promise<unknown>> => [
      x.sessions.create.mutate({}),
      x.sessions.ensure.mutate({ externalKey: "k" }),
      x.sessions.list.query(),
      x.imports.conversation.mutate({ messages: [] }),
      x.files.put.mutate({ name: "f", mimeType: "text/plain", contentBase64: "" }),
      x.files.list.query(),
      x.jobs.list.query(),
      x.analytics.sessionSummary.query(),
      x.analytics.users.query(),
      x.analytics.recentActivity.query(),
      x.analytics.draftValidation.query(),
      x.analytics.jobStats.query(),
      x.projections.status.query(),
      x.projections.rebuild.mutate(),
      ...rows.map((row) => row.call(x, fx)),
    ]
    for (const stranger of [c.anonymous, c.expired, c.forged, c.wrongSecret]) {
      const results = await Promise.allSettled(everything(stranger))
      expect(results.every((r) => r.status === "rejected")).toBe(true)
      for (const result of results) {
        const reason = (result as PromiseRejectedResult).reason as {
          data?: { code: string; httpStatus: number }
        }
        expect(reason.data).toMatchObject({ code: "UNAUTHORIZED", httpStatus: 401 })
      }
    }
    const basic = await fetch(`${t.server.url}/trpc/sessions.list`, {
      headers: { authorization: "Basic abc" },
    })
    expect(basic.status).toBe(401)
    expect(((await basic.json()) as { error: { message: string } }).error.message).toBe(
      "The Authorization header must be `Bearer <token>`",
    )
  })
})
