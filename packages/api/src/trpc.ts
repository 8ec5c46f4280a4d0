/**
 * tRPC set-up: plain JSON on the wire (no transformer), error shapes from the one table,
 * SSE keep-alive pings, and the procedure builders every namespace uses.
 */

import { findNonJson } from "@chronicle/store"
import { initTRPC } from "@trpc/server"
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

const t = initTRPC.context<Context>().create({
  isDev: false,
  errorFormatter({ shape, error, ctx }) {
    const { message, ...details } = describeError(error, ctx?.requestId ?? null)
    const data: typeof shape.data & ChronicleErrorData = {
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
})

export const router = t.router
export const createCallerFactory = t.createCallerFactory

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
