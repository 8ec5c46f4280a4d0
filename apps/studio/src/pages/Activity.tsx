/** The whole log as it happens (the SSE subscription), over the most recent activity. */
import { useState } from "react"
import { useApi } from "../api.ts"
import { type LogEvent, useLiveEvents, useQuery } from "../hooks.ts"
import { Link } from "../router.tsx"
import { ConnectionBadge, Empty, ErrorMessage, ShortId, Time } from "../ui.tsx"
import { summarize } from "./Timeline.tsx"

const KEEP = 200

const streamLink = (streamId: string) => {
  const [category, ...rest] = streamId.split("-")
  const id = rest.join("-")
  if (category === "session")
    return (
      <Link to={`/sessions/${id}`}>
        session <ShortId id={id} />
      </Link>
    )
  if (category === "job")
    return (
      <Link to={`/jobs/${id}`}>
        job <ShortId id={id} />
      </Link>
    )
  if (category === "graph")
    return (
      <Link to="/threads">
        thread <ShortId id={id} />
      </Link>
    )
  return (
    <span>
      {category} <ShortId id={id} />
    </span>
  )
}

export const ActivityPage = () => {
  const { client } = useApi()
  const [events, setEvents] = useState<ReadonlyArray<LogEvent>>([])
  const connection = useLiveEvents({}, (event) => setEvents((list) => [event, ...list].slice(0, KEEP)))
  const recent = useQuery(() => client.analytics.recentActivity.query({ limit: 30 }), [client])
  return (
    <section>
      <div className="page-head">
        <h1>Activity</h1>
        <ConnectionBadge connection={connection} />
      </div>
      <h2>Live</h2>
      {events.length === 0 ? (
        <Empty>Waiting for new events… (anything appended from now on appears here)</Empty>
      ) : (
        <ol className="feed" aria-label="Live events" aria-live="polite">
          {events.map((e) => (
            <li key={e.eventId} className="feed-item" data-type={e.type} data-event={e.eventId}>
              <span className="type">{e.type}</span>
              <span>
                {streamLink(e.streamId)} v{e.version}
              </span>
              <span className="summary">
                {summarize({ ...e, reverted: false, data: e.data as never, metadata: e.metadata })}
              </span>
              <Time iso={e.recordedAt} />
            </li>
          ))}
        </ol>
      )}
      <h2>Recently</h2>
      <ErrorMessage error={recent.error} title="No recent activity" />
      <ol className="feed">
        {(recent.data?.items ?? []).map((a, i) => (
          // An entity may appear more than once (a job's changes), so the position is part of the key.
          <li key={`${i}-${a.kind}-${a.entityId}`} className="feed-item">
            <span className="type">{a.kind}</span>
            <span>
              {a.sessionId === null ? null : (
                <Link to={`/sessions/${a.sessionId}`}>
                  session <ShortId id={a.sessionId} />
                </Link>
              )}
            </span>
            <span className="summary">{a.summary}</span>
            <Time iso={a.at} />
          </li>
        ))}
      </ol>
    </section>
  )
}
