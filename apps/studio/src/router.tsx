/**
 * Client-side routes under /studio, on the History API: the server answers every
 * /studio/… path with index.html, so a route can be reloaded or shared as a link.
 */
import { type AnchorHTMLAttributes, type MouseEvent, useSyncExternalStore } from "react"

export const BASE = "/studio"

const listeners = new Set<() => void>()
const notify = () => {
  for (const listener of listeners) listener()
}
window.addEventListener("popstate", notify)

const subscribe = (listener: () => void) => {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/** The route: the path below /studio ("/" for the sessions list) and the query string. */
const snapshot = () => {
  const path = window.location.pathname.startsWith(BASE)
    ? window.location.pathname.slice(BASE.length)
    : window.location.pathname
  return `${path === "" ? "/" : path}${window.location.search}`
}

export const useRoute = (): { path: string; query: URLSearchParams } => {
  const route = useSyncExternalStore(subscribe, snapshot)
  const [path = "/", search = ""] = route.split("?")
  return { path, query: new URLSearchParams(search) }
}

export const href = (to: string) => `${BASE}${to}`

export const navigate = (to: string, options: { replace?: boolean } = {}) => {
  if (options.replace) window.history.replaceState(null, "", href(to))
  else window.history.pushState(null, "", href(to))
  notify()
  window.scrollTo(0, 0)
}

/** Sets query parameters on the current route without a new history entry. */
export const setQuery = (changes: Record<string, string | null>) => {
  const params = new URLSearchParams(window.location.search)
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === "") params.delete(key)
    else params.set(key, value)
  }
  const search = params.toString()
  window.history.replaceState(null, "", `${window.location.pathname}${search ? `?${search}` : ""}`)
  notify()
}

export const Link = ({ to, onClick, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) => (
  <a
    {...rest}
    href={href(to)}
    onClick={(event: MouseEvent<HTMLAnchorElement>) => {
      onClick?.(event)
      if (event.defaultPrevented || event.button !== 0) return
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
      event.preventDefault()
      navigate(to)
    }}
  />
)
