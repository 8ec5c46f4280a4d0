import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest"
import {
  createChronicleClient,
  type EventView,
  isChronicleError,
  type RouterInputs,
  type RouterOutputs,
} from "../src/index.ts"

// A stand-in for the service that records what the client sends and answers as tRPC does.
const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = []
const event: EventView = {
  eventId: "0195e3b0-0000-7000-8000-000000000001",
  streamId: "session-0195e3b0-0000-7000-8000-000000000002",
  version: 1,
  type: "SessionStarted",
  schemaVersion: 1,
  data: {},
  metadata: {},
  globalPosition: 1,
  cursor: "740:1",
  recordedAt: "2026-11-23T20:41:17.123Z",
}
const server = createServer((req, res) => {
  seen.push({ url: req.url ?? "", headers: req.headers })
  const url = new URL(req.url ?? "/", "http://localhost")
  if (url.pathname === "/trpc/events.subscribe") {
    res.writeHead(200, { "content-type": "text/event-stream" })
    res.write(`event: connected\ndata: {}\n\n`)
    res.write(`id: ${event.cursor}\ndata: ${JSON.stringify(event)}\n\n`)
    res.end(`event: return\ndata: \n\n`)
    return
  }
  if (url.pathname === "/trpc/health,events.readStream") {
    res.writeHead(200, { "content-type": "application/json" })
    res.end(
      JSON.stringify([
        { result: { data: { ok: true, database: "pglite", head: { cursor: "0:0", globalPosition: 0 } } } },
        {
          error: {
            message: "Stream session-x was not found",
            code: -32004,
            data: { code: "NOT_FOUND", httpStatus: 404, requestId: "r-1", tag: "NotFound", fields: {} },
          },
        },
      ]),
    )
    return
  }
  res.writeHead(404).end()
})
let url = ""
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

describe("createChronicleClient", () => {
  it("batches queries to <url>/trpc with a fresh bearer token, the acting-for owner and extra headers", async () => {
    let calls = 0
    const client = createChronicleClient({
      url: `${url}/`,
      getToken: async () => `token-${++calls}`,
      actingFor: "0195e3b0-0000-7000-8000-00000000000a",
      headers: { "x-app": "tests" },
    })
    seen.length = 0
    const [health, missing] = await Promise.allSettled([
      client.health.query(),
      client.events.readStream.query({ streamId: "session-x" }),
    ])
    expect(seen).toHaveLength(1)
    expect(seen[0]!.url).toMatch(/^\/trpc\/health,events\.readStream\?batch=1&input=/)
    expect(seen[0]!.headers).toMatchObject({
      authorization: "Bearer token-1",
      "x-chronicle-owner": "0195e3b0-0000-7000-8000-00000000000a",
      "x-app": "tests",
    })
    expect(health).toEqual({
      status: "fulfilled",
      value: { ok: true, database: "pglite", head: { cursor: "0:0", globalPosition: 0 } },
    })
    expect(missing.status).toBe("rejected")
    const error = (missing as PromiseRejectedResult).reason
    expect(isChronicleError(error)).toBe(true)
    if (isChronicleError(error)) {
      expect(error.message).toBe("Stream session-x was not found")
      expect(error.data).toMatchObject({ code: "NOT_FOUND", requestId: "r-1", tag: "NotFound" })
    }
  })

  it("subscribes over SSE with the token in a header (Node has no EventSource of its own)", async () => {
    const client = createChronicleClient({ url, token: "secret-token" })
    seen.length = 0
    const received = await new Promise<Array<{ id: string; data: EventView }>>((resolve, reject) => {
      const got: Array<{ id: string; data: EventView }> = []
      client.events.subscribe.subscribe(
        { types: ["SessionStarted"] },
        { onData: (e) => got.push(e), onComplete: () => resolve(got), onError: reject },
      )
    })
    expect(received).toEqual([{ id: "740:1", data: event }])
    expect(seen[0]!.url).toMatch(/^\/trpc\/events\.subscribe\?input=/)
    expect(seen[0]!.url).not.toContain("secret-token")
    expect(seen[0]!.headers.authorization).toBe("Bearer secret-token")
    expect(seen[0]!.headers.accept).toBe("text/event-stream")
  })

  it("types inputs and outputs from the router", () => {
    expectTypeOf<RouterInputs["events"]["readStream"]>().toHaveProperty("streamId").toEqualTypeOf<string>()
    expectTypeOf<RouterOutputs["events"]["readAll"]["nextCursor"]>().toEqualTypeOf<string | null>()
    expectTypeOf<RouterOutputs["events"]["subscribe"]>().toEqualTypeOf<{ id: string; data: EventView }>()
    expectTypeOf<RouterOutputs["health"]["database"]>().toEqualTypeOf<"pglite" | "postgres">()
  })
})
