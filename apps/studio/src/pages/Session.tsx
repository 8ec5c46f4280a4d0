/**
 * One session: what it holds (now or as of a checkpoint or version), its timeline, and the
 * moves that change it (checkpoint, append, roll back, fork), each roll back or fork after
 * a confirmation that says what will change. New events arrive live.
 */
import { type FormEvent, type ReactNode, useState } from "react"
import { type AsOf, type Checkpoint, type Session, useApi } from "../api.ts"
import { useDebounced, useLiveEvents, usePaged, useQuery } from "../hooks.ts"
import { Link, navigate, setQuery, useRoute } from "../router.tsx"
import {
  Badge,
  ConfirmDialog,
  ConnectionBadge,
  Empty,
  ErrorMessage,
  Json,
  ProgressBar,
  plural,
  ShortId,
  StateBadge,
  Time,
} from "../ui.tsx"
import { Timeline } from "./Timeline.tsx"

const LIST_LIMIT = 200
const TIMELINE_PAGE = 500
const TIMELINE_MAX_PAGES = 20

/** `?at=cp:<checkpoint id>` or `?at=v:<version>` in the URL. */
const parseAt = (at: string | null): AsOf | null => {
  if (at === null) return null
  if (at.startsWith("cp:")) return { checkpointId: at.slice(3) }
  const version = Number(at.slice(2))
  return at.startsWith("v:") && Number.isInteger(version) && version >= 1 ? { version } : null
}
const formatAt = (asOf: AsOf | null) =>
  asOf === null ? null : "checkpointId" in asOf ? `cp:${asOf.checkpointId}` : `v:${asOf.version}`

const COUNT_NAMES: ReadonlyArray<[keyof Session["counts"], string, string]> = [
  ["messages", "message", "messages"],
  ["revisions", "revision", "revisions"],
  ["drafts", "draft", "drafts"],
  ["holes", "hole resolution", "hole resolutions"],
  ["files", "file", "files"],
]

/** "2 messages and 1 draft" for what differs between two views of a session's content. */
const contentDelta = (from: Session, to: Session) => {
  const removed: Array<string> = []
  const restored: Array<string> = []
  for (const [key, one, many] of COUNT_NAMES) {
    const d = from.counts[key] - to.counts[key]
    if (d > 0) removed.push(plural(d, one, many))
    if (d < 0) restored.push(plural(-d, one, many))
  }
  return { removed, restored }
}

const contentOf = (s: Session) =>
  COUNT_NAMES.map(([key, one, many]) => plural(s.counts[key], one, many)).join(", ")

