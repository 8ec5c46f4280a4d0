/**
 * tRPC set-up: plain JSON on the wire (no transformer), error shapes from the one table,
 * SSE keep-alive pings, and the procedure builders every namespace uses.
 */

import { findNonJson } from "@chronicle/store"
import { type TRPCDefaultErrorShape as DefaultErrorShape, initTRPC, type TRPCError } from "@trpc/server"
import type { Principal } from "./auth.ts"
import type { Context } from "./context.ts"
import {
  ChronicleError,
  type ChronicleErrorData,
  describeError,
  INVALID_INPUT,
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
 * gives the resolver a `ctx.principal` that is never null.
 */
export const authedProcedure = t.procedure
  .use(({ ctx, next }) => {
    if (ctx.authFailure !== null) throw toTRPCError(ctx.authFailure)
    if (ctx.principal === null) {
      throw toTRPCError(
        new Unauthenticated({ reason: "Missing credentials: send the header Authorization: Bearer <token>" }),
      )
    }
    const principal: Principal = ctx.principal
    return next({ ctx: { principal } })
  })
  .use(storableInput)
