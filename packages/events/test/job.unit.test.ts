import { Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  createJob,
  decideJob,
  foldJob,
  type JobCommand,
  JobEvent,
  type JobEventRecord,
  type JobSnapshot,
  type JobState,
  type TaskStatus,
} from "../src/index.ts"
import { at, OWNER, ok, refused, SHA, uuid } from "./support.ts"

const JOB = uuid(0x10b)
const SESSION = uuid(1)
const TASK = uuid(0x7a5)

const given = (state: JobState): JobSnapshot => ({
  id: JOB,
  ownerId: OWNER,
  state,
  version: 3,
  sessionId: SESSION,
  parentJobId: null,
})

const decodeJobEvent = Schema.decodeUnknownSync(JobEvent)
const when = (state: JobSnapshot, command: JobCommand) => {
  const result = decideJob(command, state)
  if (result._tag === "Success") for (const event of result.success) decodeJobEvent(event)
  return result
}

const file = { fileId: uuid(0xf11e), sha256: SHA, name: "out.log", mimeType: "text/plain", size: 10 }

/** One command of each kind, with the event it makes and the states docs/DOMAIN.md allows it from. */
const cases: ReadonlyArray<{
  readonly command: JobCommand
  readonly event: JobEvent
  readonly from: ReadonlyArray<JobState>
}> = [
  {
    command: { type: "StartJob", worker: "w1" },
    event: { type: "JobStarted", worker: "w1" },
    from: ["queued"],
  },
  {
    command: { type: "ProgressJob", progress: 0.5, message: "half" },
    event: { type: "JobProgressed", progress: 0.5, message: "half" },
    from: ["running"],
  },
  {
    command: { type: "PauseJob", reason: "later" },
    event: { type: "JobPaused", reason: "later" },
    from: ["running"],
  },
  { command: { type: "ResumeJob" }, event: { type: "JobResumed" }, from: ["paused"] },
  {
    command: { type: "CompleteJob", output: { ok: 1 } },
    event: { type: "JobCompleted", output: { ok: 1 } },
    from: ["running"],
  },
  {
    command: { type: "FailJob", error: "boom", details: { at: 3 } },
    event: { type: "JobFailed", error: "boom", details: { at: 3 } },
    from: ["queued", "running", "paused"],
  },
  {
    command: { type: "CancelJob", reason: null },
    event: { type: "JobCancelled", reason: null },
    from: ["queued", "running", "paused"],
  },
  {
    command: { type: "AddTask", taskId: TASK, name: "compile", input: [1] },
    event: { type: "TaskAdded", taskId: TASK, name: "compile", input: [1] },
    from: ["queued", "running", "paused"],
  },
  {
    command: {
      type: "UpdateTask",
      taskId: TASK,
      status: "running",
      output: null,
      error: null,
      progress: 0.1,
      current: { status: "pending" },
    },
    event: { type: "TaskUpdated", taskId: TASK, status: "running", output: null, error: null, progress: 0.1 },
    from: ["queued", "running", "paused"],
  },
  {
    command: { type: "RecordArtifact", artifactId: uuid(0xa7), file, kind: "log" },
    event: {
      type: "ArtifactRecorded",
      artifactId: uuid(0xa7),
      fileId: file.fileId,
      kind: "log",
      name: "out.log",
      sha256: SHA,
      mimeType: "text/plain",
      size: 10,
    },
    from: ["queued", "running", "paused", "completed", "failed"],
  },
]

const states: ReadonlyArray<JobState> = ["queued", "running", "paused", "completed", "failed", "cancelled"]
const terminal = (state: JobState) => state === "completed" || state === "failed" || state === "cancelled"

describe("createJob", () => {
  it("creates a job with its type, input, session and parent", () => {
    const event = createJob({
      jobId: JOB,
      ownerId: OWNER,
      jobType: "codegen",
      input: { a: 1 },
      parentJobId: uuid(9),
      sessionId: SESSION,
    })
    expect(event).toEqual({
      type: "JobCreated",
      jobId: JOB,
      ownerId: OWNER,
      jobType: "codegen",
      input: { a: 1 },
      parentJobId: uuid(9),
      sessionId: SESSION,
    })
    decodeJobEvent(event)
  })
})

