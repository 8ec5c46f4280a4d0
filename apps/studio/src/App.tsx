/**
 * The shell: who the studio acts as (dev mode on loopback needs nothing; otherwise a token),
 * the navigation, and the page for the route.
 */
import { type FormEvent, lazy, Suspense, useMemo, useState } from "react"
import {
  type Api,
  ApiContext,
  errorCode,
  identityOf,
  makeClient,
  storedToken,
  storeToken,
  useApi,
} from "./api.ts"
import { useQuery } from "./hooks.ts"
import { ActivityPage } from "./pages/Activity.tsx"
import { JobPage, JobsPage } from "./pages/Jobs.tsx"
import { ProjectionsPage } from "./pages/Projections.tsx"
import { SessionPage } from "./pages/Session.tsx"
import { SessionsPage } from "./pages/Sessions.tsx"
import { ThreadPage, ThreadsPage } from "./pages/Threads.tsx"
import { Link, useRoute } from "./router.tsx"
import { ErrorMessage, ShortId } from "./ui.tsx"

// The charting library is loaded only when the analytics page is opened.
const AnalyticsPage = lazy(() => import("./pages/Analytics.tsx").then((m) => ({ default: m.AnalyticsPage })))

const UUID = "[0-9a-fA-F-]{36}"

const Page = () => {
  const { path } = useRoute()
  const session = new RegExp(`^/sessions/(${UUID})$`).exec(path)
  if (session) return <SessionPage key={session[1]} id={session[1]!.toLowerCase()} />
  const job = new RegExp(`^/jobs/(${UUID})$`).exec(path)
  if (job) return <JobPage key={job[1]} id={job[1]!.toLowerCase()} />
  const thread = /^\/threads\/(.+)$/.exec(path)
  if (thread) {
    const threadId = decodeURIComponent(thread[1]!)
    return <ThreadPage key={threadId} threadId={threadId} />
  }
  switch (path) {
    case "/threads":
      return <ThreadsPage />
    case "/":
    case "/sessions":
      return <SessionsPage />
    case "/activity":
      return <ActivityPage />
    case "/jobs":
      return <JobsPage />
    case "/projections":
      return <ProjectionsPage />
    case "/analytics":
      return (
        <Suspense fallback={<p role="status">Loading…</p>}>
          <AnalyticsPage />
        </Suspense>
      )
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            Nothing lives at <code>{path}</code>. <Link to="/">Back to the sessions</Link>.
          </p>
        </section>
      )
  }
}

const NAV = [
  ["/", "Sessions"],
  ["/threads", "Threads"],
  ["/activity", "Activity"],
  ["/jobs", "Jobs"],
  ["/projections", "Projections"],
  ["/analytics", "Analytics"],
] as const

const Shell = () => {
  const { identity, signOut } = useApi()
  const { path } = useRoute()
  const section = path.startsWith("/sessions") ? "/" : `/${path.split("/")[1] ?? ""}`
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand">
          Chronicle <span>Studio</span>
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([to, label]) => (
              <li key={to}>
                <Link to={to} aria-current={section === to ? "page" : undefined}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          {identity.kind === "dev" ? (
            <span title="No auth is configured: every call acts as the dev user">dev mode</span>
          ) : (
            <>
              <span>
                {identity.kind === "service" ? (
                  "service role"
                ) : identity.userId === null ? (
                  "user"
                ) : (
                  <>
                    user <ShortId id={identity.userId} />
                  </>
                )}
              </span>
              <button type="button" className="link" onClick={signOut}>
                Sign out
              </button>
            </>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page />
      </main>
    </>
  )
}

const SignIn = ({ problem, onToken }: { problem: unknown; onToken: (token: string) => void }) => {
  const [token, setToken] = useState("")
  const submit = (event: FormEvent) => {
    event.preventDefault()
    if (token.trim() !== "") onToken(token.trim())
  }
  return (
    <main id="main" className="signin">
      <h1>
        Chronicle <span>Studio</span>
      </h1>
      <p>
        This server checks who is calling. Paste a Supabase access token (your session's JWT) or the service
        key; the studio shows only what it may see.
      </p>
      {problem === null ? null : <ErrorMessage error={problem} title="Not signed in" />}
      <form onSubmit={submit}>
        <label htmlFor="token">Access token</label>
        <textarea
          id="token"
          rows={4}
          value={token}
          onChange={(e) => setToken(e.target.value)}
          autoComplete="off"
          spellCheck={false}
        />
        <button type="submit" className="primary">
          Sign in
        </button>
      </form>
      <p className="muted small">
        The token stays in this tab (session storage) and is sent as <code>Authorization: Bearer</code> on
        every call, and as a connection parameter on live subscriptions.
      </p>
    </main>
  )
}

export const App = () => {
  const [token, setToken] = useState<string | null>(storedToken)
  const change = (next: string | null) => {
    storeToken(next)
    setToken(next)
  }
  // A new token is a new start: nothing seen with the old one is kept.
  return <Authenticated key={token ?? ""} token={token} onToken={change} />
}

const Authenticated = ({
  token,
  onToken,
}: {
  token: string | null
  onToken: (token: string | null) => void
}) => {
  const client = useMemo(() => makeClient(token), [token])
  // One cheap call tells whether this token (or none, in dev mode) is accepted.
  const probe = useQuery(() => client.sessions.list.query({ limit: 1 }), [client])
  const api = useMemo<Api>(
    () => ({
      client,
      identity: identityOf(token),
      actingFor: (owner) => makeClient(token, owner),
      signOut: () => onToken(null),
    }),
    [client, token, onToken],
  )
  if (probe.data === undefined && probe.error === null) {
    return (
      <p className="loading" role="status">
        Connecting…
      </p>
    )
  }
  const code = errorCode(probe.error)
  if (probe.data === undefined && (code === "UNAUTHORIZED" || code === "FORBIDDEN")) {
    return <SignIn problem={token === null ? null : probe.error} onToken={onToken} />
  }
  if (probe.data === undefined) {
    return (
      <main id="main" className="signin">
        <h1>Chronicle Studio</h1>
        <ErrorMessage error={probe.error} title="Cannot start" />
        <button type="button" onClick={probe.reload}>
          Try again
        </button>
      </main>
    )
  }
  return (
    <ApiContext value={api}>
      <Shell />
    </ApiContext>
  )
}
