/**
 * The read models' upkeep: each projection's cursor, lag and throughput; rebuilds (started
 * here, followed live to the end); and the as-of analytics snapshots.
 */
import { type FormEvent, useState } from "react"
import { errorCode, type RouterOutputs, useApi } from "../api.ts"
import { useInterval, useQuery } from "../hooks.ts"
import {
  Badge,
  ConfirmDialog,
  DateTime,
  Empty,
  ErrorMessage,
  ProgressBar,
  ShortId,
  StateBadge,
  Time,
} from "../ui.tsx"

type Run = RouterOutputs["projections"]["run"]

const STATUS_POLL_MS = 2000
const RUN_POLL_MS = 400

const number = new Intl.NumberFormat()
const fmt = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined ? "–" : number.format(Number(n.toFixed(digits)))

const runProgress = (run: Run) =>
  run.state === "completed" ? 1 : run.eventsTotal > 0 ? Math.min(1, run.eventsDone / run.eventsTotal) : 0

/**
 * The projections' upkeep is the service's, not a user's: a user's token is refused it
 * (FORBIDDEN), so a user is told what it takes instead of shown a page of refusals.
 */
export const ProjectionsPage = () => {
  const { identity } = useApi()
  return identity.kind === "user" ? <ServiceRoleOnly /> : <ProjectionsManager />
}

const ServiceRoleOnly = () => (
  <section>
    <div className="page-head">
      <h1>Projections</h1>
    </div>
    <div className="panel" role="note" aria-label="Service role only">
      <p>
        <strong>The projections are looked after by the service role.</strong> Their status, rebuilds and
        as-of snapshots concern every user's data, so a user's token may not see or start them.
      </p>
      <p>
        Sign out and sign in with the service key (<code>CHRONICLE_SERVICE_KEY</code>), or run the server
        without auth on this machine (dev mode); from a shell, <code>chronicle status</code> and{" "}
        <code>chronicle rebuild</code> do the same. Your own sessions, jobs and analytics are under the other
        tabs.
      </p>
    </div>
  </section>
)

