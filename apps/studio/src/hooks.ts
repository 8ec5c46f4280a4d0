/** Data hooks: one query, a paginated list, a live subscription to the log, polling. */
import type { RouterInputs, RouterOutputs } from "@chronicle/client"
import { type DependencyList, useCallback, useEffect, useRef, useState } from "react"
import { useApi } from "./api.ts"

export interface QueryState<A> {
  readonly data: A | undefined
  readonly error: unknown
  readonly loading: boolean
  readonly reload: () => void
}

/**
 * Runs `load` when a dependency changes (and on `reload`); keeps the last data while the
 * next load runs, so a refresh does not flash. A late answer to an older load is dropped.
 */
export const useQuery = <A>(load: () => Promise<A>, deps: DependencyList): QueryState<A> => {
  const [state, setState] = useState<{ data: A | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: null,
    loading: true,
  })
  const [tick, setTick] = useState(0)
  const latest = useRef(0)
  useEffect(() => {
    const id = ++latest.current
    setState((s) => ({ ...s, loading: true }))
    load().then(
      (data) => {
        if (id === latest.current) setState({ data, error: null, loading: false })
      },
      (error: unknown) => {
        if (id === latest.current) setState((s) => ({ data: s.data, error, loading: false }))
      },
    )
  }, [...deps, tick])
  const reload = useCallback(() => setTick((t) => t + 1), [])
  return { ...state, reload }
}

export interface PageOf<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
}

export interface PagedState<A> {
  readonly items: ReadonlyArray<A>
  readonly error: unknown
  readonly loading: boolean
  readonly hasMore: boolean
  readonly loadMore: () => void
}

/** A cursor-paginated list: the first page when a dependency changes, then "load more". */
export const usePaged = <A>(
  fetchPage: (cursor: string | undefined) => Promise<PageOf<A>>,
  deps: DependencyList,
): PagedState<A> => {
  const [state, setState] = useState<{
    items: ReadonlyArray<A>
    next: string | null
    error: unknown
    loading: boolean
  }>({ items: [], next: null, error: null, loading: true })
  const generation = useRef(0)
  useEffect(() => {
    const id = ++generation.current
    setState((s) => ({ ...s, loading: true }))
    fetchPage(undefined).then(
      (page) => {
        if (id === generation.current)
          setState({ items: page.items, next: page.nextCursor, error: null, loading: false })
      },
      (error: unknown) => {
        if (id === generation.current) setState((s) => ({ ...s, error, loading: false }))
      },
    )
  }, deps)
  const loadMore = () => {
    const cursor = state.next
    if (cursor === null) return
    const id = generation.current
    setState((s) => ({ ...s, loading: true }))
    fetchPage(cursor).then(
      (page) => {
        if (id === generation.current)
          setState((s) => ({
            items: [...s.items, ...page.items],
            next: page.nextCursor,
            error: null,
            loading: false,
          }))
      },
      (error: unknown) => {
        if (id === generation.current) setState((s) => ({ ...s, error, loading: false }))
      },
    )
  }
  return {
    items: state.items,
    error: state.error,
    loading: state.loading,
    hasMore: state.next !== null,
    loadMore,
  }
}

type SubscribeInput = RouterInputs["events"]["subscribe"] extends infer I
  ? I extends object
    ? I
    : never
  : never
export type LogEvent = RouterOutputs["events"]["readStream"]["items"][number]
export type Connection = "connecting" | "live" | "reconnecting" | "closed"

/**
 * Follows the log from `after` (a cursor; by default the head when it starts) through the
 * SSE subscription. tRPC resumes a dropped connection from the last event id it saw, and
 * the event ids seen are kept too, so a reconnect never delivers an event twice.
 */
export const useLiveEvents = (
  input: Omit<SubscribeInput, "after" | "lastEventId"> & {
    readonly after?: string | undefined
  },
  onEvent: (event: LogEvent) => void,
  options: { readonly enabled?: boolean } = {},
): Connection => {
  const { client } = useApi()
  const [connection, setConnection] = useState<Connection>("connecting")
  const handler = useRef(onEvent)
  handler.current = onEvent
  const key = JSON.stringify(input)
  const enabled = options.enabled ?? true
  useEffect(() => {
    if (!enabled) return
    let stopped = false
    let unsubscribe: (() => void) | undefined
    const seen = new Set<string>()
    setConnection("connecting")
    const start = async () => {
      const after = input.after ?? (await client.events.head.query()).cursor
      if (stopped) return
      const subscription = client.events.subscribe.subscribe(
        { ...input, after },
        {
          onData: (tracked) => {
            const event = tracked.data
            if (seen.has(event.eventId)) return
            seen.add(event.eventId)
            handler.current(event)
          },
          onConnectionStateChange: (state) => {
            if (state.state === "pending") setConnection("live")
            else if (state.state === "connecting") setConnection(state.error ? "reconnecting" : "connecting")
          },
          onError: () => setConnection("closed"),
        },
      )
      unsubscribe = () => subscription.unsubscribe()
    }
    start().catch(() => {
      if (!stopped) setConnection("closed")
    })
    return () => {
      stopped = true
      unsubscribe?.()
    }
  }, [client, key, enabled])
  return connection
}

/** Calls `tick` every `ms` while `active`. */
export const useInterval = (tick: () => void, ms: number, active = true) => {
  const saved = useRef(tick)
  saved.current = tick
  useEffect(() => {
    if (!active) return
    const id = window.setInterval(() => saved.current(), ms)
    return () => window.clearInterval(id)
  }, [ms, active])
}

/** Coalesces bursts: `fn` runs once, `ms` after the last call. */
export const useDebounced = (fn: () => void, ms: number) => {
  const saved = useRef(fn)
  saved.current = fn
  const timer = useRef<number | undefined>(undefined)
  useEffect(() => () => window.clearTimeout(timer.current), [])
  return useCallback(() => {
    window.clearTimeout(timer.current)
    timer.current = window.setTimeout(() => saved.current(), ms)
  }, [ms])
}
