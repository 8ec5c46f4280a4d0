/**
 * The per-request context every procedure gets, and the bridge from Effect to tRPC: one
 * shared `ManagedRuntime` (built by the server from the app layer) runs every effect, and
 * every failure leaves through the one error table (errors.ts).
 */
import type {
  Analytics,
  Content,
  Files,
  Graphs,
  Jobs,
  Purge,
  Retention,
  Sandboxes,
  Sessions,
} from "@chronicle/domain"
import type { Projections } from "@chronicle/projections"
import type { Database, EventStore } from "@chronicle/store"
import { TRPCError } from "@trpc/server"
import { Effect, Exit, type ManagedRuntime, Stream } from "effect"
import { type AuthVerifier, bearerToken, type Principal, type StreamTicket } from "./auth.ts"
import { CallerGate, ResponseBudget } from "./budget.ts"
import { causeToTRPCError, type KnownError, Unauthenticated, unknownToTRPCError } from "./errors.ts"
import type { Limits } from "./limits.ts"

/** The services procedures may use. */
export type ApiServices =
  | EventStore
  | Database
  | Sessions
  | Content
  | Files
  | Jobs
  | Sandboxes
  | Retention
  | Purge
  | Analytics
  | Graphs
  | Projections

/** The one runtime the server builds from the app layer and shares across requests. */
export type ApiRuntime = ManagedRuntime.ManagedRuntime<ApiServices, unknown>

export interface Context {
  readonly requestId: string
  /**
   * Who is calling; null when no credentials were presented; rejects (with the tRPC error)
   * when they do not verify. Run on first use and remembered: a request for a public
   * procedure, or for no procedure at all, never verifies anything (so never makes the
   * server fetch keys). Procedures use `authedProcedure`.
   */
  readonly authenticate: () => Promise<Principal | null>
  /** A stream ticket for `principal` (auth.streamTicket). */
  readonly issueTicket: (principal: Principal) => StreamTicket
  readonly limits: Limits
  /** The response budget of this request (budget.ts). */
  readonly budget: ResponseBudget
  /** Running queries per caller, across requests. */
  readonly queries: CallerGate
  /** Open subscriptions per caller, across requests. */
  readonly subscriptions: CallerGate
  /**
   * Runs an effect on the shared runtime. A typed failure becomes the tRPC error the table
   * names; a defect becomes a 500 with the request id. Only errors in the table compile.
   */
  readonly run: <A, E extends KnownError>(effect: Effect.Effect<A, E, ApiServices>) => Promise<A>
  /**
   * Runs a stream on the shared runtime as an async iterable for a subscription. It ends
   * when `signal` aborts (the client left) and fails with SERVICE_UNAVAILABLE when the
   * server shuts down, which tells clients to reconnect (elsewhere) from their last id.
   */
  readonly stream: <A, E extends KnownError>(
    stream: Stream.Stream<A, E, ApiServices>,
    signal: AbortSignal | undefined,
  ) => AsyncIterable<A>
}

/** What a request carries that the context needs, whatever the HTTP framework. */
export interface RequestInfo {
  readonly requestId: string
  /** The `Authorization` header, if any. */
  readonly authorization: string | null
  /** The `x-chronicle-owner` header, if any. */
  readonly actingFor: string | null
  /**
   * tRPC's connectionParams (a query parameter), for clients that cannot send headers, such
   * as a browser's EventSource: `{ ticket }` (from auth.streamTicket) or `{ token, owner }`.
   * Read only when `subscription` is true.
   */
  readonly connectionParams?: { readonly [key: string]: string | undefined } | null | undefined
  /** Whether the request opens a subscription (the only kind that may carry credentials in its URL). */
  readonly subscription?: boolean | undefined
}

export interface ContextOptions {
  readonly runtime: ApiRuntime
  readonly auth: AuthVerifier
  readonly limits: Limits
  /** Aborted when the server shuts down: ends every subscription. */
  readonly shutdown?: AbortSignal | undefined
}

const SHUTTING_DOWN = "The server is shutting down; reconnect to resume from your last event id"

/** Builds the context creator the HTTP adapter calls once per request. */
export const makeCreateContext = (options: ContextOptions) => {
  const { runtime, auth, limits } = options
  const shutdown = options.shutdown ?? new AbortController().signal
  const queries = new CallerGate()
  const subscriptions = new CallerGate()

  return async (request: RequestInfo): Promise<Context> => {
    const { requestId } = request
    const annotate = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.annotateLogs(effect, { requestId })

    const run = async <A, E extends KnownError>(effect: Effect.Effect<A, E, ApiServices>): Promise<A> => {
      const exit = await runtime.runPromiseExit(annotate(effect))
      if (Exit.isSuccess(exit)) return exit.value
      throw causeToTRPCError(exit.cause)
    }

    const stream = <A, E extends KnownError>(
      source: Stream.Stream<A, E, ApiServices>,
      signal: AbortSignal | undefined,
    ): AsyncIterable<A> => ({
      async *[Symbol.asyncIterator]() {
        if (shutdown.aborted) throw new TRPCError({ code: "SERVICE_UNAVAILABLE", message: SHUTTING_DOWN })
        const context = await runtime.context()
        const iterator = Stream.toAsyncIterableWith(source, context)[Symbol.asyncIterator]()
        // Closing the iterator interrupts the fiber reading the stream, so a `next()` that is
        // waiting for the next event returns at once instead of when an event arrives.
        const stop = () => void iterator.return?.()
        signal?.addEventListener("abort", stop)
        shutdown.addEventListener("abort", stop)
        try {
          while (true) {
            let result: IteratorResult<A>
            try {
              result = await iterator.next()
            } catch (error) {
              throw unknownToTRPCError(error)
            }
            if (result.done) break
            yield result.value
          }
          if (shutdown.aborted && !signal?.aborted) {
            throw new TRPCError({ code: "SERVICE_UNAVAILABLE", message: SHUTTING_DOWN })
          }
        } finally {
          signal?.removeEventListener("abort", stop)
          shutdown.removeEventListener("abort", stop)
          await iterator.return?.()
        }
      },
    })

    const credentials = Effect.gen(function* () {
      const params = request.connectionParams ?? {}
      const fromUrl = request.authorization === null && (params.token || params.ticket)
      if (fromUrl && !request.subscription) {
        return yield* new Unauthenticated({
          reason:
            "Credentials in the URL (connectionParams) are accepted only to open a subscription: send the header Authorization: Bearer <token>",
        })
      }
      const token = yield* bearerToken(
        request.authorization ?? (params.token ? `Bearer ${params.token}` : null),
      )
      return yield* auth.authenticate({
        token,
        ticket: request.authorization === null ? (params.ticket ?? null) : null,
        actingFor: request.actingFor ?? params.owner ?? null,
        inUrl: request.authorization === null,
      })
    })
    let authenticated: Promise<Principal | null> | undefined
    const authenticate = () => {
      authenticated ??= runtime.runPromiseExit(annotate(credentials)).then((exit) => {
        if (Exit.isSuccess(exit)) return exit.value
        throw causeToTRPCError(exit.cause)
      })
      return authenticated
    }
    return {
      requestId,
      authenticate,
      issueTicket: auth.issueTicket,
      limits,
      budget: new ResponseBudget(limits.maxResponseBytes),
      queries,
      subscriptions,
      run,
      stream,
    }
  }
}

export type CreateContext = ReturnType<typeof makeCreateContext>
