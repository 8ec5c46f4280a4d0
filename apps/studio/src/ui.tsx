/** Small shared pieces: errors, badges, progress bars, times, JSON, a confirmation dialog. */
import { type ReactNode, useEffect, useId, useRef } from "react"
import { describeError } from "./api.ts"
import type { Connection } from "./hooks.ts"

export const ErrorMessage = ({ error, title }: { error: unknown; title?: string }) => {
  if (error === null || error === undefined) return null
  const { message, detail } = describeError(error)
  return (
    <div className="error" role="alert">
      <strong>{title ?? "Something went wrong"}:</strong> {message}
      {detail === null ? null : <div className="muted small">{detail}</div>}
    </div>
  )
}

export const Badge = ({ tone, children }: { tone?: string; children: ReactNode }) => (
  <span className={`badge ${tone ?? ""}`}>{children}</span>
)

const STATE_TONES: Record<string, string> = {
  active: "ok",
  live: "ok",
  completed: "ok",
  succeeded: "ok",
  running: "info",
  backfilling: "info",
  rebuilding: "info",
  queued: "neutral",
  paused: "warn",
  archived: "neutral",
  expired: "warn",
  cancelled: "neutral",
  deleted: "bad",
  failed: "bad",
}

export const StateBadge = ({ state }: { state: string }) => (
  <Badge tone={STATE_TONES[state] ?? "neutral"}>{state}</Badge>
)

export const ProgressBar = ({ value, label }: { value: number | null; label: string }) => {
  const percent = value === null ? 0 : Math.round(Math.min(1, Math.max(0, value)) * 100)
  return (
    <div className="progress">
      <div
        className="progress-track"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
      >
        <div className="progress-fill" style={{ width: `${percent}%` }} />
      </div>
      <span className="progress-text">{value === null ? "–" : `${percent}%`}</span>
    </div>
  )
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" })
const UNITS: ReadonlyArray<[Intl.RelativeTimeFormatUnit, number]> = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
]

export const ago = (iso: string) => {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second")
      return relative.format(Math.round(seconds / size), unit)
  }
  return iso
}

export const Time = ({ iso }: { iso: string | null }) =>
  iso === null ? (
    <span className="muted">–</span>
  ) : (
    <time dateTime={iso} title={new Date(iso).toLocaleString()}>
      {ago(iso)}
    </time>
  )

export const Json = ({ value }: { value: unknown }) => (
  <pre className="json">{value === undefined ? "" : JSON.stringify(value, null, 2)}</pre>
)

/**
 * Enough of an id to tell it from its neighbours. A UUIDv7 (and v6, LangGraph's checkpoint
 * ids) starts with its creation time (the first 8 digits change about once a minute), so ids
 * made close together share them: the short form adds the tail. Other ids (v4) differ from
 * the first digit.
 */
export const shortId = (id: string) =>
  id[14] === "7" || id[14] === "6" ? `${id.slice(0, 8)}…${id.slice(-6)}` : id.slice(0, 8)

export const ShortId = ({ id }: { id: string }) => (
  <code title={id} className="id">
    {shortId(id)}
  </code>
)

/** An instant as a reader reads it (local date and time), the exact ISO value on hover. */
export const DateTime = ({ iso }: { iso: string }) => (
  <time dateTime={iso} title={iso}>
    {new Date(iso).toLocaleString()}
  </time>
)

export const ConnectionBadge = ({ connection }: { connection: Connection }) => (
  <span className={`connection ${connection}`} role="status" aria-live="polite">
    <span className="dot" aria-hidden="true" />
    {connection === "live" ? "live" : connection}
  </span>
)

export const Empty = ({ children }: { children: ReactNode }) => <p className="empty">{children}</p>

/**
 * A modal confirmation (the native <dialog>: focus moves in, Escape cancels). `body` says
 * what will change.
 */
export const ConfirmDialog = ({
  open,
  title,
  children,
  confirmLabel,
  busy,
  error,
  onConfirm,
  onCancel,
}: {
  open: boolean
  title: string
  children: ReactNode
  confirmLabel: string
  busy?: boolean
  error?: unknown
  onConfirm: () => void
  onCancel: () => void
}) => {
  const ref = useRef<HTMLDialogElement>(null)
  const titleId = useId()
  useEffect(() => {
    const dialog = ref.current
    if (dialog === null) return
    if (open && !dialog.open) dialog.showModal()
    if (!open && dialog.open) dialog.close()
  }, [open])
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onCancel={(event) => {
        event.preventDefault()
        onCancel()
      }}
    >
      <h2 id={titleId}>{title}</h2>
      <div className="dialog-body">{children}</div>
      <ErrorMessage error={error} title="Not done" />
      <div className="actions">
        <button type="button" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
        <button type="button" className="primary" onClick={onConfirm} disabled={busy}>
          {busy ? "Working…" : confirmLabel}
        </button>
      </div>
    </dialog>
  )
}

export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`
