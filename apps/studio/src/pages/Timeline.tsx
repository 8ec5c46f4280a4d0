/**
 * A session's events in order. Checkpoints are flagged; events that a rollback abandoned
 * are drawn greyed on a branch beside the main line, labelled with the rollback that left
 * them; when the session is viewed as of a version, what came later is dimmed.
 */
import type { TimelineEntry } from "../api.ts"
import { shortId, Time } from "../ui.tsx"

type Data = Record<string, unknown>

const text = (value: unknown, max = 80) => {
  const s = typeof value === "string" ? value : JSON.stringify(value)
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

/** One line about what an event did. */
export const summarize = (entry: TimelineEntry): string => {
  const d = (entry.data ?? {}) as Data
  switch (entry.type) {
    case "SessionStarted":
      return d.title ? `started “${text(d.title)}”` : "started"
    case "SessionForked":
      return `forked from ${shortId(String(d.parentId))} at v${d.atVersion}`
    case "SessionUpdated":
      return "title or metadata changed"
    case "MessageAppended":
      return `${d.role}: ${text(d.content)}`
    case "RevisionAdded":
      return `revision ${d.number}${d.note ? ` — ${text(d.note)}` : ""}`
    case "DraftRecorded":
      return `${d.language} draft, ${d.valid ? "valid" : "invalid"}`
    case "HoleResolved":
      return `hole ${text(d.holeId, 40)} = ${text(d.value, 40)} (${Math.round(Number(d.confidence) * 100)}%)`
    case "FileAttached":
      return `attached ${text(d.name, 60)}`
    case "FileDetached":
      return "detached a file"
    case "ToolRunRecorded":
      return `${d.tool} ${d.status}`
    case "CheckpointCreated":
      return `checkpoint${d.label ? ` “${text(d.label, 60)}”` : ""} at v${d.version}`
    case "SessionRolledBack":
      return `rolled back to v${d.toVersion}`
    case "GraphThreadStarted":
      return `LangGraph thread “${text(d.threadId, 60)}” started`
    case "GraphCheckpointSaved": {
      const m = (d.metadata ?? {}) as Data
      return `checkpoint${m.step === undefined ? "" : ` step ${m.step}`}${m.source ? ` (${m.source})` : ""}${d.checkpointNs ? ` in ${text(d.checkpointNs, 40)}` : ""}`
    }
    case "GraphWritesSaved":
      return `${Array.isArray(d.writes) ? d.writes.length : 0} pending write(s) of task ${text(d.taskId, 40)}`
    case "GraphThreadDeleted":
      return "thread deleted"
    case "GraphCheckpointsPruned":
      return `${d.count} checkpoint(s) pruned, the last ${d.keep} kept${d.checkpointNs ? ` in ${text(d.checkpointNs, 40)}` : ""}`
    case "GraphThreadPurged":
      return `thread erased (${d.throughVersion} event(s) redacted)${d.reason ? `: ${text(d.reason, 80)}` : ""}`
    default:
      return ""
  }
}

type Row =
  | { readonly kind: "event"; readonly entry: TimelineEntry }
  | {
      readonly kind: "branch"
      readonly entries: ReadonlyArray<TimelineEntry>
      readonly by: TimelineEntry | null
    }

/** Consecutive reverted events form one abandoned branch, closed by the rollback that follows. */
export const toRows = (entries: ReadonlyArray<TimelineEntry>): ReadonlyArray<Row> => {
  const rows: Array<Row> = []
  let branch: Array<TimelineEntry> = []
  const close = (by: TimelineEntry | null) => {
    if (branch.length > 0) rows.push({ kind: "branch", entries: branch, by })
    branch = []
  }
  for (const entry of entries) {
    if (entry.reverted) {
      branch.push(entry)
      continue
    }
    // Events that are never reverted (tool runs, checkpoints) may sit inside a branch.
    if (branch.length > 0 && entry.type !== "SessionRolledBack") {
      branch.push(entry)
      continue
    }
    close(entry.type === "SessionRolledBack" ? entry : null)
    rows.push({ kind: "event", entry })
  }
  // A branch still open at the end was not closed by a rollback yet: its events are live.
  if (branch.length > 0) {
    const trailing = branch.filter((e) => !e.reverted)
    const reverted = branch.filter((e) => e.reverted)
    if (reverted.length > 0) rows.push({ kind: "branch", entries: reverted, by: null })
    for (const entry of trailing) rows.push({ kind: "event", entry })
  }
  return rows
}

const EventLine = ({
  entry,
  after,
  onView,
}: {
  entry: TimelineEntry
  after: boolean
  onView: (version: number) => void
}) => {
  const classes = [
    "event",
    entry.reverted ? "reverted" : "",
    entry.type === "CheckpointCreated" ? "checkpoint" : "",
    entry.type === "SessionRolledBack" ? "rollback" : "",
    after ? "after" : "",
  ]
  return (
    <li className={classes.join(" ")} data-version={entry.version} data-type={entry.type}>
      <span className="node" aria-hidden="true" />
      <span className="v">v{entry.version}</span>
      <span className="type">
        {entry.type === "CheckpointCreated" ? "⚑ " : entry.type === "SessionRolledBack" ? "↩ " : ""}
        {entry.type}
        {entry.reverted ? <span className="visually-hidden"> (reverted)</span> : null}
      </span>
      <span className="summary">{summarize(entry)}</span>
      <span className="when">
        <Time iso={entry.recordedAt} />
      </span>
      <button
        type="button"
        className="link small"
        onClick={() => onView(entry.version)}
        aria-label={`View the session as of version ${entry.version}`}
      >
        as of
      </button>
    </li>
  )
}

export const Timeline = ({
  entries,
  asOfVersion,
  onView,
}: {
  entries: ReadonlyArray<TimelineEntry>
  asOfVersion: number | null
  onView: (version: number) => void
}) => (
  <ol className="timeline" aria-label="Timeline">
    {toRows(entries).map((row) =>
      row.kind === "event" ? (
        <EventLine
          key={row.entry.eventId}
          entry={row.entry}
          after={asOfVersion !== null && row.entry.version > asOfVersion}
          onView={onView}
        />
      ) : (
        <li key={row.entries[0]!.eventId} className="branch">
          <div className="branch-label">
            Abandoned branch v{row.entries[0]!.version}–v{row.entries.at(-1)!.version}
            {row.by === null ? "" : `, left by the rollback at v${row.by.version}`}
          </div>
          <ol>
            {row.entries.map((entry) => (
              <EventLine
                key={entry.eventId}
                entry={entry}
                after={asOfVersion !== null && entry.version > asOfVersion}
                onView={onView}
              />
            ))}
          </ol>
        </li>
      ),
    )}
  </ol>
)
