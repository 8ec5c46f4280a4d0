/**
 * tRPC set-up: plain JSON on the wire (no transformer), error shapes from the one table,
 * SSE keep-alive pings, and the procedure builders every namespace uses.
 */
import { initTRPC } from "@trpc/server"
import type { Principal } from "./auth.ts"
import type { Context } from "./context.ts"
import { type ChronicleErrorData, describeError, toTRPCError, Unauthenticated } from "./errors.ts"

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

/** For procedures anyone may call, such as `health`. */
export const publicProcedure = t.procedure

/**
 * For everything else: refuses requests with no or bad credentials (UNAUTHORIZED) and
 * gives the resolver a `ctx.principal` that is never null.
 */
export const authedProcedure = t.procedure.use(({ ctx, next }) => {
  if (ctx.authFailure !== null) throw toTRPCError(ctx.authFailure)
  if (ctx.principal === null) {
    throw toTRPCError(
      new Unauthenticated({ reason: "Missing credentials: send the header Authorization: Bearer <token>" }),
    )
  }
  const principal: Principal = ctx.principal
  return next({ ctx: { principal } })
})
