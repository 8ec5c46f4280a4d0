/**
 * One session: what it holds (now or as of a checkpoint or version), its timeline, and the
 * moves that change it (checkpoint, append, roll back, fork), each roll back or fork after
 * a confirmation that says what will change. New events arrive live. Each view is a
 * component of its own under ./session/.
 */
import { useState } from "react"
import { type AsOf, useApi } from "../api.ts"
import { useDebounced, useLiveEvents, useQuery } from "../hooks.ts"
import { Link, navigate, setQuery, useRoute } from "../router.tsx"
import { ConnectionBadge, ErrorMessage, plural, ShortId, StateBadge, Time } from "../ui.tsx"
import { AsOfBar } from "./session/AsOfBar.tsx"
import { Composer } from "./session/Composer.tsx"
import { Details } from "./session/Details.tsx"
import { Messages } from "./session/Messages.tsx"
import { contentOf, formatAt, parseAt } from "./session/shared.tsx"
import { Timeline } from "./Timeline.tsx"

const TIMELINE_PAGE = 500
const TIMELINE_MAX_PAGES = 20

export const SessionPage = ({ id }: { id: string }) => {
  const { client } = useApi()
  const { query } = useRoute()
  const asOf = parseAt(query.get("at"))
  const asOfKey = formatAt(asOf)
  const [revision, setRevision] = useState(0)
  const [arrived, setArrived] = useState<ReadonlyArray<string>>([])
  const refresh = useDebounced(() => setRevision((r) => r + 1), 120)
  const connection = useLiveEvents({ sessionId: id }, (event) => {
    setArrived((a) => [event.eventId, ...a].slice(0, 50))
    refresh()
  })

  const now = useQuery(() => client.sessions.get.query({ id }), [id, revision])
  const viewed = useQuery(
    () => (asOf === null ? Promise.resolve(null) : client.sessions.get.query({ id, asOf })),
    [id, asOfKey, revision],
  )
  const checkpoints = useQuery(
    () => client.checkpoints.list.query({ sessionId: id, limit: 500 }),
    [id, revision],
  )
  const timeline = useQuery(async () => {
    const items: Array<Awaited<ReturnType<typeof client.sessions.timeline.query>>["items"][number]> = []
    let cursor: string | null = null
    for (let page = 0; page < TIMELINE_MAX_PAGES; page++) {
      const next = await client.sessions.timeline.query({
        id,
        limit: TIMELINE_PAGE,
        ...(cursor === null ? {} : { cursor }),
      })
      items.push(...next.items)
      cursor = next.nextCursor
      if (cursor === null) break
    }
    return items
  }, [id, revision])

  const setAsOf = (next: AsOf | null) => setQuery({ at: formatAt(next) })

  if (now.data === undefined) {
    return (
      <section>
        <p>
          <Link to="/">← Sessions</Link>
        </p>
        {now.error === null ? (
          <p role="status">Loading…</p>
        ) : (
          <ErrorMessage error={now.error} title="No session" />
        )}
      </section>
    )
  }
  const session = now.data
  const shown = asOf === null ? session : (viewed.data ?? null)
  const checkpointList = checkpoints.data?.items ?? []
  const asOfVersion = shown === null ? null : asOf === null ? null : shown.version

  return (
    <section className="session">
      <p className="crumbs">
        <Link to="/">← Sessions</Link>
      </p>
      <div className="page-head">
        <h1>{session.title ?? <em>untitled session</em>}</h1>
        <StateBadge state={session.status} />
        <ConnectionBadge connection={connection} />
      </div>
      <dl className="facts">
        <div>
          <dt>Id</dt>
          <dd>
            <code>{session.id}</code>
          </dd>
        </div>
        <div>
          <dt>Version</dt>
          <dd data-testid="session-version">v{session.version}</dd>
        </div>
        <div>
          <dt>Last activity</dt>
          <dd>
            <Time iso={session.lastActivityAt} />
          </dd>
        </div>
        {session.parentId === null ? null : (
          <div>
            <dt>Forked from</dt>
            <dd>
              <Link to={`/sessions/${session.parentId}`}>
                <ShortId id={session.parentId} />
              </Link>{" "}
              at v{session.parentVersion}
            </dd>
          </div>
        )}
        <div>
          <dt>Holds</dt>
          <dd>{contentOf(session)}</dd>
        </div>
        {arrived.length === 0 ? null : (
          <div>
            <dt>Live</dt>
            <dd aria-live="polite" data-testid="arrived">
              {plural(arrived.length, "new event")} since you opened it
            </dd>
          </div>
        )}
      </dl>

      <AsOfBar
        session={session}
        shown={shown}
        asOf={asOf}
        checkpoints={checkpointList}
        onChange={setAsOf}
        onChanged={(forked) => {
          if (forked !== null) navigate(`/sessions/${forked}`)
          else {
            setAsOf(null)
            setRevision((r) => r + 1)
          }
        }}
      />
      <ErrorMessage error={viewed.error} title="Cannot read it as of that point" />

      {/* An expired session takes writes too: the next one reopens it. */}
      {asOf === null && (session.status === "active" || session.status === "expired") ? (
        <Composer sessionId={id} onDone={() => setRevision((r) => r + 1)} />
      ) : null}

      <div className="columns">
        <div>
          <h2>Conversation</h2>
          {shown === null ? null : <Messages sessionId={id} asOf={asOf} revision={revision} />}
        </div>
        <div>
          <h2>Timeline</h2>
          <ErrorMessage error={timeline.error} title="No timeline" />
          {timeline.data === undefined ? (
            <p role="status">Loading…</p>
          ) : (
            <Timeline
              entries={timeline.data}
              asOfVersion={asOfVersion}
              onView={(version) => setAsOf({ version })}
            />
          )}
        </div>
      </div>
      <Details sessionId={id} asOf={asOf} revision={revision} checkpoints={checkpointList} />
    </section>
  )
}

// ----- as of, roll back, fork -----------------------------------------------------------------
