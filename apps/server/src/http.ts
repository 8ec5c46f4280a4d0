/**
 * The HTTP surface: `/trpc` (tRPC over plain JSON, batching, SSE subscriptions) and
 * `/healthz`, with a request id on every request, the body limit, the call limit of a batch,
 * the loopback check of dev mode, and one log line per request.
 */
import { randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import {
  ACTING_FOR_HEADER,
  type ApiRuntime,
  appRouter,
  type CreateContext,
  errorResponseBody,
  type Limits,
  MAX_CALLS_PER_BATCH,
  toTRPCError,
  UnexpectedFailure,
} from "@chronicle/api"
import { InvalidCommand, PayloadTooLarge } from "@chronicle/events"
import { Database } from "@chronicle/store"
import { TRPCError } from "@trpc/server"
import { createHTTPHandler } from "@trpc/server/adapters/standalone"
import { Cause, Effect } from "effect"
import { isLoopback } from "./config.ts"
import { requestUrl } from "./request-url.ts"
import { makeStudioHandler, redirectsToStudio, redirectToStudio, STUDIO_PATH } from "./studio.ts"

export const REQUEST_ID_HEADER = "x-request-id"
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const HEALTH_TIMEOUT = "2 seconds"
/** Deeper JSON than this is refused before parsing: a parser's recursion would overflow the stack. */
export const MAX_JSON_DEPTH = 512

/** Whether JSON text nests arrays and objects deeper than `limit` (strings are skipped). */
export const nestsDeeperThan = (text: string, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92)
        i++ // a backslash escapes the next character
      else if (c === 34) inString = false
    } else if (c === 34)
      inString = true // [ { ] } are 91 123 93 125
    else if (c === 91 || c === 123) {
      if (++depth > limit) return true
    } else if (c === 93 || c === 125) depth--
  }
  return false
}

const tooDeep = () =>
  new InvalidCommand({ path: "input", reason: `The input nests deeper than ${MAX_JSON_DEPTH} levels` })

export interface HttpOptions {
  readonly runtime: ApiRuntime
  readonly createContext: CreateContext
  readonly limits: Limits
  /**
   * Dev mode (no auth configured): only requests addressed to a loopback name are served, so
   * a web page elsewhere that rebinds its host name to 127.0.0.1 (DNS rebinding) gets nothing.
   */
  readonly devMode?: boolean | undefined
}

/**
 * Whether a Host header names this machine: localhost (and its subdomains, which browsers
 * resolve to loopback themselves), 127.x.y.z or [::1], with any port.
 */
export const isLoopbackHost = (host: string | null): boolean => {
  if (host === null) return false
  const name = (host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d*$/, ""))
    .toLowerCase()
    .replace(/\.$/, "")
  return isLoopback(name) || name.endsWith(".localhost")
}

/**
 * A body over the limit is still read (and dropped) up to this many bytes, so that the client
 * finishes sending and reads the 413; past it the connection is closed after the answer.
 */
const DRAIN_LIMIT = 64 * 1024 * 1024

const header = (req: IncomingMessage, name: string): string | null => {
  const value = req.headers[name]
  return (Array.isArray(value) ? value[0] : value) ?? null
}

const sendJson = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body))
}

/**
 * Reads the whole body, refusing it (413, naming the limit) once it passes `limit` bytes;
 * tRPC then parses what was read (the API speaks JSON only). Returns false when the
 * request was answered here (or the client went away).
 */
const readBody = (
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
  requestId: string,
): Promise<boolean> =>
  new Promise<boolean>((resolve) => {
    const chunks: Array<Buffer> = []
    let size = 0
    let refused = false
    const declared = Number(header(req, "content-length") ?? Number.NaN)
    const refuse = (reported: number) => {
      stop()
      const error = toTRPCError(new PayloadTooLarge({ what: "The request body", size: reported, limit }))
      sendJson(res, 413, errorResponseBody(error, requestId), { connection: "close" })
      resolve(false)
    }
    const stop = () => {
      req.off("data", onData)
      req.off("end", onEnd)
      req.off("error", onGone)
      req.off("close", onGone)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (!refused && size <= limit) {
        chunks.push(chunk)
        return
      }
      if (!refused) {
        refused = true
        chunks.length = 0
      }
      // The rest is dropped as it arrives; the answer waits for the end of the body, so the
      // client is not cut off while it still sends, unless it sends far more than allowed.
      if (size > DRAIN_LIMIT) {
        refuse(Number.isFinite(declared) ? declared : size)
        req.resume()
      }
    }
    const onEnd = () => {
      if (refused) return refuse(size)
      stop()
      const body = Buffer.concat(chunks).toString("utf8")
      if (nestsDeeperThan(body, MAX_JSON_DEPTH)) {
        sendJson(res, 400, errorResponseBody(toTRPCError(tooDeep()), requestId))
        return resolve(false)
      }
      ;(req as IncomingMessage & { body?: string }).body = body
      resolve(true)
    }
    // The client went away (or the request timed out): nothing to answer.
    const onGone = () => {
      stop()
      resolve(false)
    }
    if (declared > DRAIN_LIMIT) {
      refuse(declared)
      req.resume()
      return
    }
    if (declared > limit) refused = true
    req.on("data", onData)
    req.on("end", onEnd)
    req.on("error", onGone)
    req.on("close", onGone)
  })

