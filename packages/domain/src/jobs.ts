import {
  createJob,
  decideJob,
  type Forbidden,
  InvalidCommand,
  type InvalidTransition,
  type JobCommand,
  type JobSnapshot,
  NotFound,
  toStored,
} from "@chronicle/events"
import type { ArtifactKind, JobState, Json, TaskStatus } from "@chronicle/events/types"
import {
  type BatchTooLarge,
  type Database,
  type EventStore,
  type EventTooLarge,
  type IdempotencyConflict,
  isUuid,
  type VersionConflict,
} from "@chronicle/store"
import { Context, Effect, Layer } from "effect"
import { v7 as uuidv7 } from "uuid"
import { type Actor, ensureVisible, listScope, ownerFor } from "./actor.ts"
import { type CommandOptions, type CommandOutcome, type RecordedDomainEvent, runCommand } from "./command.ts"
import {
  budgeted,
  budgetParam,
  cursorTime,
  decodePageCursor,
  type PageRequest,
  pageLimit,
  ROW_OVERHEAD_BYTES,
  toPage,
} from "./paging.ts"
import { jobStreamId } from "./queries.ts"
import { pageKey } from "./row-schema.ts"
import {
  type Artifact,
  type Job,
  type Page,
  type Task,
  toArtifact,
  toFileInfo,
  toJob,
  toTask,
} from "./rows.ts"
import { layerServices } from "./services.ts"
import { loadSession } from "./session/load.ts"

export interface CreateJobInput {
  readonly type: string
  readonly input?: Json | undefined
  readonly sessionId?: string | null | undefined
  readonly parentJobId?: string | null | undefined
}

export interface NewTaskInput {
  readonly name: string
  readonly input?: Json
}

export interface TaskUpdateInput {
  readonly taskId: string
  readonly status: TaskStatus
  readonly output?: Json
  readonly error?: string | null
  readonly progress?: number | null
}

export interface ArtifactInput {
  readonly fileId: string
  readonly kind: ArtifactKind
  /** Default: the file's name. */
  readonly name?: string
}

export interface ListJobsInput extends PageRequest {
  readonly sessionId?: string | undefined
  readonly state?: JobState | undefined
  readonly parentJobId?: string | undefined
}

export type JobsError =
  | NotFound
  | Forbidden
  | InvalidTransition
  | InvalidCommand
  | VersionConflict
  | BatchTooLarge
  | EventTooLarge
  | IdempotencyConflict

export interface JobsService {
  readonly create: (actor: Actor, input: CreateJobInput) => Effect.Effect<Job, JobsError>
  readonly get: (actor: Actor, id: string) => Effect.Effect<Job, JobsError>
  readonly list: (actor: Actor, input: ListJobsInput) => Effect.Effect<Page<Job>, JobsError>
  /** Runs a lifecycle command (start, progress, pause, resume, complete, fail, cancel). */
  readonly transition: (
    actor: Actor,
    id: string,
    command: Exclude<JobCommand, { type: "AddTask" | "UpdateTask" | "RecordArtifact" }>,
    options?: CommandOptions,
  ) => Effect.Effect<Job, JobsError>
  readonly addTask: (
    actor: Actor,
    id: string,
    input: NewTaskInput,
    options?: CommandOptions,
  ) => Effect.Effect<Task, JobsError>
  readonly updateTask: (
    actor: Actor,
    id: string,
    input: TaskUpdateInput,
    options?: CommandOptions,
  ) => Effect.Effect<Task, JobsError>
  readonly listTasks: (actor: Actor, id: string, page: PageRequest) => Effect.Effect<Page<Task>, JobsError>
  readonly recordArtifact: (
    actor: Actor,
    id: string,
    input: ArtifactInput,
    options?: CommandOptions,
  ) => Effect.Effect<Artifact, JobsError>
  readonly listArtifacts: (
    actor: Actor,
    of: { readonly jobId: string } | { readonly sessionId: string },
    page: PageRequest,
  ) => Effect.Effect<Page<Artifact>, JobsError>
}

const JOB_COLUMNS = `id::text, owner_id::text, session_id::text, parent_job_id::text, job_type, state, input, output,
  error, error_details, progress, progress_message, version, created_at, updated_at, started_at, finished_at`
const jobKey = pageKey("job", { cursor_at: "text", id: "text" })
const taskKey = pageKey("task", { cursor_at: "text", task_id: "text" })
const artifactKey = pageKey("artifact", { cursor_at: "text", artifact_id: "text" })

