import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Content } from "../src/content.ts"
import { Files } from "../src/files.ts"
import { Jobs } from "../src/jobs.ts"
import { Retention } from "../src/retention.ts"
import { Sandboxes } from "../src/sandboxes.ts"
import { domainRuntimeFor, env, failureOf, newUser } from "./support.ts"

const bytes = (text: string) => new TextEncoder().encode(text)

describe.each(testDatabases(env))("jobs, files, sandboxes and retention on $name", (database) => {
  const domain = domainRuntimeFor(database, { maxFileBytes: 1024, sessionTtlHours: 24 })
  const { run, sessions, content, files, jobs, sandboxes } = domain

  it("stores a file's bytes once, checks size and MIME type, and attaches it to several sessions", async () => {
    const alice = newUser()
    const a = await files((f) =>
      f.put(alice, { content: bytes("hello"), name: "a.txt", mimeType: "text/plain" }),
    )
    const b = await files((f) =>
      f.put(alice, { content: bytes("hello"), name: "b.txt", mimeType: "text/markdown" }),
    )
    expect(a.sha256).toBe(b.sha256)
    expect(a.id).not.toBe(b.id)
    expect(a).toMatchObject({ name: "a.txt", mimeType: "text/plain", size: 5 })
    const read = await files((f) => f.content(alice, a.id))
    expect(new TextDecoder().decode(read.content)).toBe("hello")

    const big = await failureOf(
      domain.runtime,
      Effect.flatMap(Files, (f) =>
        f.put(alice, { content: new Uint8Array(1025), name: "big", mimeType: "text/plain" }),
      ),
    )
    expect(big).toMatchObject({ _tag: "PayloadTooLarge", limit: 1024 })
    const exe = await failureOf(
      domain.runtime,
      Effect.flatMap(Files, (f) =>
        f.put(alice, { content: bytes("x"), name: "x.exe", mimeType: "application/x-msdownload" }),
      ),
    )
    expect(exe._tag).toBe("UnsupportedMediaType")

    const s1 = await sessions((s) => s.create(alice, {}))
    const s2 = await sessions((s) => s.create(alice, {}))
    await content((c) => c.attachFile(alice, s1.id, a.id))
    const attached = await content((c) => c.attachFile(alice, s2.id, a.id))
    expect(attached).toMatchObject({ fileId: a.id, sessionId: s2.id, name: "a.txt" })
    const twice = await failureOf(
      domain.runtime,
      Effect.flatMap(Content, (c) => c.attachFile(alice, s1.id, a.id)),
    )
    expect(twice._tag).toBe("InvalidTransition")
    expect((await sessions((s) => s.get(alice, s1.id))).counts.files).toBe(1)
    await content((c) => c.detachFile(alice, s1.id, a.id))
    expect((await content((c) => c.listAttachedFiles(alice, s1.id, {}))).items).toEqual([])
    expect((await content((c) => c.listAttachedFiles(alice, s2.id, {}))).items.map((f) => f.fileId)).toEqual([
      a.id,
    ])
    const again = await failureOf(
      domain.runtime,
      Effect.flatMap(Content, (c) => c.detachFile(alice, s1.id, a.id)),
    )
    expect(again._tag).toBe("NotFound")

    // Another owner's file cannot be attached or read.
    const bob = newUser()
    const bobs = await sessions((s) => s.create(bob, {}))
    expect(
      (
        await failureOf(
          domain.runtime,
          Effect.flatMap(Content, (c) => c.attachFile(bob, bobs.id, a.id)),
        )
      )._tag,
    ).toBe("NotFound")
    expect(
      (
        await failureOf(
          domain.runtime,
          Effect.flatMap(Files, (f) => f.get(bob, a.id)),
        )
      )._tag,
    ).toBe("NotFound")
  })

  it("runs a job through its state machine, with tasks and artifacts listed per job and per session", async () => {
    const alice = newUser()
    const session = await sessions((s) => s.create(alice, {}))
    const job = await jobs((j) =>
      j.create(alice, { type: "generate", input: { prompt: "x" }, sessionId: session.id }),
    )
    expect(job).toMatchObject({ state: "queued", type: "generate", sessionId: session.id, version: 1 })
    const started = await jobs((j) => j.transition(alice, job.id, { type: "StartJob", worker: "w1" }))
    expect(started.state).toBe("running")
    expect(started.startedAt).not.toBeNull()
    const progressed = await jobs((j) =>
      j.transition(alice, job.id, { type: "ProgressJob", progress: 0.5, message: "half" }),
    )
    expect(progressed).toMatchObject({ progress: 0.5, progressMessage: "half" })
    await jobs((j) => j.transition(alice, job.id, { type: "PauseJob", reason: null }))
    const paused = await failureOf(
      domain.runtime,
      Effect.flatMap(Jobs, (j) =>
        j.transition(alice, job.id, { type: "ProgressJob", progress: 0.6, message: null }),
      ),
    )
    expect(paused._tag).toBe("InvalidTransition")
    await jobs((j) => j.transition(alice, job.id, { type: "ResumeJob" }))

    const task = await jobs((j) => j.addTask(alice, job.id, { name: "compile", input: { file: "a.ts" } }))
    expect(task).toMatchObject({ name: "compile", status: "pending" })
    const done = await jobs((j) =>
      j.updateTask(alice, job.id, { taskId: task.id, status: "completed", output: { ok: true } }),
    )
    expect(done).toMatchObject({ status: "completed", output: { ok: true } })
    const final = await failureOf(
      domain.runtime,
      Effect.flatMap(Jobs, (j) => j.updateTask(alice, job.id, { taskId: task.id, status: "running" })),
    )
    expect(final._tag).toBe("InvalidTransition")

    const file = await files((f) =>
      f.put(alice, { content: bytes("export const x = 1"), name: "x.ts", mimeType: "text/plain" }),
    )
    const artifact = await jobs((j) => j.recordArtifact(alice, job.id, { fileId: file.id, kind: "code" }))
    expect(artifact).toMatchObject({
      jobId: job.id,
      sessionId: session.id,
      kind: "code",
      name: "x.ts",
      sha256: file.sha256,
    })
    const completed = await jobs((j) =>
      j.transition(alice, job.id, { type: "CompleteJob", output: { files: 1 } }),
    )
    expect(completed).toMatchObject({ state: "completed", output: { files: 1 } })
    expect(completed.finishedAt).not.toBeNull()

    expect((await jobs((j) => j.listArtifacts(alice, { jobId: job.id }, {}))).items.map((a) => a.id)).toEqual(
      [artifact.id],
    )
    expect(
      (await jobs((j) => j.listArtifacts(alice, { sessionId: session.id }, {}))).items.map((a) => a.id),
    ).toEqual([artifact.id])
    expect((await jobs((j) => j.listTasks(alice, job.id, {}))).items.map((t) => t.status)).toEqual([
      "completed",
    ])
    expect((await jobs((j) => j.list(alice, { sessionId: session.id }))).items.map((j) => j.id)).toEqual([
      job.id,
    ])
  })

  it("refuses to complete a cancelled job", async () => {
    const alice = newUser()
    const job = await jobs((j) => j.create(alice, { type: "install" }))
    await jobs((j) => j.transition(alice, job.id, { type: "CancelJob", reason: "user" }))
    const error = await failureOf(
      domain.runtime,
      Effect.flatMap(Jobs, (j) => j.transition(alice, job.id, { type: "CompleteJob", output: null })),
    )
    expect(error._tag).toBe("InvalidTransition")
    expect(error.message).toMatch(/cancelled/)
    expect((await jobs((j) => j.list(alice, { state: "cancelled" }))).items.map((x) => x.id)).toEqual([
      job.id,
    ])
  })

  it("tracks a sandbox's lifecycle, which a session rollback does not revert", async () => {
    const alice = newUser()
    const session = await sessions((s) => s.create(alice, {}))
    await content((c) => c.appendMessages(alice, session.id, [{ role: "user", content: "x" }]))
    const box = await sandboxes((s) =>
      s.register(alice, { sessionId: session.id, provider: "e2b", externalId: "sbx_1" }),
    )
    expect(box).toMatchObject({
      status: "starting",
      provider: "e2b",
      externalId: "sbx_1",
      sessionId: session.id,
    })
    const running = await sandboxes((s) =>
      s.changeStatus(alice, box.id, { status: "running", url: "https://sbx_1.example" }),
    )
    expect(running).toMatchObject({ status: "running", url: "https://sbx_1.example" })
    await sessions((s) => s.rollback(alice, session.id, { toVersion: 1 }))
    expect((await sandboxes((s) => s.list(alice, session.id, {}))).items.map((b) => b.status)).toEqual([
      "running",
    ])
    await sandboxes((s) => s.changeStatus(alice, box.id, { status: "stopped" }))
    const restart = await failureOf(
      domain.runtime,
      Effect.flatMap(Sandboxes, (s) => s.changeStatus(alice, box.id, { status: "running" })),
    )
    expect(restart._tag).toBe("InvalidTransition")
  })

  it("expires sessions idle longer than the TTL; the next append reopens an expired session", async () => {
    const alice = newUser()
    const idle = await sessions((s) => s.create(alice, {}))
    const report = await run(Effect.flatMap(Retention, (r) => r.sweep(new Date(Date.now() + 25 * 3_600_000))))
    expect(report.expired).toBeGreaterThanOrEqual(1)
    expect((await sessions((s) => s.get(alice, idle.id))).status).toBe("expired")
    const fresh = await sessions((s) => s.create(alice, {}))
    await run(Effect.flatMap(Retention, (r) => r.sweep(new Date())))
    expect((await sessions((s) => s.get(alice, fresh.id))).status).toBe("active")
    expect((await sessions((s) => s.list(alice, { status: "expired" }))).items.map((x) => x.id)).toContain(
      idle.id,
    )
    const [message] = await run(
      Effect.flatMap(Content, (c) => c.appendMessages(alice, idle.id, [{ role: "user", content: "x" }])),
    )
    // Version 2 is the expiry, 3 the reopening, 4 the message.
    expect(message).toMatchObject({ seq: 1, version: 4 })
    expect(await sessions((s) => s.get(alice, idle.id))).toMatchObject({ status: "active", version: 4 })
  })
})
