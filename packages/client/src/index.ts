/**
 * The typed client for TypeScript apps:
 *
 *   const chronicle = createChronicleClient({ url: "http://127.0.0.1:4000", token })
 *   const page = await chronicle.events.readStream.query({ streamId })
 *
 * Queries and mutations made together (in the same turn of the event loop) share one HTTP
 * request (`httpBatchLink`); a call made alone goes at once, on its own (`httpLink`), without
 * the batch link's wait. Subscriptions go over Server-Sent Events (`httpSubscriptionLink`).
 */
import type { AppRouter } from "@chronicle/api"
import {
  createTRPCClient,
  httpBatchLink,
  httpLink,
  httpSubscriptionLink,
  type Operation,
  splitLink,
  type TRPCClient,
  TRPCClientError,
  type TRPCLink,
} from "@trpc/client"
import { observable } from "@trpc/server/observable"
import { EventSource as FetchEventSource } from "eventsource"

export type { AppRouter }
export { TRPCClientError }

export type ChronicleClient = TRPCClient<AppRouter>

// Inputs and outputs as the client sees them, read off the client's own types (so only
// `type AppRouter` crosses from the server's packages).
type Procedure<I, O> =
  | { query: (input: I, ...rest: never) => Promise<O> }
  | { mutate: (input: I, ...rest: never) => Promise<O> }
  | { subscribe: (input: I, ...rest: never) => AsyncIterable<O> }
type InputsOf<C> = { [K in keyof C]: C[K] extends Procedure<infer I, unknown> ? I : InputsOf<C[K]> }
type OutputsOf<C> = { [K in keyof C]: C[K] extends Procedure<never, infer O> ? O : OutputsOf<C[K]> }

/** Every procedure's input, by path: `RouterInputs["events"]["readStream"]`. */
export type RouterInputs = InputsOf<ChronicleClient>
/** Every procedure's output, by path: `RouterOutputs["events"]["readStream"]`. */
export type RouterOutputs = OutputsOf<ChronicleClient>
/** One event of the log, as `events.readStream`, `events.readAll` and `events.subscribe` return it. */
export type EventView = RouterOutputs["events"]["readStream"]["items"][number]
/** An error from the service: `code` (tRPC's), and in `data` the `requestId`, `tag` and `fields`. */
export type ChronicleClientError = TRPCClientError<AppRouter>

type Headers = Record<string, string>
type MaybePromise<T> = T | Promise<T>

export interface ChronicleClientOptions {
  /** The service's base URL, such as `http://127.0.0.1:4000` (`/trpc` is added unless present). */
  readonly url: string
  /** A bearer token: a Supabase Auth access token, or the service key. */
  readonly token?: string | undefined
  /** Called before each request (and each reconnect of a subscription), for tokens that rotate. */
  readonly getToken?: (() => MaybePromise<string | null | undefined>) | undefined
  /** For the service role: the owner to act for (sent as `x-chronicle-owner`). */
  readonly actingFor?: string | undefined
  /** Extra headers on every request. */
  readonly headers?: Headers | (() => MaybePromise<Headers>) | undefined
  /** The `fetch` to use; default the global one. */
  readonly fetch?: typeof fetch | undefined
}

/** Largest number of calls one batched request may carry (the server refuses more). */
const MAX_CALLS_PER_BATCH = 100
/** Batched GET URLs longer than this are split, below Node's default 16 KiB header limit. */
const MAX_URL_LENGTH = 8_000

const trpcUrl = (url: string) => {
  const base = url.replace(/\/+$/, "")
  return base.endsWith("/trpc") ? base : `${base}/trpc`
}

