/** A tab's list of cards, paged: the shape every view under the session's tabs shares. */
import type { DependencyList, ReactNode } from "react"
import type { AsOf } from "../../api.ts"
import { type PageOf, usePaged } from "../../hooks.ts"
import { Empty, ErrorMessage } from "../../ui.tsx"
import { LoadMore } from "./shared.tsx"

export const PagedCards = ({
  what,
  load,
  deps,
  asOfNote,
}: {
  /** What the list holds, in lower case ("drafts"). */
  what: string
  load: (cursor: string | undefined) => Promise<PageOf<ReactNode>>
  deps: DependencyList
  /** Says the list is as of the selected point (for lists that follow it). */
  asOfNote: boolean
}) => {
  const list = usePaged<ReactNode>(load, deps)
  return (
    <>
      <ErrorMessage error={list.error} title={`No ${what}`} />
      {list.items.length === 0 && !list.loading ? <Empty>No {what}.</Empty> : null}
      {asOfNote ? <p className="muted small">As of the selected point.</p> : null}
      <ul className="cards">{list.items}</ul>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </>
  )
}

/** What every tab's view is given. */
export interface TabProps {
  readonly sessionId: string
  readonly asOf: AsOf | null
  readonly revision: number
}
