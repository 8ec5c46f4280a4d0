import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { type ApiRuntime, DEFAULT_LIMITS, makeAuthVerifier, makeCreateContext } from "@chronicle/api"
import {
  Database,
  type DatabaseService,
  EventStore,
  type EventStoreService,
  SqlError,
} from "@chronicle/store"
import { Effect, Layer, ManagedRuntime, References } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeRequestListener } from "../src/http.ts"

// The HTTP layer over a database that is down: no real database needed.
const database = {
  kind: "postgres",
  query: () => Effect.fail(new SqlError({ reason: "connection refused" })),
} as unknown as DatabaseService
// The HTTP layer only needs the database here; the domain services are left out.
const runtime = ManagedRuntime.make(
  Layer.mergeAll(
    Layer.succeed(Database, database),
    Layer.succeed(EventStore, {} as EventStoreService),
    Layer.succeed(References.MinimumLogLevel, "None"),
  ),
) as unknown as ApiRuntime

let server: Server
let url = ""
beforeAll(async () => {
  const limits = { ...DEFAULT_LIMITS, maxBodyBytes: 1024 }
  const createContext = makeCreateContext({ runtime, auth: makeAuthVerifier({}), limits })
  server = createServer(makeRequestListener({ runtime, createContext, limits }))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await runtime.dispose()
})

describe("the HTTP layer", () => {
  it("answers /healthz with 503 when the database does not answer", async () => {
    const res = await fetch(`${url}/healthz`)
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ ok: false, error: "database unreachable" })
  })

  it("replaces a request id it cannot echo safely", async () => {
    const res = await fetch(`${url}/healthz`, { headers: { "x-request-id": "bad id\twith spaces" } })
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("applies the configured body limit, naming it", async () => {
    const res = await fetch(`${url}/trpc/events.readAll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ padding: "x".repeat(2000) }),
    })
    expect(res.status).toBe(413)
    const body = (await res.json()) as { error: { message: string } }
    expect(body.error.message).toBe("The request body is 2014 bytes, over the limit of 1024 bytes")
  })

  it("refuses more than 100 calls in one batch", async () => {
    const paths = Array.from({ length: 101 }, () => "health").join(",")
    const res = await fetch(`${url}/trpc/${paths}?batch=1&input={}`)
    expect(res.status).toBe(400)
  })
})