export const createChronicleClient = (options: ChronicleClientOptions): ChronicleClient => {
  const url = trpcUrl(options.url)
  const fetchImpl = options.fetch ?? globalThis.fetch
  const token = async () =>
    options.getToken ? ((await options.getToken()) ?? null) : (options.token ?? null)
  const authHeaders = async (): Promise<Headers> => {
    const extra = typeof options.headers === "function" ? await options.headers() : (options.headers ?? {})
    const bearer = await token()
    return {
      ...extra,
      ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
      ...(options.actingFor === undefined ? {} : { "x-chronicle-owner": options.actingFor }),
    }
  }

  // A browser's EventSource cannot send headers: its credentials go in tRPC's
  // connectionParams, a query parameter. Not the token itself (URLs end up in logs and
  // histories, and the server never takes the service key there): before each connection
  // the token is exchanged, in a POST, for a stream ticket that opens subscriptions for a
  // minute. Elsewhere (Node has no global EventSource) the fetch-based `eventsource` package
  // sends the token as a header.
  const NativeEventSource = (globalThis as { EventSource?: typeof globalThis.EventSource }).EventSource
  const tickets = createTRPCClient<AppRouter>({
    links: [
      httpLink({ url, fetch: (input, init) => fetchImpl(input, init as RequestInit), headers: authHeaders }),
    ],
  })
  const subscriptionLink =
    NativeEventSource !== undefined
      ? httpSubscriptionLink<AppRouter, typeof globalThis.EventSource>({
          url,
          EventSource: NativeEventSource,
          connectionParams: async () => {
            // No token (a dev-mode server): nothing to present.
            if ((await token()) === null) return {}
            const { ticket } = await tickets.auth.streamTicket.mutate()
            return { ticket }
          },
        })
      : httpSubscriptionLink<AppRouter, typeof FetchEventSource>({
          url,
          EventSource: FetchEventSource,
          eventSourceOptions: () => ({
            fetch: async (input, init) =>
              fetchImpl(input, { ...init, headers: { ...init.headers, ...(await authHeaders()) } }),
          }),
        })

  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: subscriptionLink,
        false: togetherLink(
          httpLink({
            url,
            fetch: (input, init) => fetchImpl(input, init as RequestInit),
            headers: authHeaders,
          }),
          httpBatchLink({
            url,
            fetch: (input, init) => fetchImpl(input, init as RequestInit),
            headers: authHeaders,
            maxItems: MAX_CALLS_PER_BATCH,
            maxURLLength: MAX_URL_LENGTH,
          }),
        ),
      }),
    ],
  })
}

/**
 * Runs `f` once the current turn of the event loop is done, with no timer: after the I/O it
 * has to read (a connection the server closed is then known to be closed, not reused).
 */
const soon: (f: () => void) => void =
  typeof setImmediate === "function" ? (f) => void setImmediate(f) : (f) => queueMicrotask(f)

/**
 * Sends a call made alone through `single` at once, and calls made in the same turn of the
 * event loop through `batched` (which puts them in one request). Deciding waits for the end of
 * the turn, not for the batch link's timer.
 */
const togetherLink =
  (single: TRPCLink<AppRouter>, batched: TRPCLink<AppRouter>): TRPCLink<AppRouter> =>
  (runtime) => {
    const alone = single(runtime)
    const together = batched(runtime)
    type Pending = { readonly op: Operation; readonly start: (link: typeof alone) => void }
    let pending: Array<Pending> = []
    const flush = () => {
      const now = pending
      pending = []
      const link = now.length === 1 ? alone : together
      for (const p of now) p.start(link)
    }
    return ({ op, next }) =>
      observable((observer) => {
        let unsubscribe: (() => void) | undefined
        let cancelled = false
        pending.push({
          op,
          start: (link) => {
            if (cancelled) return
            unsubscribe = link({ op, next }).subscribe(observer).unsubscribe
          },
        })
        if (pending.length === 1) soon(flush)
        return () => {
          cancelled = true
          unsubscribe?.()
        }
      })
  }

/** Whether `error` came from the service (as opposed to, say, the network). */
export const isChronicleError = (error: unknown): error is ChronicleClientError =>
  error instanceof TRPCClientError

/**
 * Sends a request again when it failed before the service answered (a lost response
 * included), up to `attempts` times in all; an answer from the service, an error one included,
 * is final. Only for requests that are safe to repeat: a write carrying one idempotency key
 * over all its attempts, or one that records nothing the second time.
 */
export const resend = async <A>(send: () => Promise<A>, attempts = 3): Promise<A> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send()
    } catch (error) {
      if (isChronicleError(error) && error.data !== undefined) throw error
      if (attempt >= attempts) throw error
    }
  }
}

/** Every item of a paged list, page by page from the first to the last. */
export const allPages = async <T>(
  page: (
    cursor: string | null,
  ) => Promise<{ readonly items: ReadonlyArray<T>; readonly nextCursor: string | null }>,
): Promise<Array<T>> => {
  const items: Array<T> = []
  let cursor: string | null = null
  do {
    const next: { readonly items: ReadonlyArray<T>; readonly nextCursor: string | null } = await page(cursor)
    items.push(...next.items)
    cursor = next.nextCursor
  } while (cursor !== null)
  return items
}