/**
 * A job's tasks or artifacts past a cursor ($2, $3), in (created_at, id) order: a statement
 * with a cursor and one without, rather than one with `$2 is null or …`, whose generic plan
 * (a prepared statement's, once it stops planning per call) keeps the key off the index.
 */
const afterKey = (after: ReadonlyArray<string> | null, id: string) =>
  after === null
    ? "$2::text is null and $3::uuid is null"
    : `(created_at, ${id}) > ($2::text::timestamptz, $3::uuid)`

/** Background jobs, their tasks and the artifacts they produce. */
export class Jobs extends Context.Service<Jobs, JobsService>()("@chronicle/domain/Jobs") {
  static readonly layer = Layer.effect(
    Jobs,
    Effect.gen(function* () {
      const { db, store, provide } = yield* layerServices
      const query = (text: string, params: ReadonlyArray<unknown>) =>
        db.query(text, params).pipe(Effect.orDie)

      const load = (actor: Actor, id: string) =>
        Effect.gen(function* () {
          if (!isUuid(id)) return yield* new NotFound({ entity: "job", id })
          const rows = yield* query(`select ${JOB_COLUMNS} from chronicle.jobs where id = $1::uuid`, [id])
          if (rows[0] === undefined) return yield* new NotFound({ entity: "job", id })
          const job = toJob(rows[0])
          yield* ensureVisible(actor, job.ownerId, "job", id)
          return job
        })

      /** The job as its events leave it (what the `jobs` projection writes), for the next command. */
      const advance = (job: Job, events: ReadonlyArray<RecordedDomainEvent>): Job => {
        let next = job
        for (const { event, version, recordedAt } of events) {
          next = { ...next, version, updatedAt: recordedAt }
          switch (event.type) {
            case "JobStarted":
              next = { ...next, state: "running", startedAt: recordedAt }
              break
            case "JobPaused":
              next = { ...next, state: "paused" }
              break
            case "JobResumed":
              next = { ...next, state: "running" }
              break
            case "JobProgressed":
              next = { ...next, progress: event.progress, progressMessage: event.message }
              break
            case "JobCompleted":
              next = { ...next, state: "completed", finishedAt: recordedAt, output: event.output }
              break
            case "JobFailed":
              next = {
                ...next,
                state: "failed",
                finishedAt: recordedAt,
                error: event.error,
                errorDetails: event.details,
              }
              break
            case "JobCancelled":
              next = { ...next, state: "cancelled", finishedAt: recordedAt }
              break
            default:
              // Tasks and artifacts: the job's row only moves on.
              break
          }
        }
        return next
      }

      const snapshot = (job: Job): JobSnapshot => ({
        id: job.id,
        ownerId: job.ownerId,
        state: job.state,
        version: job.version,
        sessionId: job.sessionId,
        parentJobId: job.parentJobId,
      })

      const execute = <E>(
        actor: Actor,
        id: string,
        build: (state: JobSnapshot) => Effect.Effect<JobCommand, E, Database | EventStore>,
        options?: CommandOptions,
        input?: unknown,
      ): Effect.Effect<CommandOutcome<Job>, E | JobsError, Database | EventStore> =>
        runCommand({
          actor,
          streamId: jobStreamId(id),
          load: load(actor, id),
          authorize: (job: Job) => ensureVisible(actor, job.ownerId, "job", id),
          advance,
          build: (job: Job) => build(snapshot(job)),
          decide: (command: JobCommand, job: Job) => decideJob(command, snapshot(job)),
          options,
          input,
        })

      const create = Effect.fn("Jobs.create")(function* (actor: Actor, input: CreateJobInput) {
        const ownerId = yield* ownerFor(actor)
        const sessionId = input.sessionId ?? null
        const parentJobId = input.parentJobId ?? null
        // A job may belong to a session and have a parent job, both the same owner's.
        if (sessionId !== null) {
          const session = yield* loadSession(actor, sessionId)
          if (session.session.ownerId !== ownerId)
            return yield* new NotFound({ entity: "session", id: sessionId })
        }
        if (parentJobId !== null) {
          const parent = yield* load(actor, parentJobId)
          if (parent.ownerId !== ownerId) return yield* new NotFound({ entity: "job", id: parentJobId })
        }
        const jobId = uuidv7()
        const created = createJob({
          jobId,
          ownerId,
          jobType: input.type,
          input: input.input ?? null,
          parentJobId,
          sessionId,
        })
        yield* store
          .append(jobStreamId(jobId), [toStored(created)], { expectedVersion: "no_stream", ownerId })
          .pipe(Effect.orDie)
        return yield* load(actor, jobId)
      })

      const list = Effect.fn("Jobs.list")(function* (actor: Actor, input: ListJobsInput) {
        const limit = yield* pageLimit(input.limit)
        const after = yield* decodePageCursor(input.cursor, ["timestamp", "uuid"] as const)
        for (const [path, value] of [
          ["sessionId", input.sessionId],
          ["parentJobId", input.parentJobId],
        ] as const) {
          if (value !== undefined && !isUuid(value))
            return yield* new InvalidCommand({ path, reason: "must be a UUID" })
        }
        const rows = yield* query(
          budgeted(
            `select ${JOB_COLUMNS}, ${cursorTime("created_at")} as cursor_at,
                    octet_length(input::text) + coalesce(octet_length(output::text), 0)
                      + coalesce(octet_length(error), 0) + coalesce(octet_length(error_details::text), 0)
                      + coalesce(octet_length(progress_message), 0) + ${ROW_OVERHEAD_BYTES} as page_bytes
               from chronicle.jobs
              where ($1::uuid is null or owner_id = $1::uuid)
                and ($2::uuid is null or session_id = $2::uuid)
                and ($3::text is null or state = $3::text)
                and ($4::uuid is null or parent_job_id = $4::uuid)
                and ($5::text is null or (created_at, id) < ($5::text::timestamptz, $6::uuid))
              order by created_at desc, id desc limit $7`,
            "$8",
          ),
          [
            listScope(actor),
            input.sessionId ?? null,
            input.state ?? null,
            input.parentJobId ?? null,
            after?.[0] ?? null,
            after?.[1] ?? null,
            limit + 1,
            budgetParam(input.maxBytes),
          ],
        )
        return toPage(rows, limit, toJob, jobKey, "asc", input.maxBytes)
      })

      const transition = Effect.fn("Jobs.transition")(function* (
        actor: Actor,
        id: string,
        command: Exclude<JobCommand, { type: "AddTask" | "UpdateTask" | "RecordArtifact" }>,
        options?: CommandOptions,
      ) {
        const outcome = yield* execute(actor, id, () => Effect.succeed(command), options)
        return outcome.state ?? (yield* load(actor, id))
      })

      const taskById = (jobId: string, taskId: string) =>
        query(
          `select job_id::text, task_id::text, name, status, input, output, error, progress, created_at, updated_at
             from chronicle.tasks where job_id = $1::uuid and task_id = $2::uuid`,
          [jobId, taskId],
        ).pipe(Effect.map((rows) => (rows[0] === undefined ? undefined : toTask(rows[0]))))

      const addTask = Effect.fn("Jobs.addTask")(function* (
        actor: Actor,
        id: string,
        input: NewTaskInput,
        options?: CommandOptions,
      ) {
        const result = yield* execute(
          actor,
          id,
          () =>
            Effect.succeed<JobCommand>({
              type: "AddTask",
              taskId: uuidv7(),
              name: input.name,
              input: input.input ?? null,
            }),
          options,
          input,
        )
        const added = result.events[0]?.event
        if (added?.type !== "TaskAdded") return yield* Effect.die("no task recorded")
        const task = yield* taskById(id, added.taskId)
        return task ?? (yield* Effect.die("task row missing after append"))
      })

      const updateTask = Effect.fn("Jobs.updateTask")(function* (
        actor: Actor,
        id: string,
        input: TaskUpdateInput,
        options?: CommandOptions,
      ) {
        if (!isUuid(input.taskId)) return yield* new NotFound({ entity: "task", id: input.taskId })
        yield* execute(
          actor,
          id,
          () =>
            Effect.map(
              taskById(id, input.taskId),
              (task): JobCommand => ({
                type: "UpdateTask",
                taskId: input.taskId,
                status: input.status,
                output: input.output ?? null,
                error: input.error ?? null,
                progress: input.progress ?? null,
                current: task === undefined ? null : { status: task.status },
              }),
            ),
          options,
        )
        const task = yield* taskById(id, input.taskId)
        return task ?? (yield* Effect.die("task row missing after append"))
      })

      const listTasks = Effect.fn("Jobs.listTasks")(function* (actor: Actor, id: string, page: PageRequest) {
        yield* load(actor, id)
        const limit = yield* pageLimit(page.limit)
        const after = yield* decodePageCursor(page.cursor, ["timestamp", "uuid"] as const)
        const rows = yield* query(
          budgeted(
            `select job_id::text, task_id::text, name, status, input, output, error, progress, created_at, updated_at,
                    ${cursorTime("created_at")} as cursor_at,
                    octet_length(input::text) + coalesce(octet_length(output::text), 0)
                      + coalesce(octet_length(error), 0) + ${ROW_OVERHEAD_BYTES} as page_bytes
               from chronicle.tasks
              where job_id = $1::uuid and ${afterKey(after, "task_id")}
              order by created_at, task_id limit $4`,
            "$5",
          ),
          [id, after?.[0] ?? null, after?.[1] ?? null, limit + 1, budgetParam(page.maxBytes)],
        )
        return toPage(rows, limit, toTask, taskKey, "asc", page.maxBytes)
      })

      const ARTIFACT_COLUMNS = `job_id::text, artifact_id::text, session_id::text, file_id::text, kind, name, sha256,
        mime_type, size, created_at`

      const recordArtifact = Effect.fn("Jobs.recordArtifact")(function* (
        actor: Actor,
        id: string,
        input: ArtifactInput,
        options?: CommandOptions,
      ) {
        if (!isUuid(input.fileId)) return yield* new NotFound({ entity: "file", id: input.fileId })
        const result = yield* execute(
          actor,
          id,
          (state) =>
            Effect.gen(function* () {
              const rows = yield* query(
                `select id::text, owner_id::text, sha256, name, mime_type, size, created_at
                   from chronicle.files where id = $1::uuid`,
                [input.fileId],
              )
              const file = rows[0] === undefined ? undefined : toFileInfo(rows[0])
              if (file === undefined || file.ownerId !== state.ownerId) {
                return yield* new NotFound({ entity: "file", id: input.fileId })
              }
              return {
                type: "RecordArtifact",
                artifactId: uuidv7(),
                kind: input.kind,
                file: {
                  fileId: input.fileId,
                  sha256: file.sha256,
                  name: input.name ?? file.name,
                  mimeType: file.mimeType,
                  size: file.size,
                },
              } satisfies JobCommand
            }),
          options,
          input,
        )
        const recorded = result.events[0]?.event
        if (recorded?.type !== "ArtifactRecorded") return yield* Effect.die("no artifact recorded")
        const rows = yield* query(
          `select ${ARTIFACT_COLUMNS} from chronicle.artifacts where job_id = $1::uuid and artifact_id = $2::uuid`,
          [id, recorded.artifactId],
        )
        return rows[0] === undefined
          ? yield* Effect.die("artifact row missing after append")
          : toArtifact(rows[0])
      })

      const listArtifacts = Effect.fn("Jobs.listArtifacts")(function* (
        actor: Actor,
        of: { readonly jobId: string } | { readonly sessionId: string },
        page: PageRequest,
      ) {
        if ("jobId" in of) yield* load(actor, of.jobId)
        else yield* loadSession(actor, of.sessionId)
        const limit = yield* pageLimit(page.limit)
        const after = yield* decodePageCursor(page.cursor, ["timestamp", "uuid"] as const)
        const rows = yield* query(
          `select ${ARTIFACT_COLUMNS}, ${cursorTime("created_at")} as cursor_at from chronicle.artifacts
            where ${"jobId" in of ? "job_id" : "session_id"} = $1::uuid and ${afterKey(after, "artifact_id")}
            order by created_at, artifact_id limit $4`,
          ["jobId" in of ? of.jobId : of.sessionId, after?.[0] ?? null, after?.[1] ?? null, limit + 1],
        )
        return toPage(rows, limit, toArtifact, artifactKey, "asc", page.maxBytes)
      })

      return Jobs.of({
        create: (a, i) => provide(create(a, i)),
        get: (a, id) => provide(load(a, id)),
        list: (a, i) => provide(list(a, i)),
        transition: (a, id, c, o) => provide(transition(a, id, c, o)),
        addTask: (a, id, i, o) => provide(addTask(a, id, i, o)),
        updateTask: (a, id, i, o) => provide(updateTask(a, id, i, o)),
        listTasks: (a, id, p) => provide(listTasks(a, id, p)),
        recordArtifact: (a, id, i, o) => provide(recordArtifact(a, id, i, o)),
        listArtifacts: (a, of, p) => provide(listArtifacts(a, of, p)),
      })
    }),
  )
}
