/**
 * The sessions list, filtered on the server (status, text, creation date) and paged with its
 * cursor; by owner for the service role (it acts for that owner).
 */
import { type FormEvent, useCallback, useEffect, useMemo, useRef, useState } from "react"
import { type ChronicleClient, type Session, useApi } from "../api.ts"
import { Link, navigate, setQuery, useRoute } from "../router.tsx"
import { Empty, ErrorMessage, ShortId, StateBadge, Time } from "../ui.tsx"

const PAGE_SIZE = 20
/** The longest search the server takes (once trimmed). */
const MAX_SEARCH = 200
const STATUSES = ["active", "archived", "expired", "deleted"] as const
type Status = (typeof STATUSES)[number]

interface Filters {
  readonly q: string
  readonly status: Status | ""
  readonly owner: string
  readonly from: string
  readonly to: string
}

/** The filters as `sessions.list` takes them; empty ones are left out. */
const listInput = (f: Filters) => {
  const search = f.q.trim().slice(0, MAX_SEARCH)
  return {
    ...(f.status === "" ? {} : { status: f.status }),
    ...(search === "" ? {} : { search }),
    ...(f.from === "" ? {} : { createdFrom: f.from }),
    ...(f.to === "" ? {} : { createdTo: f.to }),
  }
}

interface Loaded {
  readonly items: ReadonlyArray<Session>
  readonly nextCursor: string | null
}

interface Listing {
  readonly pages: ReadonlyArray<Loaded>
  readonly index: number
  readonly loading: boolean
  readonly error: unknown
}

