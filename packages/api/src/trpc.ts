/**
 * tRPC set-up: plain JSON on the wire (no transformer), error shapes from the one table,
 * SSE keep-alive pings, and the procedure builders every namespace uses.
 */

import { findNonJson } from "@chronicle/store"
import { type TRPCDefaultErrorShape as DefaultErrorShape, initTRPC, type TRPCError } from "@trpc/server"
import { callerKey, jsonBytes } from "./budget.ts"
import type { Context } from "./context.ts"
import {
  ChronicleError,
  type ChronicleErrorData,
  describeError,
  INVALID_INPUT,
  ResponseTooLarge,
  TooManyRequests,
  toTRPCError,
  Unauthenticated,
} from "./errors.ts"

/** A comment line on every open subscription this often, so proxies keep it open. */
export const SSE_PING_INTERVAL_MS = 10_000

/** What the router itself reads of the context: the request id its error messages name. */
export interface RouterContext {
  readonly requestId: string
}

const options = {
  isDev: false,
  errorFormatter({
    shape,
    error,
    ctx,
  }: {
    shape: DefaultErrorShape
    error: TRPCError
    ctx: RouterContext | undefined
  }): DefaultErrorShape & { data: ChronicleErrorData } {
    const { message, ...details } = describeError(error, ctx?.requestId ?? null)
    const data: DefaultErrorShape["data"] & ChronicleErrorData = {
      code: shape.data.code,
      httpStatus: shape.data.httpStatus,
      ...(shape.data.path === undefined ? {} : { path: shape.data.path }),
      ...details,
    }
    return { ...shape, message, data }
  },
  sse: {
    ping: { enabled: true, intervalMs: SSE_PING_INTERVAL_MS },
    // A client that hears nothing (not even a ping) for this long reconnects.
    client: { reconnectAfterInactivityMs: 3 * SSE_PING_INTERVAL_MS },
  },
}

/** Builds the procedures: their resolvers get the whole `Context`. */
const t = initTRPC.context<Context>().create(options)

/**
 * Builds the routers, with the same options. A router's type carries its context's type, and
 * `AppRouter` is what clients import: built here, it names `RouterContext` alone, so the
 * published client's declarations hold nothing of the server (Effect, its services) while every
 * procedure still gets the whole `Context` at run time and in its types.
 */
const routers = initTRPC.context<RouterContext>().create(options)

export const router = routers.router
export const createCallerFactory = routers.createCallerFactory

/**
 * Text Postgres cannot store (a NUL character, a lone UTF-16 surrogate), anywhere in the
 * input, keys included, is refused here with its path, before any schema or service sees it.
 */
const storableInput = t.middleware(async ({ getRawInput, next }) => {
  // Input that is not JSON at all is left to the procedure's own parser to report.
  const raw = await getRawInput().catch(() => undefined)
  const problem = raw === undefined ? undefined : findNonJson(raw, "input")
  if (problem !== undefined) {
    const [path, ...rest] = problem.replace(/^input\.?/, "").split(" ")
    throw new ChronicleError({
      code: "BAD_REQUEST",
      message: problem.replace(/^input\.?/, ""),
      tag: INVALID_INPUT,
      fields: { issues: [{ path: path ?? "", message: rest.join(" ") }] },
    })
  }
  return next()
})

/** For procedures anyone may call, such as `health`. */
export const publicProcedure = t.procedure.use(storableInput)

/**
 * For everything else: refuses requests with no or bad credentials (UNAUTHORIZED) and
 * gives the resolver a `ctx.principal` that is never null. Queries also take their turn in
 * the request's response budget and a slot of their caller's (budget.ts): the resolver gets
 * `ctx.pageBytes`, the most a list page may take; an answer that no longer fits the budget is
 * refused (413 `ResponseTooLarge`), a caller over its concurrency limit gets 429.
 */
export const authedProcedure = t.procedure
  .use(async ({ ctx, next }) => {
    const principal = await ctx.authenticate()
    if (principal === null) {
      throw toTRPCError(
        new Unauthenticated({ reason: "Missing credentials: send the header Authorization: Bearer <token>" }),
      )
    }
    return next({ ctx: { principal } })
  })
  .use(storableInput)
  .use(async ({ ctx, type, next }) => {
    const { budget, limits } = ctx
    if (type !== "query") return next({ ctx: { pageBytes: limits.maxPageBytes } })
    return budget.turn(async () => {
      if (!budget.fits(1)) {
        throw toTRPCError(new ResponseTooLarge({ size: 1, used: budget.used, limit: budget.limit }))
      }
      const release = ctx.queries.acquire(callerKey(ctx.principal), limits.maxConcurrentQueries)
      if (release === null) {
        throw toTRPCError(new TooManyRequests({ what: "queries", limit: limits.maxConcurrentQueries }))
      }
      try {
        const result = await next({ ctx: { pageBytes: budget.pageBytes(limits.maxPageBytes) } })
        if (!result.ok) return result
        const size = jsonBytes(result.data)
        if (!budget.fits(size)) {
          throw toTRPCError(new ResponseTooLarge({ size, used: budget.used, limit: budget.limit }))
        }
        budget.spend(size)
        return result
      } finally {
        release()
      }
    })
  })
