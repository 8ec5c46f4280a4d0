/** The session as of a checkpoint or version, and the moves from there: roll back, fork. */
import { useState } from "react"
import { type AsOf, type Checkpoint, type Session, useApi } from "../../api.ts"
import { ConfirmDialog } from "../../ui.tsx"
import { contentDelta, contentOf, formatAt, listSentence, parseAt } from "./shared.tsx"

export const AsOfBar = ({
  session,
  shown,
  asOf,
  checkpoints,
  onChange,
  onChanged,
}: {
  session: Session
  shown: Session | null
  asOf: AsOf | null
  checkpoints: ReadonlyArray<Checkpoint>
  onChange: (asOf: AsOf | null) => void
  onChanged: (forkedId: string | null) => void
}) => {
  const { client } = useApi()
  const [dialog, setDialog] = useState<"rollback" | "fork" | null>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const [forkTitle, setForkTitle] = useState("")
  const checkpoint =
    asOf !== null && "checkpointId" in asOf ? checkpoints.find((c) => c.id === asOf.checkpointId) : undefined
  const version = shown?.version ?? session.version
  const where = checkpoint
    ? `checkpoint “${checkpoint.label ?? checkpoint.id.slice(0, 8)}” (v${checkpoint.version})`
    : `v${version}`
  const selectValue = asOf === null ? "" : (formatAt(asOf) ?? "")
  const canRollback =
    asOf !== null &&
    shown !== null &&
    (session.status === "active" || session.status === "expired") &&
    version < session.version
  const canFork = shown !== null

  const run = async (action: () => Promise<string | null>) => {
    setBusy(true)
    setError(null)
    try {
      const forked = await action()
      setDialog(null)
      onChanged(forked)
    } catch (e) {
      setError(e)
    } finally {
      setBusy(false)
    }
  }
  const rollback = () =>
    run(async () => {
      await client.sessions.rollback.mutate(
        checkpoint ? { id: session.id, checkpointId: checkpoint.id } : { id: session.id, toVersion: version },
      )
      return null
    })
  const fork = () =>
    run(async () => {
      const title = forkTitle.trim()
      const child = await client.sessions.fork.mutate(
        checkpoint
          ? { id: session.id, checkpointId: checkpoint.id, ...(title === "" ? {} : { title }) }
          : { id: session.id, atVersion: version, ...(title === "" ? {} : { title }) },
      )
      return child.id
    })

  const delta = shown === null ? null : contentDelta(session, shown)
  return (
    <fieldset className="asof">
      <legend className="visually-hidden">Time travel</legend>
      <label>
        View as of
        <select
          value={selectValue}
          onChange={(e) => {
            const value = e.target.value
            onChange(value === "" ? null : parseAt(value))
          }}
        >
          <option value="">now (v{session.version})</option>
          {checkpoints.map((c) => (
            <option key={c.id} value={`cp:${c.id}`}>
              ⚑ {c.label ?? c.id.slice(0, 8)} (v{c.version})
            </option>
          ))}
          {asOf !== null && "version" in asOf ? (
            <option value={`v:${asOf.version}`}>v{asOf.version}</option>
          ) : null}
        </select>
      </label>
      <label className="slider">
        <span>Version</span>
        <input
          type="range"
          min={1}
          max={session.version}
          value={version}
          onChange={(e) => {
            const v = Number(e.target.value)
            onChange(v === session.version ? null : { version: v })
          }}
          aria-valuetext={`version ${version} of ${session.version}`}
        />
        <output>
          v{version}/{session.version}
        </output>
      </label>
      <div className="actions">
        <button type="button" onClick={() => setDialog("rollback")} disabled={!canRollback}>
          Roll back…
        </button>
        <button type="button" onClick={() => setDialog("fork")} disabled={!canFork}>
          Fork…
        </button>
        {asOf === null ? null : (
          <button type="button" className="link" onClick={() => onChange(null)}>
            Back to now
          </button>
        )}
      </div>
      {asOf !== null && shown !== null ? (
        <p className="asof-note" role="status">
          Showing the session as it was at {where}: {contentOf(shown)}.
        </p>
      ) : null}

      <ConfirmDialog
        open={dialog === "rollback"}
        title={`Roll back to ${where}?`}
        confirmLabel="Roll back"
        busy={busy}
        error={error}
        onConfirm={rollback}
        onCancel={() => {
          setDialog(null)
          setError(null)
        }}
      >
        {delta === null ? null : (
          <ul>
            <li>
              {delta.removed.length === 0
                ? "No message, revision, draft, hole resolution or file is reverted."
                : `Reverts ${listSentence(delta.removed)} recorded after that point.`}
            </li>
            {delta.restored.length === 0 ? null : <li>Brings back {listSentence(delta.restored)}.</li>}
            {shown !== null && shown.title !== session.title ? (
              <li>
                The title goes back to “{shown.title ?? "untitled"}” (now “{session.title ?? "untitled"}”).
              </li>
            ) : null}
            <li>Tool runs, checkpoints and jobs stay: they record what happened.</li>
            <li>
              Nothing is deleted: a <code>SessionRolledBack</code> event is appended as v{session.version + 1}
              , and the abandoned events stay in the timeline, greyed.
            </li>
          </ul>
        )}
      </ConfirmDialog>
      <ConfirmDialog
        open={dialog === "fork"}
        title={`Fork from ${asOf === null ? `now (v${session.version})` : where}?`}
        confirmLabel="Fork"
        busy={busy}
        error={error}
        onConfirm={fork}
        onCancel={() => {
          setDialog(null)
          setError(null)
        }}
      >
        <p>
          Creates a new session holding this one’s content as of v{version}
          {shown === null ? "" : `: ${contentOf(shown)}`}. This session does not change.
        </p>
        <label>
          Title of the new session
          <input
            value={forkTitle}
            placeholder={`${session.title ?? "untitled"} (the same)`}
            onChange={(e) => setForkTitle(e.target.value)}
          />
        </label>
      </ConfirmDialog>
    </fieldset>
  )
}
