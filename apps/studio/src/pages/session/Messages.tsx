/** The conversation, now or as of a point, paged. */
import { type AsOf, useApi } from "../../api.ts"
import { usePaged } from "../../hooks.ts"
import { Empty, ErrorMessage, Time } from "../../ui.tsx"
import { asOfInput, cursorInput, formatAt, LIST_LIMIT, LoadMore } from "./shared.tsx"

export const Messages = ({
  sessionId,
  asOf,
  revision,
}: {
  sessionId: string
  asOf: AsOf | null
  revision: number
}) => {
  const { client } = useApi()
  const list = usePaged(
    (cursor) =>
      client.messages.list.query({
        sessionId,
        limit: LIST_LIMIT,
        ...asOfInput(asOf),
        ...cursorInput(cursor),
      }),
    [sessionId, formatAt(asOf), revision],
  )
  return (
    <>
      <ErrorMessage error={list.error} title="No messages" />
      {list.items.length === 0 && !list.loading ? <Empty>No messages.</Empty> : null}
      <ol className="messages">
        {list.items.map((m) => (
          <li key={m.id} className={`message ${m.role}`} data-seq={m.seq}>
            <div className="meta">
              <span className="role">{m.role}</span> #{m.seq} · v{m.version} · <Time iso={m.createdAt} />
            </div>
            <div className="content">{m.content}</div>
          </li>
        ))}
      </ol>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </>
  )
}
