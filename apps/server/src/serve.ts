import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Database } from "@chronicle/store"
import { Effect, ManagedRuntime } from "effect"
import type { ServerConfig } from "./config.ts"
import { describeDatabase, storeLayer } from "./database.ts"

/** Runs the HTTP service until SIGINT/SIGTERM; resolves with the exit code. */
export const serve = async (config: ServerConfig): Promise<number> => {
  const runtime = ManagedRuntime.make(storeLayer(config.database))
  await runtime.runPromise(Effect.void)

  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/healthz") {
      runtime.runPromise(Effect.flatMap(Database, (db) => db.query("select 1"))).then(
        () => {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true }))
        },
        () => {
          res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ ok: false }))
        },
      )
      return
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not found" }))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(config.port, config.host, resolve)
  })
  const { port } = server.address() as AddressInfo
  console.log(`Chronicle listening on http://${config.host}:${port} (${describeDatabase(config.database)})`)

  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve)
    process.once("SIGTERM", resolve)
  })
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await runtime.dispose()
  return 0
}