describe("the job state machine", () => {
  for (const { command, event, from } of cases) {
    for (const state of states) {
      if (from.includes(state)) {
        it(`${command.type} is allowed from ${state}`, () => {
          expect(ok(when(given(state), command))).toEqual([event])
        })
      } else {
        it(`${command.type} is refused from ${state}`, () => {
          const error = refused(
            when(given(state), command),
            "InvalidTransition",
            terminal(state)
              ? new RegExp(`\\(${state}\\): the job is ${state}, and a ${state} job is final`)
              : new RegExp(`\\(${state}\\): the job is ${state}; only a .*${from[0]}.* job can do that`),
          )
          expect(error).toMatchObject({ entity: "job", id: JOB, state })
        })
      }
    }
  }

  it("names the allowed states in the refusal", () => {
    refused(
      when(given("paused"), { type: "StartJob", worker: null }),
      "InvalidTransition",
      /Cannot start job .*only a queued job/,
    )
    refused(
      when(given("completed"), { type: "CancelJob", reason: null }),
      "InvalidTransition",
      /Cannot cancel job .*\(completed\): the job is completed, and a completed job is final/,
    )
  })
})

describe("UpdateTask", () => {
  const update = (current: { status: TaskStatus } | null): JobCommand => ({
    type: "UpdateTask",
    taskId: TASK,
    status: "completed",
    output: { r: 1 },
    error: null,
    progress: 1,
    current,
  })

  it("updates a pending or running task", () => {
    for (const status of ["pending", "running"] as const) {
      expect(ok(when(given("running"), update({ status })))).toEqual([
        {
          type: "TaskUpdated",
          taskId: TASK,
          status: "completed",
          output: { r: 1 },
          error: null,
          progress: 1,
        },
      ])
    }
  })

  it("does not find a task the job does not have", () => {
    const error = refused(
      when(given("running"), update(null)),
      "NotFound",
      new RegExp(`task ${TASK} was not found`),
    )
    expect(error).toMatchObject({ entity: "task", id: TASK })
  })

  it("refuses to change a finished task", () => {
    for (const status of ["completed", "failed", "skipped", "cancelled"] as const) {
      const error = refused(
        when(given("running"), update({ status })),
        "InvalidTransition",
        new RegExp(
          `Cannot update task ${TASK} \\(${status}\\): the task is ${status}, and a ${status} task is final`,
        ),
      )
      expect(error).toMatchObject({ entity: "task", state: status })
    }
  })
})

const recorded = (events: ReadonlyArray<JobEvent>): Array<JobEventRecord> =>
  events.map((event, i) => ({ version: i + 1, event, recordedAt: at(i + 1, 7) }))

const created = createJob({
  jobId: JOB,
  ownerId: OWNER,
  jobType: "codegen",
  input: { spec: "x" },
  parentJobId: null,
  sessionId: SESSION,
})

describe("foldJob", () => {
  it("takes JobPurged as a version only: the job keeps its state, and the event decodes", () => {
    const before = recorded([created, { type: "JobStarted", worker: null }])
    const purged = { type: "JobPurged" as const, reason: "erasure", throughVersion: 2 }
    expect(decodeJobEvent(purged)).toEqual(purged)
    const view = foldJob([...before, { version: 3, event: purged, recordedAt: at(3, 7) }])
    expect(view).toEqual({ ...foldJob(before), version: 3, updatedAt: at(3, 7) })
    expect(view.state).toBe("running")
  })

  it("folds a job that ran, paused and completed, with its tasks and artifacts", () => {
    const view = foldJob(
      recorded([
        created,
        { type: "JobStarted", worker: "w1" },
        { type: "TaskAdded", taskId: TASK, name: "compile", input: 1 },
        { type: "JobProgressed", progress: 0.4, message: "compiling" },
        { type: "JobPaused", reason: null },
        { type: "JobResumed" },
        { type: "TaskUpdated", taskId: TASK, status: "completed", output: "ok", error: null, progress: 1 },
        { type: "JobCompleted", output: { files: 2 } },
        {
          type: "ArtifactRecorded",
          artifactId: uuid(0xa7),
          fileId: file.fileId,
          kind: "code",
          name: "out.ts",
          sha256: SHA,
          mimeType: "text/plain",
          size: 10,
        },
      ]),
    )
    expect(view).toEqual({
      id: JOB,
      ownerId: OWNER,
      sessionId: SESSION,
      parentJobId: null,
      jobType: "codegen",
      state: "completed",
      input: { spec: "x" },
      output: { files: 2 },
      error: null,
      errorDetails: null,
      progress: 0.4,
      progressMessage: "compiling",
      version: 9,
      createdAt: at(1, 7),
      updatedAt: at(9, 7),
      startedAt: at(2, 7),
      finishedAt: at(8, 7),
      tasks: [
        {
          taskId: TASK,
          name: "compile",
          status: "completed",
          input: 1,
          output: "ok",
          error: null,
          progress: 1,
          createdAt: at(3, 7),
          updatedAt: at(7, 7),
        },
      ],
      artifacts: [
        {
          artifactId: uuid(0xa7),
          fileId: file.fileId,
          sessionId: SESSION,
          kind: "code",
          name: "out.ts",
          sha256: SHA,
          mimeType: "text/plain",
          size: 10,
          createdAt: at(9, 7),
        },
      ],
    })
  })

  it("folds a failed and a cancelled job", () => {
    expect(
      foldJob(recorded([created, { type: "JobFailed", error: "boom", details: { code: 2 } }])),
    ).toMatchObject({
      state: "failed",
      error: "boom",
      errorDetails: { code: 2 },
      startedAt: null,
      finishedAt: at(2, 7),
    })
    expect(
      foldJob(
        recorded([created, { type: "JobStarted", worker: null }, { type: "JobCancelled", reason: "x" }]),
      ),
    ).toMatchObject({
      state: "cancelled",
      startedAt: at(2, 7),
      finishedAt: at(3, 7),
    })
  })

  it("needs a stream that starts with JobCreated", () => {
    expect(() => foldJob(recorded([{ type: "JobResumed" }]))).toThrow(/starts with JobCreated/)
    expect(() => foldJob(recorded([created, created]))).toThrow(/created once/)
  })
})