/** Pages of the sessions the filters select; none are asked for while `enabled` is false. */
const useSessionPages = (client: ChronicleClient, filters: Filters, enabled: boolean) => {
  const [listing, setListing] = useState<Listing>({ pages: [], index: 0, loading: true, error: null })
  // Each change of filters starts a new generation; answers to an older one are dropped.
  const generation = useRef(0)

  const load = useCallback(
    async (current: number, cursor: string | null) => {
      const page = await client.sessions.list.query({
        limit: PAGE_SIZE,
        ...listInput(filters),
        ...(cursor === null ? {} : { cursor }),
      })
      if (current !== generation.current) return
      setListing((l) => ({
        pages: [...l.pages, { items: page.items, nextCursor: page.nextCursor }],
        index: l.pages.length,
        loading: false,
        error: null,
      }))
    },
    [client, filters],
  )
  const failed = (current: number) => (error: unknown) => {
    if (current === generation.current) setListing((l) => ({ ...l, loading: false, error }))
  }

  useEffect(() => {
    const current = ++generation.current
    setListing({ pages: [], index: 0, loading: enabled, error: null })
    if (enabled) load(current, null).catch(failed(current))
  }, [load, enabled])

  const next = () => {
    if (listing.index + 1 < listing.pages.length) {
      setListing((l) => ({ ...l, index: l.index + 1 }))
      return
    }
    const cursor = listing.pages[listing.index]?.nextCursor ?? null
    if (cursor === null) return
    setListing((l) => ({ ...l, loading: true }))
    const current = generation.current
    load(current, cursor).catch(failed(current))
  }
  const previous = () => setListing((l) => ({ ...l, index: Math.max(0, l.index - 1) }))
  return { listing, next, previous }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export const SessionsPage = () => {
  const api = useApi()
  const { query } = useRoute()
  const filters: Filters = {
    q: query.get("q") ?? "",
    status: (STATUSES as ReadonlyArray<string>).includes(query.get("status") ?? "")
      ? (query.get("status") as Status)
      : "",
    owner: query.get("owner") ?? "",
    from: query.get("from") ?? "",
    to: query.get("to") ?? "",
  }
  const ownerValid = filters.owner === "" || UUID.test(filters.owner)
  const datesValid = filters.from === "" || filters.to === "" || filters.from <= filters.to
  const service = api.identity.kind === "service"
  const client = useMemo(
    () => (service && filters.owner !== "" && ownerValid ? api.actingFor(filters.owner) : api.client),
    [api, service, filters.owner, ownerValid],
  )
  const key = JSON.stringify(filters)
  // One object per distinct set of filters, so the listing restarts only when one changes.
  const stable = useMemo(() => filters, [key])
  const { listing, next, previous } = useSessionPages(client, stable, datesValid)
  const page = listing.pages[listing.index]?.items ?? []
  const hasNext =
    listing.index + 1 < listing.pages.length || (listing.pages[listing.index]?.nextCursor ?? null) !== null

  return (
    <section>
      <div className="page-head">
        <h1>Sessions</h1>
        <NewSession />
      </div>
      <form className="filters" aria-label="Filter the sessions" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search
          <input
            type="search"
            placeholder="title, id or external key"
            maxLength={MAX_SEARCH}
            value={filters.q}
            onChange={(e) => setQuery({ q: e.target.value })}
          />
        </label>
        <label>
          Status
          <select value={filters.status} onChange={(e) => setQuery({ status: e.target.value })}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Created from
          <input type="date" value={filters.from} onChange={(e) => setQuery({ from: e.target.value })} />
        </label>
        <label>
          to
          <input type="date" value={filters.to} onChange={(e) => setQuery({ to: e.target.value })} />
        </label>
        {service ? (
          <label>
            Owner
            <input
              placeholder="any owner (user id)"
              value={filters.owner}
              aria-invalid={!ownerValid}
              onChange={(e) => setQuery({ owner: e.target.value.trim() })}
            />
          </label>
        ) : null}
      </form>
      {ownerValid ? null : <p className="error">The owner must be a user id (a UUID).</p>}
      {datesValid ? null : <p className="error">The “Created from” date is after the “to” date.</p>}
      <ErrorMessage error={listing.error} title="Could not list the sessions" />
      <div className="table-wrap">
        <table className="sessions">
          <caption className="visually-hidden">Sessions, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Title</th>
              <th scope="col">Status</th>
              <th scope="col" className="num">
                Messages
              </th>
              <th scope="col" className="num hide-narrow">
                Drafts
              </th>
              <th scope="col" className="num hide-narrow">
                Tool runs
              </th>
              <th scope="col" className="num hide-narrow">
                Files
              </th>
              <th scope="col">Last activity</th>
              <th scope="col" className="hide-narrow">
                Created
              </th>
              {service ? (
                <th scope="col" className="hide-narrow">
                  Owner
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>
            {page.map((s) => (
              <tr key={s.id}>
                <td>
                  <Link to={`/sessions/${s.id}`}>{s.title ?? <em>untitled</em>}</Link>{" "}
                  {s.parentId === null ? null : <span className="muted small">fork</span>}
                  <div className="muted small">
                    <ShortId id={s.id} /> · v{s.version}
                  </div>
                </td>
                <td>
                  <StateBadge state={s.status} />
                </td>
                <td className="num">{s.counts.messages}</td>
                <td className="num hide-narrow">{s.counts.drafts}</td>
                <td className="num hide-narrow">{s.counts.toolRuns}</td>
                <td className="num hide-narrow">{s.counts.files}</td>
                <td>
                  <Time iso={s.lastActivityAt} />
                </td>
                <td className="hide-narrow">
                  <Time iso={s.createdAt} />
                </td>
                {service ? (
                  <td className="hide-narrow">
                    <ShortId id={s.ownerId} />
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {datesValid && !listing.loading && page.length === 0 && listing.error === null ? (
        <Empty>
          No session matches.{" "}
          {listing.index === 0 ? (
            <span className="muted small">
              LangGraph threads are not sessions: they are under <Link to="/threads">Threads</Link>.
            </span>
          ) : null}
        </Empty>
      ) : null}
      <nav className="pager" aria-label="Pages">
        <button type="button" onClick={previous} disabled={listing.index === 0 || listing.loading}>
          ← Previous
        </button>
        <span aria-live="polite">{listing.loading ? "Loading…" : `Page ${listing.index + 1}`}</span>
        <button type="button" onClick={next} disabled={!hasNext || listing.loading}>
          Next →
        </button>
      </nav>
    </section>
  )
}

const NewSession = () => {
  const { client } = useApi()
  const [title, setTitle] = useState("")
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    try {
      const session = await client.sessions.create.mutate(title.trim() === "" ? {} : { title: title.trim() })
      navigate(`/sessions/${session.id}`)
    } catch (e) {
      setError(e)
      setBusy(false)
    }
  }
  return (
    <form className="inline" onSubmit={submit}>
      <label className="visually-hidden" htmlFor="new-session-title">
        New session title
      </label>
      <input
        id="new-session-title"
        placeholder="New session title"
        value={title}
        onChange={(e) => setTitle(e.target.value)}
      />
      <button type="submit" disabled={busy}>
        New session
      </button>
      <ErrorMessage error={error} title="Not created" />
    </form>
  )
}
