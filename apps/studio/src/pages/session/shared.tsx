/** What the session page's views share: the as-of point in the URL, content counts, paging. */
import type { ReactNode } from "react"
import type { AsOf, Session } from "../../api.ts"
import { plural } from "../../ui.tsx"

/** Items fetched per page by the session's lists. */
export const LIST_LIMIT = 200

/** `?at=cp:<checkpoint id>` or `?at=v:<version>` in the URL. */
export const parseAt = (at: string | null): AsOf | null => {
  if (at === null) return null
  if (at.startsWith("cp:")) return { checkpointId: at.slice(3) }
  const version = Number(at.slice(2))
  return at.startsWith("v:") && Number.isInteger(version) && version >= 1 ? { version } : null
}
export const formatAt = (asOf: AsOf | null) =>
  asOf === null ? null : "checkpointId" in asOf ? `cp:${asOf.checkpointId}` : `v:${asOf.version}`

export const COUNT_NAMES: ReadonlyArray<[keyof Session["counts"], string, string]> = [
  ["messages", "message", "messages"],
  ["revisions", "revision", "revisions"],
  ["drafts", "draft", "drafts"],
  ["holes", "hole resolution", "hole resolutions"],
  ["files", "file", "files"],
]

/** "2 messages and 1 draft" for what differs between two views of a session's content. */
export const contentDelta = (from: Session, to: Session) => {
  const removed: Array<string> = []
  const restored: Array<string> = []
  for (const [key, one, many] of COUNT_NAMES) {
    const d = from.counts[key] - to.counts[key]
    if (d > 0) removed.push(plural(d, one, many))
    if (d < 0) restored.push(plural(-d, one, many))
  }
  return { removed, restored }
}

export const contentOf = (s: Session) =>
  COUNT_NAMES.map(([key, one, many]) => plural(s.counts[key], one, many)).join(", ")

export const listSentence = (items: ReadonlyArray<string>) =>
  items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`

export const asOfInput = (asOf: AsOf | null) => (asOf === null ? {} : { asOf })
export const cursorInput = (cursor: string | undefined) => (cursor === undefined ? {} : { cursor })

export const LoadMore = ({
  hasMore,
  loading,
  onClick,
}: {
  hasMore: boolean
  loading: boolean
  onClick: () => void
}) =>
  hasMore ? (
    <button type="button" onClick={onClick} disabled={loading}>
      {loading ? "Loading…" : "Load more"}
    </button>
  ) : null

export const Card = ({
  title,
  aside,
  children,
}: {
  title: ReactNode
  aside?: ReactNode
  children?: ReactNode
}) => (
  <li className="card">
    <div className="card-head">
      <span>{title}</span>
      <span className="muted small">{aside}</span>
    </div>
    {children}
  </li>
)