describe("job properties", () => {
  it("any sequence of decided commands follows the state machine, and finished tasks never change", () => {
    const lifecycle = cases
      .map(({ command }) => command)
      .filter((c) => c.type !== "AddTask" && c.type !== "UpdateTask")
    const taskStatus = fc.constantFrom<TaskStatus>(
      "pending",
      "running",
      "completed",
      "failed",
      "skipped",
      "cancelled",
    )
    const command = fc.oneof(
      fc.constantFrom(...lifecycle),
      fc.record({ task: fc.integer({ min: 0, max: 2 }), status: taskStatus }),
    )
    const nextState: Partial<Record<JobCommand["type"], JobState>> = {
      StartJob: "running",
      PauseJob: "paused",
      ResumeJob: "running",
      CompleteJob: "completed",
      FailJob: "failed",
      CancelJob: "cancelled",
    }
    /** Adds the task the first time it is named, updates it afterwards. */
    const taskCommand = (
      tasks: ReadonlyArray<{ readonly taskId: string; readonly status: TaskStatus }>,
      c: { readonly task: number; readonly status: TaskStatus },
    ): JobCommand => {
      const taskId = uuid(0x7a50 + c.task)
      const task = tasks.find((t) => t.taskId === taskId)
      return task === undefined
        ? { type: "AddTask", taskId, name: "t", input: null }
        : {
            type: "UpdateTask",
            taskId,
            status: c.status,
            output: null,
            error: null,
            progress: null,
            current: { status: task.status },
          }
    }
    fc.assert(
      fc.property(fc.array(command, { maxLength: 30, size: "max" }), (commands) => {
        const log = recorded([created])
        for (const c of commands) {
          const view = foldJob(log)
          const snapshot: JobSnapshot = {
            id: JOB,
            ownerId: OWNER,
            state: view.state,
            version: view.version,
            sessionId: SESSION,
            parentJobId: null,
          }
          const decided: JobCommand = "task" in c ? taskCommand(view.tasks, c) : c
          const result = when(snapshot, decided)
          if (result._tag === "Failure") continue
          for (const event of result.success)
            log.push({ version: log.length + 1, event, recordedAt: at(log.length + 1, 7) })
          const after = foldJob(log)
          expect(after.state).toBe(nextState[decided.type] ?? view.state)
          // Terminal states never change; artifacts are the only thing a finished job still takes.
          if (terminal(view.state)) {
            expect(after.state).toBe(view.state)
            expect(decided.type).toBe("RecordArtifact")
          }
          for (const before of view.tasks) {
            if (["completed", "failed", "skipped", "cancelled"].includes(before.status)) {
              expect(after.tasks.find((t) => t.taskId === before.taskId)).toEqual(before)
            }
          }
        }
      }),
      { numRuns: 200 },
    )
  })
})
