/** Jobs by state, with live progress; one job's tasks, output or error, and artifacts. */
import { useState } from "react"
import { type Job, useApi } from "../api.ts"
import { useDebounced, useLiveEvents, useQuery } from "../hooks.ts"
import { Link } from "../router.tsx"
import { ConnectionBadge, Empty, ErrorMessage, Json, ProgressBar, ShortId, StateBadge, Time } from "../ui.tsx"

const STATES = ["queued", "running", "paused", "completed", "failed", "cancelled"] as const
const PER_COLUMN = 50

const JOB_EVENTS = [
  "JobCreated",
  "JobStarted",
  "JobProgressed",
  "JobPaused",
  "JobResumed",
  "JobCompleted",
  "JobFailed",
  "JobCancelled",
  "TaskAdded",
  "TaskUpdated",
  "ArtifactRecorded",
]

export const JobsPage = () => {
  const { client } = useApi()
  const [revision, setRevision] = useState(0)
  const refresh = useDebounced(() => setRevision((r) => r + 1), 150)
  const connection = useLiveEvents({ types: JOB_EVENTS }, refresh)
  // One call per column; the client batches them into one request.
  const board = useQuery(
    () => Promise.all(STATES.map((state) => client.jobs.list.query({ state, limit: PER_COLUMN }))),
    [client, revision],
  )
  return (
    <section>
      <div className="page-head">
        <h1>Jobs</h1>
        <ConnectionBadge connection={connection} />
      </div>
      <ErrorMessage error={board.error} title="No jobs" />
      <div className="board">
        {STATES.map((state, i) => {
          const page = board.data?.[i]
          return (
            <section key={state} className="column" aria-label={`${state} jobs`}>
              <h2>
                <StateBadge state={state} /> <span className="muted">{page?.items.length ?? "…"}</span>
                {page?.nextCursor ? <span className="muted">+</span> : null}
              </h2>
              {page !== undefined && page.items.length === 0 ? <Empty>none</Empty> : null}
              <ul className="cards">
                {(page?.items ?? []).map((job) => (
                  <JobCard key={job.id} job={job} />
                ))}
              </ul>
            </section>
          )
        })}
      </div>
    </section>
  )
}

const JobCard = ({ job }: { job: Job }) => (
  <li className="card job" data-job={job.id}>
    <div className="card-head">
      <Link to={`/jobs/${job.id}`}>{job.type}</Link>
      <span className="muted small">
        <Time iso={job.updatedAt} />
      </span>
    </div>
    <ProgressBar value={job.progress} label={`Progress of ${job.type} ${job.id.slice(0, 8)}`} />
    {job.progressMessage === null ? null : <p className="small">{job.progressMessage}</p>}
    {job.error === null ? null : <p className="error small">{job.error}</p>}
  </li>
)

export const JobPage = ({ id }: { id: string }) => {
  const { client } = useApi()
  const [revision, setRevision] = useState(0)
  const refresh = useDebounced(() => setRevision((r) => r + 1), 150)
  const connection = useLiveEvents({ types: JOB_EVENTS }, (event) => {
    if (event.streamId === `job-${id}`) refresh()
  })
  const job = useQuery(() => client.jobs.get.query({ id }), [id, revision])
  const tasks = useQuery(() => client.jobs.listTasks.query({ id, limit: 500 }), [id, revision])
  const artifacts = useQuery(() => client.artifacts.list.query({ jobId: id, limit: 100 }), [id, revision])
  const j = job.data
  return (
    <section>
      <p className="crumbs">
        <Link to="/jobs">← Jobs</Link>
      </p>
      <ErrorMessage error={job.error} title="No job" />
      {j === undefined ? null : (
        <>
          <div className="page-head">
            <h1>{j.type}</h1>
            <StateBadge state={j.state} />
            <ConnectionBadge connection={connection} />
          </div>
          <ProgressBar value={j.progress} label="Progress" />
          {j.progressMessage === null ? null : <p>{j.progressMessage}</p>}
          <dl className="facts">
            <div>
              <dt>Id</dt>
              <dd>
                <code>{j.id}</code>
              </dd>
            </div>
            {j.sessionId === null ? null : (
              <div>
                <dt>Session</dt>
                <dd>
                  <Link to={`/sessions/${j.sessionId}`}>
                    <ShortId id={j.sessionId} />
                  </Link>
                </dd>
              </div>
            )}
            <div>
              <dt>Created</dt>
              <dd>
                <Time iso={j.createdAt} />
              </dd>
            </div>
            <div>
              <dt>Started</dt>
              <dd>
                <Time iso={j.startedAt} />
              </dd>
            </div>
            <div>
              <dt>Finished</dt>
              <dd>
                <Time iso={j.finishedAt} />
              </dd>
            </div>
          </dl>
          {j.error === null ? null : (
            <div className="error" role="alert">
              <strong>Failed:</strong> {j.error}
              {j.errorDetails === null ? null : <Json value={j.errorDetails} />}
            </div>
          )}
          <h2>Input</h2>
          <Json value={j.input} />
          {j.output === null ? null : (
            <>
              <h2>Output</h2>
              <Json value={j.output} />
            </>
          )}
        </>
      )}
      <h2>Tasks</h2>
      <ErrorMessage error={tasks.error} title="No tasks" />
      {tasks.data?.items.length === 0 ? <Empty>No tasks.</Empty> : null}
      <ul className="cards">
        {(tasks.data?.items ?? []).map((t) => (
          <li key={t.id} className="card">
            <div className="card-head">
              <span>
                {t.name} <StateBadge state={t.status} />
              </span>
              <span className="muted small">
                <Time iso={t.updatedAt} />
              </span>
            </div>
            <ProgressBar value={t.progress} label={`Progress of task ${t.name}`} />
            {t.error === null ? null : <p className="error small">{t.error}</p>}
            {t.output === null ? null : <Json value={t.output} />}
          </li>
        ))}
      </ul>
      <h2>Artifacts</h2>
      <ErrorMessage error={artifacts.error} title="No artifacts" />
      {artifacts.data?.items.length === 0 ? <Empty>No artifacts.</Empty> : null}
      <ul className="cards">
        {(artifacts.data?.items ?? []).map((a) => (
          <li key={a.id} className="card">
            <div className="card-head">
              <span>
                {a.name} <span className="muted">({a.kind})</span>
              </span>
              <span className="muted small">
                {a.mimeType} · {a.size} bytes
              </span>
            </div>
          </li>
        ))}
      </ul>
    </section>
  )
}