const listSentence = (items: ReadonlyArray<string>) =>
  items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`

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

      {asOf === null && session.status === "active" ? (
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

const AsOfBar = ({
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
    asOf !== null && shown !== null && session.status === "active" && version < session.version
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

// ----- appending --------------------------------------------------------------------------------

const ROLES = ["user", "assistant", "system", "tool"] as const

const Composer = ({ sessionId, onDone }: { sessionId: string; onDone: () => void }) => {
  const { client } = useApi()
  const [role, setRole] = useState<(typeof ROLES)[number]>("user")
  const [content, setContent] = useState("")
  const [label, setLabel] = useState("")
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const act = async (action: () => Promise<unknown>) => {
    setBusy(true)
    setError(null)
    try {
      await action()
      onDone()
      return true
    } catch (e) {
      setError(e)
      return false
    } finally {
      setBusy(false)
    }
  }
  const append = async (event: FormEvent) => {
    event.preventDefault()
    if (content.trim() === "") return
    if (await act(() => client.messages.append.mutate({ sessionId, role, content }))) setContent("")
  }
  const checkpoint = async (event: FormEvent) => {
    event.preventDefault()
    const text = label.trim()
    if (await act(() => client.checkpoints.create.mutate({ sessionId, label: text === "" ? null : text })))
      setLabel("")
  }
  return (
    <div className="composer">
      <form onSubmit={append} aria-label="Append a message">
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.target.value as (typeof ROLES)[number])}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label className="grow">
          Message
          <textarea
            rows={2}
            value={content}
            onChange={(e) => setContent(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit()
            }}
          />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Append
        </button>
      </form>
      <form onSubmit={checkpoint} aria-label="Take a checkpoint">
        <label className="grow">
          Checkpoint label
          <input value={label} onChange={(e) => setLabel(e.target.value)} placeholder="optional" />
        </label>
        <button type="submit" disabled={busy}>
          ⚑ Checkpoint
        </button>
      </form>
      <ErrorMessage error={error} title="Not recorded" />
    </div>
  )
}

// ----- content ---------------------------------------------------------------------------------

const asOfInput = (asOf: AsOf | null) => (asOf === null ? {} : { asOf })
const cursorInput = (cursor: string | undefined) => (cursor === undefined ? {} : { cursor })

const LoadMore = ({
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

const Messages = ({
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

const TABS = ["Revisions", "Drafts", "Holes", "Files", "Tool runs", "Jobs", "Checkpoints"] as const
type Tab = (typeof TABS)[number]

const Details = (props: {
  sessionId: string
  asOf: AsOf | null
  revision: number
  checkpoints: ReadonlyArray<Checkpoint>
}) => {
  const [tab, setTab] = useState<Tab>("Drafts")
  const move = (delta: number) => {
    const next = TABS[(TABS.indexOf(tab) + delta + TABS.length) % TABS.length]!
    setTab(next)
    document.getElementById(`tab-${next}`)?.focus()
  }
  return (
    <div className="details">
      <div role="tablist" aria-label="What the session holds" className="tabs">
        {TABS.map((t) => (
          <button
            key={t}
            id={`tab-${t}`}
            type="button"
            role="tab"
            aria-selected={tab === t}
            aria-controls="tab-panel"
            tabIndex={tab === t ? 0 : -1}
            onClick={() => setTab(t)}
            onKeyDown={(e) => {
              if (e.key === "ArrowRight") move(1)
              if (e.key === "ArrowLeft") move(-1)
            }}
          >
            {t}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="tab-panel" aria-labelledby={`tab-${tab}`}>
        <TabContent tab={tab} {...props} />
      </div>
    </div>
  )
}

const Card = ({ title, aside, children }: { title: ReactNode; aside?: ReactNode; children?: ReactNode }) => (
  <li className="card">
    <div className="card-head">
      <span>{title}</span>
      <span className="muted small">{aside}</span>
    </div>
    {children}
  </li>
)

const TabContent = ({
  tab,
  sessionId,
  asOf,
  revision,
  checkpoints,
}: {
  tab: Tab
  sessionId: string
  asOf: AsOf | null
  revision: number
  checkpoints: ReadonlyArray<Checkpoint>
}) => {
  const { client } = useApi()
  const deps = [tab, sessionId, formatAt(asOf), revision]
  const list = usePaged<ReactNode>(async (cursor) => {
    const base = { sessionId, limit: LIST_LIMIT, ...asOfInput(asOf), ...cursorInput(cursor) }
    switch (tab) {
      case "Revisions": {
        const page = await client.revisions.list.query(base)
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((r) => (
            <Card key={r.id} title={`Revision ${r.number}`} aside={<>v{r.version}</>}>
              {r.note === null ? null : <p>{r.note}</p>}
              <Json value={r.ir} />
            </Card>
          )),
        }
      }
      case "Drafts": {
        const page = await client.drafts.list.query(base)
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((d) => (
            <Card
              key={d.id}
              title={
                <>
                  {d.language} <Badge tone={d.valid ? "ok" : "bad"}>{d.valid ? "valid" : "invalid"}</Badge>
                  {d.revisionNumber === null ? null : (
                    <span className="muted"> from revision {d.revisionNumber}</span>
                  )}
                </>
              }
              aside={<>v{d.version}</>}
            >
              <pre className="code">{d.code}</pre>
            </Card>
          )),
        }
      }
      case "Holes": {
        const page = await client.holes.list.query(base)
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((h) => (
            <Card key={h.id} title={<code>{h.holeId}</code>} aside={<>v{h.version}</>}>
              <ProgressBar value={h.confidence} label={`Confidence of ${h.holeId}`} />
              <Json value={h.value} />
            </Card>
          )),
        }
      }
      case "Files": {
        const page = await client.files.listAttached.query(base)
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((f) => (
            <Card
              key={f.fileId}
              title={f.name}
              aside={
                <>
                  {f.mimeType} · {f.size} bytes · v{f.version}
                </>
              }
            >
              <DownloadButton fileId={f.fileId} name={f.name} mimeType={f.mimeType} />
            </Card>
          )),
        }
      }
      case "Tool runs": {
        const page = await client.toolRuns.list.query(base)
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((t) => (
            <Card
              key={t.id}
              title={
                <>
                  {t.tool} <StateBadge state={t.status} />
                </>
              }
              aside={
                <>
                  {t.durationMs === null ? "" : `${t.durationMs} ms · `}v{t.version}
                </>
              }
            >
              {t.error === null ? null : <p className="error">{t.error}</p>}
              <details>
                <summary>Input and output</summary>
                <Json value={{ input: t.input, output: t.output }} />
              </details>
            </Card>
          )),
        }
      }
      case "Jobs": {
        const page = await client.jobs.list.query({ sessionId, limit: LIST_LIMIT, ...cursorInput(cursor) })
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((j) => (
            <Card
              key={j.id}
              title={
                <>
                  <Link to={`/jobs/${j.id}`}>{j.type}</Link> <StateBadge state={j.state} />
                </>
              }
              aside={<Time iso={j.updatedAt} />}
            >
              <ProgressBar value={j.progress} label={`Progress of job ${j.type}`} />
            </Card>
          )),
        }
      }
      case "Checkpoints":
        return {
          nextCursor: null,
          items: checkpoints.map((c) => (
            <Card key={c.id} title={<>⚑ {c.label ?? <em>no label</em>}</>} aside={<>v{c.version}</>}>
              <button type="button" className="link" onClick={() => setQuery({ at: `cp:${c.id}` })}>
                View as of this checkpoint
              </button>
            </Card>
          )),
        }
    }
  }, deps)
  return (
    <>
      <ErrorMessage error={list.error} title={`No ${tab.toLowerCase()}`} />
      {list.items.length === 0 && !list.loading ? <Empty>No {tab.toLowerCase()}.</Empty> : null}
      {tab === "Jobs" || tab === "Checkpoints" || asOf === null ? null : (
        <p className="muted small">As of the selected point.</p>
      )}
      <ul className="cards">{list.items}</ul>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </>
  )
}

const DownloadButton = ({ fileId, name, mimeType }: { fileId: string; name: string; mimeType: string }) => {
  const { client } = useApi()
  const [error, setError] = useState<unknown>(null)
  const download = async () => {
    setError(null)
    try {
      const file = await client.files.get.query({ id: fileId, includeContent: true })
      const bytes = Uint8Array.from(atob(file.contentBase64 ?? ""), (c) => c.charCodeAt(0))
      const url = URL.createObjectURL(new Blob([bytes], { type: mimeType }))
      const a = document.createElement("a")
      a.href = url
      a.download = name
      a.click()
      setTimeout(() => URL.revokeObjectURL(url), 1000)
    } catch (e) {
      setError(e)
    }
  }
  return (
    <>
      <button type="button" onClick={download}>
        Download
      </button>
      <ErrorMessage error={error} title="Not downloaded" />
    </>
  )
}
