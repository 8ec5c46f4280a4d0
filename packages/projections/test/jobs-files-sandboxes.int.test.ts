import { randomUUID } from "node:crypto"
import type { ChronicleEvent } from "@chronicle/events"
import { EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { countRows, env, ev, fileStream, harnessFor, jobStream, sandboxStream, sha } from "./support.ts"

describe.each(testDatabases(env))("job, file and sandbox projections on $name", (database) => {
  const h = harnessFor(database)

  /** Appends each event alone, so each gets its own recording time. */
  const appendEach = async (streamId: string, events: ReadonlyArray<ChronicleEvent>) => {
    for (const event of events) await h.append(streamId, [event])
  }

  /** The recording time of a stream's event, as text, for comparison with a column read as text. */
  const recordedAt = (streamId: string, version: number) =>
    h
      .one<{ at: string }>(
        "select recorded_at::text as at from chronicle.events where stream_id = $1 and stream_version = $2",
        [streamId, version],
      )
      .then((r) => r.at)

  const readJob = (id: string) =>
    h.one(
      `select owner_id::text, session_id::text, parent_job_id::text, job_type, state, input, output, error,
              error_details, progress, progress_message, version, created_at::text, updated_at::text,
              started_at::text, finished_at::text
         from chronicle.jobs where id = $1::uuid`,
      [id],
    )

  const newJob = async (options: Parameters<typeof ev.jobCreated>[2] = {}) => {
    const id = randomUUID()
    const owner = randomUUID()
    await h.append(jobStream(id), [ev.jobCreated(id, owner, options)], { ownerId: owner })
    return { id, owner, stream: jobStream(id) }
  }

  it("JobCreated inserts a queued job", async () => {
    const sessionId = randomUUID()
    const parentJobId = randomUUID()
    const { id, owner, stream } = await newJob({ sessionId, parentJobId, jobType: "index", input: [1, 2] })
    const created = await recordedAt(stream, 1)
    expect(await readJob(id)).toEqual({
      owner_id: owner,
      session_id: sessionId,
      parent_job_id: parentJobId,
      job_type: "index",
      state: "queued",
      input: [1, 2],
      output: null,
      error: null,
      error_details: null,
      progress: null,
      progress_message: null,
      version: 1,
      created_at: created,
      updated_at: created,
      started_at: null,
      finished_at: null,
    })
  })

  it("follows a job through start, progress, pause, resume and completion", async () => {
    const { id, stream } = await newJob()
    await appendEach(stream, [
      { type: "JobStarted", worker: "w-1" },
      { type: "JobProgressed", progress: 0.25, message: "a quarter" },
      { type: "JobPaused", reason: null },
    ])
    expect(await readJob(id)).toMatchObject({
      state: "paused",
      progress: 0.25,
      progress_message: "a quarter",
      version: 4,
      started_at: await recordedAt(stream, 2),
      updated_at: await recordedAt(stream, 4),
      finished_at: null,
    })
    await appendEach(stream, [
      { type: "JobResumed" },
      { type: "JobProgressed", progress: 0.9, message: null },
      { type: "JobCompleted", output: { files: 3 } },
    ])
    expect(await readJob(id)).toMatchObject({
      state: "completed",
      progress: 0.9,
      progress_message: null,
      output: { files: 3 },
      version: 7,
      started_at: await recordedAt(stream, 2),
      finished_at: await recordedAt(stream, 7),
      updated_at: await recordedAt(stream, 7),
    })
  })

  it("records a failure with its details, and a cancellation, as finished", async () => {
    const failed = await newJob()
    await appendEach(failed.stream, [
      { type: "JobStarted", worker: null },
      { type: "JobFailed", error: "out of memory", details: { rss: 123 } },
    ])
    expect(await readJob(failed.id)).toMatchObject({
      state: "failed",
      error: "out of memory",
      error_details: { rss: 123 },
      version: 3,
      finished_at: await recordedAt(failed.stream, 3),
    })
    const cancelled = await newJob()
    await appendEach(cancelled.stream, [{ type: "JobCancelled", reason: "not needed" }])
    expect(await readJob(cancelled.id)).toMatchObject({
      state: "cancelled",
      started_at: null,
      version: 2,
      finished_at: await recordedAt(cancelled.stream, 2),
    })
  })

  it("adds tasks as pending and replaces status, output, error and progress on each update", async () => {
    const { id, stream } = await newJob()
    const taskId = randomUUID()
    const readTasks = () =>
      h.query(
        `select task_id::text, name, status, input, output, error, progress, created_at::text, updated_at::text
           from chronicle.tasks where job_id = $1::uuid`,
        [id],
      )
    await appendEach(stream, [{ type: "TaskAdded", taskId, name: "lint", input: { strict: true } }])
    const added = await recordedAt(stream, 2)
    expect(await readTasks()).toEqual([
      {
        task_id: taskId,
        name: "lint",
        status: "pending",
        input: { strict: true },
        output: null,
        error: null,
        progress: null,
        created_at: added,
        updated_at: added,
      },
    ])
    await appendEach(stream, [
      ev.taskUpdated(taskId, { status: "running", progress: 0.5, output: { partial: true } }),
    ])
    await appendEach(stream, [
      ev.taskUpdated(taskId, { status: "failed", error: "3 problems", output: null }),
    ])
    expect(await readTasks()).toEqual([
      {
        task_id: taskId,
        name: "lint",
        status: "failed",
        input: { strict: true },
        output: null,
        error: "3 problems",
        progress: null,
        created_at: added,
        updated_at: await recordedAt(stream, 4),
      },
    ])
    expect(await readJob(id)).toMatchObject({ version: 4, updated_at: await recordedAt(stream, 4) })
  })

  it("records artifacts under the job's session", async () => {
    const sessionId = randomUUID()
    const withSession = await newJob({ sessionId })
    const artifact = ev.artifact({ kind: "log", name: "build.log", size: 5000 })
    await appendEach(withSession.stream, [
      { type: "JobStarted", worker: null },
      { type: "JobCompleted", output: null },
      artifact,
    ])
    expect(
      await h.query(
        `select artifact_id::text, file_id::text, session_id::text, kind, name, sha256, mime_type, size::int,
                created_at::text
           from chronicle.artifacts where job_id = $1::uuid`,
        [withSession.id],
      ),
    ).toEqual([
      {
        artifact_id: artifact.artifactId,
        file_id: artifact.fileId,
        session_id: sessionId,
        kind: "log",
        name: "build.log",
        sha256: sha("b"),
        mime_type: "text/typescript",
        size: 5000,
        created_at: await recordedAt(withSession.stream, 4),
      },
    ])
    expect(await readJob(withSession.id)).toMatchObject({ state: "completed", version: 4 })
    const without = await newJob()
    await appendEach(without.stream, [ev.artifact()])
    expect(
      await h.query("select session_id from chronicle.artifacts where job_id = $1::uuid", [without.id]),
    ).toEqual([{ session_id: null }])
  })

  it("FileUploaded inserts the file", async () => {
    const id = randomUUID()
    const owner = randomUUID()
    await h.append(fileStream(id), [ev.fileUploaded(id, owner, { size: 3_000_000_000 })])
    const at = await recordedAt(fileStream(id), 1)
    expect(
      await h.one(
        `select owner_id::text, sha256, name, mime_type, size::text, version, created_at::text, updated_at::text
           from chronicle.files where id = $1::uuid`,
        [id],
      ),
    ).toEqual({
      owner_id: owner,
      sha256: sha("c"),
      name: "notes.md",
      mime_type: "text/markdown",
      size: "3000000000",
      version: 1,
      created_at: at,
      updated_at: at,
    })
  })

  describe("sandboxes", () => {
    const readSandbox = (id: string) =>
      h.one(
        `select session_id::text, owner_id::text, provider, external_id, url, status, metadata, version,
                created_at::text, updated_at::text, started_at::text, ended_at::text
           from chronicle.sandboxes where id = $1::uuid`,
        [id],
      )

    it("goes from starting to running (started_at) to stopped (ended_at), keeping a known URL", async () => {
      const id = randomUUID()
      const sessionId = randomUUID()
      const owner = randomUUID()
      const stream = sandboxStream(id)
      await appendEach(stream, [ev.sandboxRegistered(id, sessionId, owner, { metadata: { cpu: 2 } })])
      const registered = await recordedAt(stream, 1)
      expect(await readSandbox(id)).toEqual({
        session_id: sessionId,
        owner_id: owner,
        provider: "e2b",
        external_id: "sbx-1",
        url: null,
        status: "starting",
        metadata: { cpu: 2 },
        version: 1,
        created_at: registered,
        updated_at: registered,
        started_at: null,
        ended_at: null,
      })
      await appendEach(stream, [
        { type: "SandboxStatusChanged", status: "running", reason: null, url: "https://sbx.example/1" },
      ])
      expect(await readSandbox(id)).toMatchObject({
        status: "running",
        url: "https://sbx.example/1",
        version: 2,
        started_at: await recordedAt(stream, 2),
        ended_at: null,
      })
      await appendEach(stream, [
        { type: "SandboxStatusChanged", status: "stopped", reason: "done", url: null },
      ])
      expect(await readSandbox(id)).toMatchObject({
        status: "stopped",
        url: "https://sbx.example/1",
        version: 3,
        started_at: await recordedAt(stream, 2),
        ended_at: await recordedAt(stream, 3),
        updated_at: await recordedAt(stream, 3),
      })
    })

    it("may end straight from starting", async () => {
      const id = randomUUID()
      const stream = sandboxStream(id)
      await appendEach(stream, [
        ev.sandboxRegistered(id, randomUUID(), randomUUID(), { url: "https://sbx.example/2" }),
        { type: "SandboxStatusChanged", status: "failed", reason: "image missing", url: null },
      ])
      expect(await readSandbox(id)).toMatchObject({
        status: "failed",
        url: "https://sbx.example/2",
        started_at: null,
        ended_at: await recordedAt(stream, 2),
      })
    })
  })

  it("ignores streams their creation event did not start; unknown types only advance the version", async () => {
    const job = randomUUID()
    await h.run(
      Effect.flatMap(EventStore, (s) =>
        s.append(jobStream(job), [
          { type: "JobStarted", data: { worker: null } },
          { type: "TaskAdded", data: { taskId: randomUUID() } },
        ]),
      ),
    )
    expect(await countRows(h, "jobs", "id", job)).toBe(0)
    expect(await countRows(h, "tasks", "job_id", job)).toBe(0)
    const sandbox = randomUUID()
    await h.append(sandboxStream(sandbox), [
      { type: "SandboxStatusChanged", status: "running", reason: null, url: null },
    ])
    expect(await countRows(h, "sandboxes", "id", sandbox)).toBe(0)
    const file = randomUUID()
    await h.run(Effect.flatMap(EventStore, (s) => s.append(fileStream(file), [{ type: "Other", data: {} }])))
    expect(await countRows(h, "files", "id", file)).toBe(0)

    const { id, stream } = await newJob()
    const before = await readJob(id)
    await h.run(
      Effect.flatMap(EventStore, (s) => s.append(stream, [{ type: "JobAudited", data: { by: "x" } }])),
    )
    expect(await readJob(id)).toEqual({ ...before, version: 2, updated_at: await recordedAt(stream, 2) })
  })
})
