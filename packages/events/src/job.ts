/**
 * Background jobs: the decider for job commands and the in-memory fold of a `job-<id>` stream.
 *
 * State machine: queued → running ⇄ paused → completed | failed | cancelled. Jobs are never
 * reverted by a session rollback: they record what happened in the world.
 */
import { Result } from "effect"
import type { JobEvent } from "./catalog.ts"
import { InvalidTransition, NotFound } from "./errors.ts"
import type { ArtifactKind, JobState, Json, TaskStatus } from "./primitives.ts"
import { assertContiguous, type RecordedEvent } from "./recorded.ts"

type JobCreated = Extract<JobEvent, { readonly type: "JobCreated" }>

/** A job event as read from the `job-<id>` stream. */
export type JobEventRecord = RecordedEvent<JobEvent>

/** The states a job never leaves. */
export const TERMINAL_JOB_STATES = [
  "completed",
  "failed",
  "cancelled",
] as const satisfies ReadonlyArray<JobState>

export const isTerminalJobState = (state: JobState): boolean =>
  (TERMINAL_JOB_STATES as ReadonlyArray<JobState>).includes(state)

/** The task statuses a task never leaves. */
export const FINAL_TASK_STATUSES = [
  "completed",
  "failed",
  "skipped",
  "cancelled",
] as const satisfies ReadonlyArray<TaskStatus>

export const isFinalTaskStatus = (status: TaskStatus): boolean =>
  (FINAL_TASK_STATUSES as ReadonlyArray<TaskStatus>).includes(status)

// ----- decider ------------------------------------------------------------------------------

/** What the domain loads from the `jobs` read model before deciding. */
export interface JobSnapshot {
  readonly id: string
  readonly ownerId: string
  readonly state: JobState
  readonly version: number
  readonly sessionId: string | null
  readonly parentJobId: string | null
}

export interface StartJob {
  readonly type: "StartJob"
  readonly worker: string | null
}

export interface ProgressJob {
  readonly type: "ProgressJob"
  readonly progress: number
  readonly message: string | null
}

export interface PauseJob {
  readonly type: "PauseJob"
  readonly reason: string | null
}

export interface ResumeJob {
  readonly type: "ResumeJob"
}

export interface CompleteJob {
  readonly type: "CompleteJob"
  readonly output: Json
}

export interface FailJob {
  readonly type: "FailJob"
  readonly error: string
  readonly details: Json
}

export interface CancelJob {
  readonly type: "CancelJob"
  readonly reason: string | null
}

export interface AddTask {
  readonly type: "AddTask"
  readonly taskId: string
  readonly name: string
  readonly input: Json
}

export interface UpdateTask {
  readonly type: "UpdateTask"
  readonly taskId: string
  readonly status: TaskStatus
  readonly output: Json
  readonly error: string | null
  readonly progress: number | null
  /** The task as the `tasks` read model has it now, or null if the job has no such task. */
  readonly current: { readonly status: TaskStatus } | null
}

export interface RecordArtifact {
  readonly type: "RecordArtifact"
  readonly artifactId: string
  readonly file: {
    readonly fileId: string
    readonly sha256: string
    readonly name: string
    readonly mimeType: string
    readonly size: number
  }
  readonly kind: ArtifactKind
}

export type JobCommand =
  | StartJob
  | ProgressJob
  | PauseJob
  | ResumeJob
  | CompleteJob
  | FailJob
  | CancelJob
  | AddTask
  | UpdateTask
  | RecordArtifact

export type JobError = InvalidTransition | NotFound
export type JobDecision = Result.Result<ReadonlyArray<JobEvent>, JobError>

/** Creates a job; it starts queued. */
export const createJob = (input: {
  readonly jobId: string
  readonly ownerId: string
  readonly jobType: string
  readonly input: Json
  readonly parentJobId: string | null
  readonly sessionId: string | null
}): JobCreated => ({
  type: "JobCreated",
  jobId: input.jobId,
  ownerId: input.ownerId,
  jobType: input.jobType,
  input: input.input,
  parentJobId: input.parentJobId,
  sessionId: input.sessionId,
})

/**
 * For each command: the states it is allowed from and how an error message names it. Tasks
 * are added and updated while the job is not terminal; artifacts may still be recorded once
 * the job completed or failed (the output and logs of a finished run), but not once cancelled.
 */
