/**
 * LangGraph threads (`@chronicle/langgraph`): each thread is a `graph-<id>` stream of
 * checkpoints, read through `graphs.list`. The list groups the owner's checkpoints, newest
 * first, by thread; a thread's page shows its checkpoints with their step, source, parent,
 * state (the channel values, decoded when the graph wrote JSON) and pending writes.
 * Threads belong to one owner: the service role picks whose.
 */
import { type FormEvent, type ReactNode, useState } from "react"
import { type ChronicleClient, type RouterOutputs, useApi } from "../api.ts"
import { usePaged } from "../hooks.ts"
import { Link, setQuery, useRoute } from "../router.tsx"
import { Badge, Empty, ErrorMessage, Json, ShortId, Time } from "../ui.tsx"

type Tuple = RouterOutputs["graphs"]["list"]["items"][number]
type Serialized = Tuple["checkpoint"]

const PAGE = 200
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export const threadPath = (threadId: string) => `/threads/${encodeURIComponent(threadId)}`

/** A value as the graph's serializer wrote it: JSON when it is JSON, else its type and size. */
export const decodeValue = (value: Serialized): unknown => {
  try {
    const bytes = Uint8Array.from(atob(value.data), (c) => c.charCodeAt(0))
    if (value.type === "json") return JSON.parse(new TextDecoder().decode(bytes))
    return `(${value.type}, ${bytes.length} bytes)`
  } catch {
    return `(${value.type}, not readable here)`
  }
}

const meta = (t: Tuple, key: string) => {
  const v = (t.metadata as Record<string, unknown>)[key]
  return v === undefined || v === null ? null : String(v)
}

/** The client to read threads with: the service role reads one owner's, named on the page. */
const useThreadsClient = (): {
  client: ChronicleClient | null
  owner: string | null
  ownerForm: ReactNode
} => {
  const { client, identity, actingFor } = useApi()
  const { query } = useRoute()
  const owner = query.get("owner")
  const [draft, setDraft] = useState(owner ?? "")
  if (identity.kind !== "service") return { client, owner: null, ownerForm: null }
  const submit = (event: FormEvent) => {
    event.preventDefault()
    setQuery({ owner: draft.trim().toLowerCase() })
  }
  const valid = owner !== null && UUID.test(owner)
  return {
    client: valid ? actingFor(owner) : null,
    owner: valid ? owner : null,
    ownerForm: (
      <form className="filters" onSubmit={submit} aria-label="Whose threads">
        <label>
          Owner (user id)
          <input value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="a user's UUID" />
        </label>
        <button type="submit">Show</button>
        {owner !== null && !valid ? <span className="error small">not a UUID</span> : null}
      </form>
    ),
  }
}

export const ThreadsPage = () => {
  const { client, owner, ownerForm } = useThreadsClient()
  return (
    <section>
      <div className="page-head">
        <h1>Threads</h1>
        <span className="muted">LangGraph threads saved by the Chronicle checkpointer</span>
      </div>
      {ownerForm}
      {client === null ? (
        <Empty>Name the user whose threads to show: threads belong to one owner.</Empty>
      ) : (
        <ThreadList client={client} owner={owner} />
      )}
    </section>
  )
}