/** The number of calls a batched tRPC path names (`a,b,c` is 3). */
const callsIn = (path: string): number => path.slice("/trpc/".length).split(",").length

export const makeRequestListener = (options: HttpOptions) => {
  const { runtime, createContext, limits, devMode = false } = options
  const log = (effect: Effect.Effect<void>) => void runtime.runFork(effect)

  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: "/trpc/",
    maxBodySize: limits.maxBodyBytes,
    allowBatching: true,
    maxBatchSize: MAX_CALLS_PER_BATCH,
    createContext: ({ req, info }) =>
      createContext({
        requestId: header(req, REQUEST_ID_HEADER) ?? randomUUID(),
        authorization: header(req, "authorization"),
        actingFor: header(req, ACTING_FOR_HEADER),
        connectionParams: info.connectionParams,
        subscription: info.type === "subscription",
      }),
    onError: ({ error, path, req }) => {
      if (error.code !== "INTERNAL_SERVER_ERROR") return
      const cause =
        error.cause instanceof UnexpectedFailure ? error.cause.failure : Cause.die(error.cause ?? error)
      log(
        Effect.logError("unexpected failure", cause).pipe(
          Effect.annotateLogs({ requestId: header(req, REQUEST_ID_HEADER), path: path ?? null }),
        ),
      )
    },
  })

  const studio = makeStudioHandler()

  const healthz = async (res: ServerResponse) => {
    const reachable = await runtime.runPromise(
      Effect.flatMap(Database, (db) => db.query("select 1")).pipe(
        Effect.timeout(HEALTH_TIMEOUT),
        Effect.as(true),
        Effect.catchCause(() => Effect.succeed(false)),
      ),
    )
    sendJson(
      res,
      reachable ? 200 : 503,
      reachable ? { ok: true } : { ok: false, error: "database unreachable" },
    )
  }

  return (req: IncomingMessage, res: ServerResponse) => {
    const incoming = header(req, REQUEST_ID_HEADER)
    const requestId = incoming !== null && REQUEST_ID.test(incoming) ? incoming : randomUUID()
    req.headers[REQUEST_ID_HEADER] = requestId
    res.setHeader(REQUEST_ID_HEADER, requestId)
    const started = performance.now()
    const url = requestUrl(req)
    const path = url?.pathname ?? (req.url ?? "").slice(0, 200)
    res.once("close", () => {
      log(
        Effect.logInfo("request").pipe(
          Effect.annotateLogs({
            requestId,
            method: req.method ?? "",
            path,
            status: res.statusCode,
            durationMs: Math.round(performance.now() - started),
            ...(res.writableFinished ? {} : { aborted: true }),
          }),
        ),
      )
    })

    const handle = async () => {
      if (url === null) return sendJson(res, 400, { error: "Malformed request target", requestId })
      if (devMode && !isLoopbackHost(header(req, "host"))) {
        return sendJson(res, 403, {
          error: `In dev mode (no auth configured) the server answers only requests addressed to this machine (Host: localhost or 127.0.0.1), not ${JSON.stringify(header(req, "host"))}. Configure auth to serve other names.`,
          requestId,
        })
      }
      if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) return healthz(res)
      if (path === STUDIO_PATH || path.startsWith(`${STUDIO_PATH}/`)) return studio(req, res, path)
      if (redirectsToStudio(req, path)) return redirectToStudio(req, res)
      if (path === "/trpc" || path.startsWith("/trpc/")) {
        // Other methods (TRACE, CONNECT…) cannot even be represented as a fetch Request.
        if (!["GET", "HEAD", "POST"].includes(req.method ?? "")) {
          const error = new TRPCError({
            code: "METHOD_NOT_SUPPORTED",
            message: `The API takes GET (queries and subscriptions) and POST (mutations), not ${req.method}`,
          })
          return sendJson(res, 405, errorResponseBody(error, requestId), { allow: "GET, HEAD, POST" })
        }
        if (url.searchParams.get("batch") === "1" && callsIn(path) > MAX_CALLS_PER_BATCH) {
          const error = new InvalidCommand({
            path: "batch",
            reason: `carries ${callsIn(path)} calls; one request may carry at most ${MAX_CALLS_PER_BATCH}: split it`,
          })
          return sendJson(res, 400, errorResponseBody(toTRPCError(error), requestId))
        }
        if (req.method !== "GET" && req.method !== "HEAD") {
          if (!(await readBody(req, res, limits.maxBodyBytes, requestId))) return
        } else if (nestsDeeperThan(url.searchParams.get("input") ?? "", MAX_JSON_DEPTH)) {
          return sendJson(res, 400, errorResponseBody(toTRPCError(tooDeep()), requestId))
        }
        return trpc(req, res)
      }
      sendJson(res, 404, { error: `No route for ${req.method} ${path}; the API is at /trpc` })
    }
    handle().catch((error: unknown) => {
      log(Effect.logError("request failed", Cause.die(error)).pipe(Effect.annotateLogs({ requestId, path })))
      if (!res.headersSent) {
        sendJson(res, 500, errorResponseBody(new TRPCError({ code: "INTERNAL_SERVER_ERROR" }), requestId))
      } else res.destroy()
    })
  }
}