const allowedFrom: Record<
  JobCommand["type"],
  { readonly from: ReadonlyArray<JobState>; readonly action: string }
> = {
  StartJob: { from: ["queued"], action: "start" },
  ProgressJob: { from: ["running"], action: "report progress on" },
  PauseJob: { from: ["running"], action: "pause" },
  ResumeJob: { from: ["paused"], action: "resume" },
  CompleteJob: { from: ["running"], action: "complete" },
  FailJob: { from: ["queued", "running", "paused"], action: "fail" },
  CancelJob: { from: ["queued", "running", "paused"], action: "cancel" },
  AddTask: { from: ["queued", "running", "paused"], action: "add a task to" },
  UpdateTask: { from: ["queued", "running", "paused"], action: "update a task of" },
  RecordArtifact: {
    from: ["queued", "running", "paused", "completed", "failed"],
    action: "record an artifact of",
  },
}

const orList = (words: ReadonlyArray<string>): string =>
  words.length <= 1 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`

const whyNot = (state: JobState, from: ReadonlyArray<JobState>): string =>
  isTerminalJobState(state)
    ? `the job is ${state}, and a ${state} job is final`
    : `the job is ${state}; only a ${orList(from)} job can do that`

const accept = (...events: ReadonlyArray<JobEvent>): JobDecision => Result.succeed(events)

/** Decides a command against the job's current state: the events to append, or why not. */
export const decideJob = (command: JobCommand, state: JobSnapshot): JobDecision => {
  const rule = allowedFrom[command.type]
  if (!rule.from.includes(state.state)) {
    return Result.fail(
      new InvalidTransition({
        entity: "job",
        id: state.id,
        state: state.state,
        action: rule.action,
        reason: whyNot(state.state, rule.from),
      }),
    )
  }
  switch (command.type) {
    case "StartJob":
      return accept({ type: "JobStarted", worker: command.worker })
    case "ProgressJob":
      return accept({ type: "JobProgressed", progress: command.progress, message: command.message })
    case "PauseJob":
      return accept({ type: "JobPaused", reason: command.reason })
    case "ResumeJob":
      return accept({ type: "JobResumed" })
    case "CompleteJob":
      return accept({ type: "JobCompleted", output: command.output })
    case "FailJob":
      return accept({ type: "JobFailed", error: command.error, details: command.details })
    case "CancelJob":
      return accept({ type: "JobCancelled", reason: command.reason })
    case "AddTask":
      return accept({ type: "TaskAdded", taskId: command.taskId, name: command.name, input: command.input })
    case "UpdateTask":
      if (command.current === null) return Result.fail(new NotFound({ entity: "task", id: command.taskId }))
      // A finished task is a fact about the run; changing it would rewrite what happened.
      if (isFinalTaskStatus(command.current.status)) {
        return Result.fail(
          new InvalidTransition({
            entity: "task",
            id: command.taskId,
            state: command.current.status,
            action: "update",
            reason: `the task is ${command.current.status}, and a ${command.current.status} task is final`,
          }),
        )
      }
      return accept({
        type: "TaskUpdated",
        taskId: command.taskId,
        status: command.status,
        output: command.output,
        error: command.error,
        progress: command.progress,
      })
    case "RecordArtifact":
      return accept({
        type: "ArtifactRecorded",
        artifactId: command.artifactId,
        fileId: command.file.fileId,
        kind: command.kind,
        name: command.file.name,
        sha256: command.file.sha256,
        mimeType: command.file.mimeType,
        size: command.file.size,
      })
  }
}

// ----- fold ---------------------------------------------------------------------------------

export interface TaskRow {
  readonly taskId: string
  readonly name: string
  readonly status: TaskStatus
  readonly input: Json
  readonly output: Json
  readonly error: string | null
  readonly progress: number | null
  readonly createdAt: string
  readonly updatedAt: string
}

export interface ArtifactRow {
  readonly artifactId: string
  readonly fileId: string
  /** The job's session, if any. */
  readonly sessionId: string | null
  readonly kind: ArtifactKind
  readonly name: string
  readonly sha256: string
  readonly mimeType: string
  readonly size: number
  readonly createdAt: string
}

/** A job as its `jobs`, `tasks` and `artifacts` rows read. */
export interface JobView {
  readonly id: string
  readonly ownerId: string
  readonly sessionId: string | null
  readonly parentJobId: string | null
  readonly jobType: string
  readonly state: JobState
  readonly input: Json
  /** Set when the job completes. */
  readonly output: Json
  /** Set when the job fails. */
  readonly error: string | null
  readonly errorDetails: Json
  /** The last reported progress (0 until the first report). */
  readonly progress: number
  readonly progressMessage: string | null
  readonly version: number
  readonly createdAt: string
  readonly updatedAt: string
  /** When the job first started. */
  readonly startedAt: string | null
  /** When the job reached a terminal state. */
  readonly finishedAt: string | null
  /** In the order they were added. */
  readonly tasks: ReadonlyArray<TaskRow>
  /** In the order they were recorded. */
  readonly artifacts: ReadonlyArray<ArtifactRow>
}

/** Folds a job's whole stream; a job has no rollback, so every event counts. */
export const foldJob = (events: ReadonlyArray<JobEventRecord>): JobView => {
  assertContiguous(events, "foldJob")
  const first = events[0]
  if (first === undefined || first.event.type !== "JobCreated") {
    throw new RangeError(`a job stream starts with JobCreated, not ${first?.event.type ?? "nothing"}`)
  }
  const created = first.event
  let view: JobView = {
    id: created.jobId,
    ownerId: created.ownerId,
    sessionId: created.sessionId,
    parentJobId: created.parentJobId,
    jobType: created.jobType,
    state: "queued",
    input: created.input,
    output: null,
    error: null,
    errorDetails: null,
    progress: 0,
    progressMessage: null,
    version: 1,
    createdAt: first.recordedAt,
    updatedAt: first.recordedAt,
    startedAt: null,
    finishedAt: null,
    tasks: [],
    artifacts: [],
  }
  for (const { version, event, recordedAt } of events.slice(1)) {
    const base = { ...view, version, updatedAt: recordedAt }
    switch (event.type) {
      case "JobCreated":
        throw new RangeError(`JobCreated at version ${version}: a job is created once, at version 1`)
      case "JobStarted":
        view = { ...base, state: "running", startedAt: view.startedAt ?? recordedAt }
        break
      case "JobProgressed":
        view = { ...base, progress: event.progress, progressMessage: event.message }
        break
      case "JobPaused":
        view = { ...base, state: "paused" }
        break
      case "JobResumed":
        view = { ...base, state: "running" }
        break
      case "JobCompleted":
        view = { ...base, state: "completed", output: event.output, finishedAt: recordedAt }
        break
      case "JobFailed":
        view = {
          ...base,
          state: "failed",
          error: event.error,
          errorDetails: event.details,
          finishedAt: recordedAt,
        }
        break
      case "JobCancelled":
        view = { ...base, state: "cancelled", finishedAt: recordedAt }
        break
      case "TaskAdded":
        view = {
          ...base,
          tasks: [
            ...view.tasks,
            {
              taskId: event.taskId,
              name: event.name,
              status: "pending",
              input: event.input,
              output: null,
              error: null,
              progress: null,
              createdAt: recordedAt,
              updatedAt: recordedAt,
            },
          ],
        }
        break
      case "TaskUpdated":
        view = {
          ...base,
          tasks: view.tasks.map((task) =>
            task.taskId === event.taskId
              ? {
                  ...task,
                  status: event.status,
                  output: event.output,
                  error: event.error,
                  progress: event.progress,
                  updatedAt: recordedAt,
                }
              : task,
          ),
        }
        break
      case "JobPurged":
        // An erasure: its content is already redacted in the events before it.
        view = base
        break
      case "ArtifactRecorded":
        view = {
          ...base,
          artifacts: [
            ...view.artifacts,
            {
              artifactId: event.artifactId,
              fileId: event.fileId,
              sessionId: view.sessionId,
              kind: event.kind,
              name: event.name,
              sha256: event.sha256,
              mimeType: event.mimeType,
              size: event.size,
              createdAt: recordedAt,
            },
          ],
        }
        break
    }
  }
  return view
}