const ThreadList = ({ client, owner }: { client: ChronicleClient; owner: string | null }) => {
  const list = usePaged(
    (cursor) => client.graphs.list.query({ limit: PAGE, ...(cursor === undefined ? {} : { cursor }) }),
    [client],
  )
  // Checkpoints come newest first: a thread's first one seen is its latest.
  const threads = new Map<string, { latest: Tuple; count: number; namespaces: Set<string> }>()
  for (const t of list.items) {
    const seen = threads.get(t.threadId)
    if (seen === undefined)
      threads.set(t.threadId, { latest: t, count: 1, namespaces: new Set([t.checkpointNs]) })
    else {
      seen.count++
      seen.namespaces.add(t.checkpointNs)
    }
  }
  const suffix = owner === null ? "" : `?owner=${owner}`
  return (
    <>
      <ErrorMessage error={list.error} title="No threads" />
      {threads.size === 0 && !list.loading ? (
        <Empty>
          No thread yet. A LangGraph app saves its threads here with{" "}
          <code>new ChronicleSaver({"{ url, token }"})</code> from <code>@chronicle/langgraph</code>.
        </Empty>
      ) : null}
      {threads.size === 0 ? null : (
        <div className="table-wrap">
          <table className="threads">
            <caption className="visually-hidden">Threads, most recently saved first</caption>
            <thead>
              <tr>
                <th scope="col">Thread</th>
                <th scope="col" className="num">
                  Checkpoints
                </th>
                <th scope="col">Latest</th>
                <th scope="col">Saved</th>
              </tr>
            </thead>
            <tbody>
              {[...threads].map(([threadId, { latest, count, namespaces }]) => (
                <tr key={threadId} data-thread={threadId}>
                  <td>
                    <Link to={`${threadPath(threadId)}${suffix}`}>{threadId}</Link>
                    {namespaces.size > 1 ? (
                      <span className="muted small"> · {namespaces.size - 1} subgraph namespace(s)</span>
                    ) : null}
                  </td>
                  <td className="num">
                    {count}
                    {list.hasMore ? "+" : ""}
                  </td>
                  <td>
                    step {meta(latest, "step") ?? "–"} <Badge>{meta(latest, "source") ?? "?"}</Badge>
                  </td>
                  <td>
                    <Time iso={latest.createdAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.hasMore ? (
        <button type="button" onClick={list.loadMore} disabled={list.loading}>
          {list.loading ? "Loading…" : "Load older checkpoints"}
        </button>
      ) : null}
    </>
  )
}

export const ThreadPage = ({ threadId }: { threadId: string }) => {
  const { client, owner, ownerForm } = useThreadsClient()
  return (
    <section>
      <div className="page-head">
        <p className="crumbs">
          <Link to={`/threads${owner === null ? "" : `?owner=${owner}`}`}>← Threads</Link>
        </p>
        <h1>
          Thread <code>{threadId}</code>
        </h1>
      </div>
      {ownerForm}
      {client === null ? (
        <Empty>Name the owner of the thread.</Empty>
      ) : (
        <Checkpoints client={client} threadId={threadId} />
      )}
    </section>
  )
}

const Checkpoints = ({ client, threadId }: { client: ChronicleClient; threadId: string }) => {
  const list = usePaged(
    (cursor) =>
      client.graphs.list.query({ threadId, limit: 20, ...(cursor === undefined ? {} : { cursor }) }),
    [client, threadId],
  )
  return (
    <>
      <ErrorMessage error={list.error} title="No checkpoints" />
      {list.items.length === 0 && !list.loading ? <Empty>This thread holds no checkpoint.</Empty> : null}
      <ol className="cards" aria-label="Checkpoints, newest first">
        {list.items.map((t) => (
          <li key={`${t.checkpointNs}/${t.checkpointId}`} className="card" data-checkpoint={t.checkpointId}>
            <div className="card-head">
              <span>
                step {meta(t, "step") ?? "–"} <Badge>{meta(t, "source") ?? "?"}</Badge>{" "}
                {t.checkpointNs === "" ? null : <Badge tone="info">{t.checkpointNs}</Badge>}
              </span>
              <span className="muted small">
                v{t.version} · <Time iso={t.createdAt} />
              </span>
            </div>
            <div className="muted small">
              checkpoint <code title={t.checkpointId}>{t.checkpointId}</code>
              {t.parentCheckpointId === null ? (
                " (first)"
              ) : (
                <>
                  {" "}
                  · parent <ShortId id={t.parentCheckpointId} />
                </>
              )}
              {t.writes.length === 0 ? "" : ` · ${t.writes.length} pending write(s)`}
            </div>
            <details>
              <summary>State ({t.blobs.length} channel(s))</summary>
              <Json
                value={Object.fromEntries(
                  t.blobs.map((b) => [
                    b.channel,
                    // A list channel comes item by item (each serialized alone).
                    "items" in b ? b.items.map(decodeValue) : decodeValue(b.value),
                  ]),
                )}
              />
            </details>
            {t.writes.length === 0 ? null : (
              <details>
                <summary>Pending writes</summary>
                <Json
                  value={t.writes.map((w) => ({
                    task: w.taskId,
                    channel: w.channel,
                    value: decodeValue(w.value),
                  }))}
                />
              </details>
            )}
          </li>
        ))}
      </ol>
      {list.hasMore ? (
        <button type="button" onClick={list.loadMore} disabled={list.loading}>
          {list.loading ? "Loading…" : "Load older checkpoints"}
        </button>
      ) : null}
    </>
  )
}
