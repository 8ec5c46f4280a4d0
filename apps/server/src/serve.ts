import { existsSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { type ApiRuntime, DEV_OWNER_ID, makeAuthVerifier, makeCreateContext } from "@chronicle/api"
import type { Database } from "@chronicle/store"
import { Effect, Layer, ManagedRuntime } from "effect"
import type { ServerConfig } from "./config.ts"
import { announceServer, appLayer, describeDatabase } from "./database.ts"
import { makeRequestListener } from "./http.ts"
import { type LogSink, loggerLayer } from "./logging.ts"
import { defaultStudioDir, STUDIO_PATH } from "./studio.ts"

/** The most time a client gets to send its request headers. */
const HEADERS_TIMEOUT_MS = 10_000

export interface StartOptions {
  /** Replaces the configured database (tests start from a migrated template). */
  readonly database?: Layer.Layer<Database, unknown> | undefined
  /** Where JSON log lines go; default stdout. */
  readonly logSink?: LogSink | undefined
}

export interface RunningServer {
  /** `http://<host>:<port>`, with the port actually bound. */
  readonly url: string
  /** The one runtime every request runs on (database, event store, logger). */
  readonly runtime: ApiRuntime
  /** The underlying Node server. */
  readonly httpServer: Server
  /**
   * Graceful shutdown: stops accepting connections, ends subscriptions (clients reconnect
   * and resume from their last event id), waits for in-flight requests up to the shutdown
   * timeout, then disposes the runtime, which closes the database.
   */
  readonly close: () => Promise<void>
}

/** Builds the runtime, migrates, and listens. Resolves once the server accepts requests. */
export const startServer = async (
  config: ServerConfig,
  options: StartOptions = {},
): Promise<RunningServer> => {
  const auth = makeAuthVerifier(config.auth)
  // The signing keys are fetched now, so the first request with a token does not wait for them.
  auth.warmUp()
  const logging = loggerLayer(config.logLevel, options.logSink)
  const runtime = ManagedRuntime.make(appLayer(config, options.database).pipe(Layer.provideMerge(logging)))
  try {
    await runtime.runPromise(Effect.void)
  } catch (error) {
    await runtime.dispose()
    throw error
  }

  const shutdown = new AbortController()
  const createContext = makeCreateContext({ runtime, auth, limits: config.limits, shutdown: shutdown.signal })
  const listener = makeRequestListener({
    runtime,
    createContext,
    limits: config.limits,
    devMode: auth.mode === "dev",
  })

  let inFlight = 0
  let drained: (() => void) | undefined
  const server = createServer(
    {
      // A client gets this long to send its request (headers and body); one that trickles it
      // is answered 408 and let go, instead of holding a connection for Node's 300 s.
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, config.requestTimeoutMs),
      // How often the timeouts are checked (Node's default, 30 s, would let them run late).
      connectionsCheckingInterval: Math.min(1_000, config.requestTimeoutMs),
    },
    (req, res) => {
      inFlight++
      res.once("close", () => {
        inFlight--
        if (inFlight === 0) drained?.()
      })
      listener(req, res)
    },
  )
  // Node answers a request line or headers over its limit (or unparseable HTTP) with a bare
  // status; say why, in the shape of every other error.
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (error.code === "ECONNRESET" || !socket.writable) return void socket.destroy()
    const [status, httpStatus, message] =
      error.code === "HPE_HEADER_OVERFLOW"
        ? [
            "431 Request Header Fields Too Large",
            431,
            "The URL and headers are over 16 KiB: send a smaller query input, or split the batch",
          ]
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [
              "408 Request Timeout",
              408,
              `The request was not received in full within ${config.requestTimeoutMs} ms (headers within ${Math.min(HEADERS_TIMEOUT_MS, config.requestTimeoutMs)} ms)`,
            ]
          : ["400 Bad Request", 400, "The request is not valid HTTP"]
    const body = JSON.stringify({ error: { message, data: { httpStatus } } })
    socket.end(
      `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(config.port, config.host, () => {
        server.off("error", reject)
        resolve()
      })
    })
  } catch (error) {
    await runtime.dispose()
    throw error
  }
  const { port } = server.address() as AddressInfo
  const host = config.host.includes(":") ? `[${config.host}]` : config.host
  const url = `http://${host}:${port}`

  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      shutdown.abort()
      server.closeIdleConnections()
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          drained = resolve
          setTimeout(resolve, config.shutdownTimeoutMs).unref()
        })
      }
      server.closeAllConnections()
      await closed
      await runtime.runPromise(Effect.logInfo("stopped"))
      await runtime.dispose()
    })()
    return closing
  }

  return { url, runtime, httpServer: server, close }
}

/** Runs the HTTP service until SIGINT/SIGTERM; resolves with the exit code. */
export const serve = async (config: ServerConfig): Promise<number> => {
  const server = await startServer(config)
  // Other processes cannot open the embedded database while this one has it: say where it
  // serves, so `chronicle status` and friends can point there instead (database.ts).
  const announced =
    config.database.kind === "embedded"
      ? await announceServer(config.database.dataDir, server.url)
      : undefined
  console.log(`Chronicle listening on ${server.url} (${describeDatabase(config.database)})`)
  console.log(
    existsSync(join(defaultStudioDir, "index.html"))
      ? `Chronicle Studio: ${server.url}${STUDIO_PATH}/`
      : `Chronicle Studio is not built: \`pnpm --filter @chronicle/studio build\` (\`pnpm start\` builds it), then ${server.url}${STUDIO_PATH}/`,
  )
  if (makeAuthVerifier(config.auth).mode === "dev") {
    console.warn(
      `Dev mode: no auth is configured, so every request acts as the dev user ${DEV_OWNER_ID}. Set SUPABASE_URL, SUPABASE_JWT_SECRET or CHRONICLE_SERVICE_KEY to require tokens.`,
    )
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"))
    process.once("SIGTERM", () => resolve("SIGTERM"))
  })
  // A second signal while draining stops at once.
  process.once(signal, () => process.exit(1))
  await server.close()
  await announced?.()
  return 0
}