const ProjectionsManager = () => {
  const { client } = useApi()
  const status = useQuery(() => client.projections.status.query(), [client])
  const runs = useQuery(() => client.projections.runs.query({ limit: 10 }), [client])
  const [watching, setWatching] = useState<string | null>(null)
  const running = (runs.data ?? []).some((r) => r.state === "running") || watching !== null
  useInterval(
    () => {
      status.reload()
      runs.reload()
    },
    running ? RUN_POLL_MS * 2 : STATUS_POLL_MS,
  )
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const rebuild = async (projections?: ReadonlyArray<string>) => {
    setBusy(true)
    setError(null)
    try {
      const { runId } = await client.projections.rebuild.mutate(
        projections === undefined ? {} : { projections: [...projections] },
      )
      setWatching(runId)
      runs.reload()
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }

  // A token the studio could not tell apart from the service key, refused all the same.
  if (errorCode(status.error) === "FORBIDDEN") return <ServiceRoleOnly />
  return (
    <section>
      <div className="page-head">
        <h1>Projections</h1>
        {status.data === undefined ? null : (
          <span className="muted">log head: position {fmt(status.data.head.globalPosition)}</span>
        )}
        <button type="button" className="primary" disabled={busy} onClick={() => rebuild()}>
          Rebuild all
        </button>
      </div>
      <ErrorMessage error={status.error} title="No status" />
      <ErrorMessage error={error} title="Rebuild not started" />
      {watching === null ? null : <RunWatcher runId={watching} onClose={() => setWatching(null)} />}
      <div className="table-wrap">
        <table>
          <caption className="visually-hidden">Projections</caption>
          <thead>
            <tr>
              <th scope="col">Projection</th>
              <th scope="col">State</th>
              <th scope="col" className="hide-narrow">
                Mode
              </th>
              <th scope="col" className="num">
                Lag (events)
              </th>
              <th scope="col" className="num hide-narrow">
                Lag (s)
              </th>
              <th scope="col" className="num hide-narrow">
                Events/s
              </th>
              <th scope="col" className="num hide-narrow">
                Rows
              </th>
              <th scope="col" className="hide-narrow">
                Cursor
              </th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(status.data?.projections ?? []).map((p) => (
              <tr key={p.name} data-projection={p.name}>
                <td>
                  <strong>{p.name}</strong>{" "}
                  <span className="muted small">
                    v{p.version}
                    {p.builtVersion === p.version ? "" : ` (built v${p.builtVersion ?? "–"})`}
                  </span>
                  <div className="muted small">{p.description}</div>
                  {p.lastError === null ? null : (
                    <div className="error small">
                      {p.lastError}
                      {p.retryAt === null ? null : (
                        <>
                          {" "}
                          · next attempt <Time iso={p.retryAt} />; its last good tables keep serving
                        </>
                      )}
                    </div>
                  )}
                </td>
                <td>
                  <StateBadge state={p.state} />
                </td>
                <td className="hide-narrow">{p.mode}</td>
                <td className="num">{fmt(p.lagEvents)}</td>
                <td className="num hide-narrow">{fmt(p.lagSeconds, 1)}</td>
                <td className="num hide-narrow">{fmt(p.eventsPerSecond)}</td>
                <td
                  className="num hide-narrow"
                  title={p.tables.map((t) => `${t.name}: ${t.estimated ? "≈" : ""}${t.rows}`).join("\n")}
                >
                  {p.tables.some((t) => t.estimated) ? "≈" : ""}
                  {fmt(p.tables.reduce((sum, t) => sum + t.rows, 0))}
                </td>
                <td className="hide-narrow">
                  <code className="small" title={p.cursor ?? ""}>
                    {p.cursor === null ? "–" : p.cursor.slice(0, 12)}
                  </code>
                </td>
                <td>
                  <button
                    type="button"
                    disabled={busy}
                    onClick={() => rebuild([p.name])}
                    aria-label={`Rebuild ${p.name}`}
                  >
                    Rebuild
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2>Recent runs</h2>
      <ErrorMessage error={runs.error} title="No runs" />
      {runs.data?.length === 0 ? <Empty>No rebuild or snapshot has run yet.</Empty> : null}
      <ul className="cards">
        {(runs.data ?? []).map((run) => (
          <li key={run.id} className="card">
            <RunSummary run={run} />
          </li>
        ))}
      </ul>

      <Snapshots onStarted={(runId) => setWatching(runId)} />
    </section>
  )
}

const RunSummary = ({ run }: { run: Run }) => (
  <>
    <div className="card-head">
      <span>
        {run.kind === "snapshot" ? `Snapshot “${run.label ?? ""}”` : "Rebuild"} of{" "}
        {run.projections.join(", ")} <StateBadge state={run.state} />
      </span>
      <span className="muted small">
        started <Time iso={run.startedAt} />
      </span>
    </div>
    <ProgressBar value={runProgress(run)} label={`Progress of run ${run.id.slice(0, 8)}`} />
    <div className="muted small">
      {run.phase} · {fmt(run.eventsDone)} / {fmt(run.eventsTotal)} events
      {run.eventsPerSecond === null ? "" : ` · ${fmt(run.eventsPerSecond)} events/s`}
      {run.etaSeconds === null || run.state !== "running" ? "" : ` · about ${fmt(run.etaSeconds)} s left`}
      {run.swapAttempts === 0 ? "" : ` · swap deferred ${fmt(run.swapAttempts)}× (a table was in use)`}
    </div>
    {run.error === null ? null : <div className="error small">{run.error}</div>}
  </>
)

/** Follows one run closely (`projections.run`) until it ends. */
const RunWatcher = ({ runId, onClose }: { runId: string; onClose: () => void }) => {
  const { client } = useApi()
  const run = useQuery(() => client.projections.run.query({ runId }), [runId])
  const [cancelError, setCancelError] = useState<unknown>(null)
  const live = run.data === undefined || run.data.state === "running"
  useInterval(run.reload, RUN_POLL_MS, live)
  return (
    <section className="panel watcher" aria-label="Current run" data-run={runId}>
      <ErrorMessage error={run.error} title="Run not found" />
      {run.data === undefined ? <p role="status">Starting…</p> : <RunSummary run={run.data} />}
      <div className="actions">
        {live ? (
          <button
            type="button"
            onClick={() => client.projections.cancel.mutate({ runId }).then(run.reload, setCancelError)}
          >
            Cancel
          </button>
        ) : (
          <button type="button" onClick={onClose}>
            Dismiss
          </button>
        )}
      </div>
      <ErrorMessage error={cancelError} title="Not cancelled" />
    </section>
  )
}

type SnapshotInfo = RouterOutputs["projections"]["snapshots"][number]

/** What a snapshot was taken as of: a time, a checkpoint or a cursor, with the cursor it became. */
const SnapshotBound = ({ asOf, cursor }: { asOf: SnapshotInfo["asOf"]; cursor: string | null }) => {
  const at = cursor === null ? null : <span className="muted"> (cursor {cursor})</span>
  if (asOf === null) return <>cursor {cursor ?? "–"}</>
  if ("timestamp" in asOf)
    return (
      <>
        <DateTime iso={asOf.timestamp} />
        {at}
      </>
    )
  if ("checkpointId" in asOf)
    return (
      <>
        checkpoint <ShortId id={asOf.checkpointId} />
        {at}
      </>
    )
  return <>cursor {asOf.cursor}</>
}

const Snapshots = ({ onStarted }: { onStarted: (runId: string) => void }) => {
  const { client } = useApi()
  const snapshots = useQuery(() => client.projections.snapshots.query(), [client])
  useInterval(snapshots.reload, STATUS_POLL_MS * 2)
  const [label, setLabel] = useState("")
  const [at, setAt] = useState("")
  const [error, setError] = useState<unknown>(null)
  const [dropping, setDropping] = useState<string | null>(null)
  const [dropError, setDropError] = useState<unknown>(null)
  const create = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    try {
      const { runId } = await client.projections.snapshot.mutate({
        label: label.trim(),
        asOf: { timestamp: at === "" ? new Date().toISOString() : new Date(at).toISOString() },
      })
      setLabel("")
      onStarted(runId)
      snapshots.reload()
    } catch (e) {
      setError(e)
    }
  }
  const drop = async () => {
    if (dropping === null) return
    try {
      await client.projections.dropSnapshot.mutate({ label: dropping })
      setDropping(null)
      snapshots.reload()
    } catch (e) {
      setDropError(e)
    }
  }
  return (
    <>
      <h2>As-of snapshots</h2>
      <p className="muted small">
        A snapshot builds the projections as they stood at a moment into their own schema, for analytics.
      </p>
      <form className="filters" onSubmit={create} aria-label="Take a snapshot">
        <label>
          Label
          <input value={label} onChange={(e) => setLabel(e.target.value)} placeholder="q3_close" required />
        </label>
        <label>
          As of (empty: now)
          <input type="datetime-local" value={at} onChange={(e) => setAt(e.target.value)} />
        </label>
        <button type="submit">Take snapshot</button>
      </form>
      <ErrorMessage error={error} title="Snapshot not started" />
      <ErrorMessage error={snapshots.error} title="No snapshots" />
      {snapshots.data?.length === 0 ? <Empty>No snapshots.</Empty> : null}
      <ul className="cards" aria-label="Snapshots">
        {(snapshots.data ?? []).map((s) => (
          <li key={s.label} className="card">
            <div className="card-head">
              <span>
                <strong>{s.label}</strong> <Badge>{s.schema}</Badge>
              </span>
              <button
                type="button"
                onClick={() => setDropping(s.label)}
                aria-label={`Drop snapshot ${s.label}`}
              >
                Drop
              </button>
            </div>
            <div className="muted small">
              as of <SnapshotBound asOf={s.asOf} cursor={s.asOfCursor} /> · {fmt(s.events)} events ·{" "}
              {s.projections.join(", ")} · taken <Time iso={s.createdAt} />
            </div>
          </li>
        ))}
      </ul>
      <ConfirmDialog
        open={dropping !== null}
        title={`Drop the snapshot “${dropping ?? ""}”?`}
        confirmLabel="Drop"
        error={dropError}
        onConfirm={drop}
        onCancel={() => {
          setDropping(null)
          setDropError(null)
        }}
      >
        <p>
          Its schema and tables are dropped. The log is not touched: the same snapshot can be taken again at
          any time.
        </p>
      </ConfirmDialog>
    </>
  )
}
