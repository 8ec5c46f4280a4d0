/**
 * ChronicleSession against the real server (embedded database and Postgres) through the real
 * client, typed with the SDK's own types; and an agent loop with a scripted model (no network)
 * that persists its history and reloads it in a new session object.
 */
import { randomUUID } from "node:crypto"
import { createChronicleClient } from "@chronicle/client"
import {
  clientFor,
  startTestServer,
  sweepLater,
  type TestServer,
  testDatabases,
} from "@chronicle/server/testing"
import {
  Agent,
  type AgentInputItem,
  type Model,
  type ModelRequest,
  type ModelResponse,
  Runner,
  type Session,
  tool,
  Usage,
} from "@openai/agents"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { z } from "zod"
import { ChronicleSession } from "../src/index.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const user = (text: string): AgentInputItem => ({ role: "user", content: text })
const assistant = (text: string): AgentInputItem => ({
  role: "assistant",
  status: "completed",
  content: [{ type: "output_text", text }],
})

/** A model that answers from a script and records what it was sent. */
class ScriptedModel implements Model {
  readonly requests: Array<ModelRequest> = []
  private readonly script: Array<(request: ModelRequest) => ModelResponse["output"]>
  constructor(script: Array<(request: ModelRequest) => ModelResponse["output"]>) {
    this.script = script
  }
  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    this.requests.push(request)
    const next = this.script.shift()
    if (next === undefined) throw new Error("the script has no more turns")
    return { usage: new Usage(), output: next(request), responseId: randomUUID() }
  }
  // biome-ignore lint/correctness/useYield: the runner here never streams
  async *getStreamedResponse(): AsyncIterable<never> {
    throw new Error("not scripted")
  }
}

describe.each(testDatabases(env))("ChronicleSession ($name)", (database) => {
  let server: TestServer
  let token: string
  beforeAll(async () => {
    server = await startTestServer(database)
    token = await server.authority.hs256Token({ sub: randomUUID() })
  })
  afterAll(async () => {
    await server?.close()
  })

  const session = (key: string = randomUUID()) =>
    new ChronicleSession({ client: clientFor(server.server.url, token), key, title: "support" })

  it("finds the same Chronicle session by key from any instance", async () => {
    const key = randomUUID()
    const a: Session = session(key)
    const id = await a.getSessionId()
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    expect(await session(key).getSessionId()).toBe(id)
    expect(await session().getSessionId()).not.toBe(id)
  })

  it("stores items with their full JSON and returns the most recent ones in order", async () => {
    const s = session()
    const call: AgentInputItem = {
      type: "function_call",
      callId: "call_1",
      name: "lookup",
      arguments: '{"order":"4711"}',
      status: "completed",
      providerData: { nested: { deep: [1, 2, 3] } },
    }
    const result: AgentInputItem = {
      type: "function_call_result",
      callId: "call_1",
      name: "lookup",
      status: "completed",
      output: { type: "text", text: "shipped" },
    }
    const items = [user("Where is 4711?"), call, result, assistant("It shipped.")]
    await s.addItems(items)
    expect(await s.getItems()).toEqual(items)
    expect(await s.getItems(2)).toEqual(items.slice(2))
    expect(await s.getItems(10)).toEqual(items)
    expect(await s.getItems(0)).toEqual([])

    // The items are messages: readable text, the item in the metadata.
    const page = await s.client.messages.list.query({ sessionId: await s.getSessionId() })
    expect(page.items.map((m) => [m.role, m.content])).toEqual([
      ["user", "Where is 4711?"],
      ["assistant", 'lookup({"order":"4711"})'],
      ["tool", "shipped"],
      ["assistant", "It shipped."],
    ])
    // The item without its text (kept once, in the content), and where the text goes back.
    expect(page.items[1]!.metadata).toEqual({
      item: { ...call, arguments: "" },
      itemText: [{ path: ["arguments"], start: "lookup(".length, length: '{"order":"4711"}'.length }],
    })
  })

  it("stores each item's text once", async () => {
    const s = session()
    const text = "a fairly long answer, ".repeat(1_500)
    const items = [user(text), assistant(text)]
    await s.addItems(items)
    expect(await s.getItems()).toEqual(items)
    const stream = await s.client.events.readStream.query({ streamId: `session-${await s.getSessionId()}` })
    const appended = stream.items.filter((e) => e.type === "MessageAppended")
    expect(appended).toHaveLength(2)
    for (const event of appended) {
      const bytes = Buffer.byteLength(JSON.stringify(event.data))
      expect(bytes, "the event's data holds the text once").toBeLessThan(text.length + 1_000)
    }
  })

  it("round-trips a user message carrying a 5 MB image", async () => {
    const s = session()
    const image = Buffer.alloc(5 * 1024 * 1024)
    for (let i = 0; i < image.length; i++) image[i] = (i * 2654435761) >>> 24
    const withImage: AgentInputItem = {
      role: "user",
      content: [
        { type: "input_image", image: `data:image/png;base64,${image.toString("base64")}`, detail: "auto" },
        { type: "input_text", text: "What is in this picture?" },
      ],
    }
    await s.addItems([withImage, assistant("A cat.")])
    expect(await s.getItems()).toEqual([withImage, assistant("A cat.")])
    const page = await s.client.messages.list.query({
      sessionId: await s.getSessionId(),
      largeContent: "omit",
    })
    expect(page.items[0]).toMatchObject({ content: "What is in this picture?", metadata: {} })
    expect(page.items[0]!.large?.metadata?.size).toBeGreaterThan(5 * 1024 * 1024)
  }, 120_000)

  it("round-trips a 10 MB tool output and an 800 KB one, the events holding references", async () => {
    const s = session()
    const big = `${'tool output line with "quotes" and ünïcødé\n'.repeat(250_000)}end`
    const medium = "x".repeat(800 * 1024)
    const call: AgentInputItem = {
      type: "function_call",
      callId: "call_big",
      name: "fetch_page",
      arguments: JSON.stringify({ url: "https://example.test/" }),
      status: "completed",
    }
    const items: Array<AgentInputItem> = [
      user("Fetch it"),
      call,
      {
        type: "function_call_result",
        callId: "call_big",
        name: "fetch_page",
        status: "completed",
        output: big,
      },
      {
        type: "function_call_result",
        callId: "call_big",
        name: "fetch_page",
        status: "completed",
        output: { type: "text", text: medium },
      },
      assistant("Done."),
    ]
    await s.addItems(items)
    expect(await s.getItems()).toEqual(items)
    expect(await s.getItems(3)).toEqual(items.slice(2))
    // Reloaded in a new session object, as another process would.
    expect(await new ChronicleSession({ client: s.client, key: s.key }).getItems()).toEqual(items)
    const stream = await s.client.events.readStream.query({
      streamId: `session-${await s.getSessionId()}`,
      largeContent: "omit",
    })
    const sizes = stream.items
      .filter((e) => e.type === "MessageAppended")
      .map((e) => Buffer.byteLength(JSON.stringify(e.data)))
    expect(Math.max(...sizes)).toBeLessThan(4_096)
  }, 120_000)

  it("reads the last items of a conversation longer than a page without reading every page", async () => {
    // Every procedure the client calls, one entry per call (a batched request carries several).
    const calls: Array<string> = []
    const counting: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input))
      calls.push(...url.pathname.replace(/^\/trpc\//, "").split(","))
      return fetch(input, init)
    }
    const s = new ChronicleSession({
      client: createChronicleClient({ url: server.server.url, token, fetch: counting }),
    })
    // More items than one request reads (500), so a full read takes two pages.
    const items = Array.from({ length: 503 }, (_, i) => (i % 2 === 0 ? user(`q${i}`) : assistant(`a${i}`)))
    await s.addItems(items)
    const lists = async (read: () => Promise<unknown>) => {
      calls.length = 0
      const result = await read()
      return { result, lists: calls.filter((c) => c === "messages.list").length }
    }

    const all = await lists(() => s.getItems())
    expect(all).toEqual({ result: items, lists: 2 })
    for (const [limit, pages] of [
      [1, 1],
      [3, 1],
      [500, 1],
      [501, 2],
      [503, 2],
      [1_000, 2],
    ] as const) {
      expect(await lists(() => s.getItems(limit)), `getItems(${limit})`).toEqual({
        result: items.slice(-limit),
        lists: pages,
      })
    }
    expect(await lists(() => s.getItems(0))).toEqual({ result: [], lists: 0 })

    // Popping reads only the last item too, and what is left reads the same way.
    expect(await lists(() => s.popItem())).toEqual({ result: items.at(-1), lists: 1 })
    expect(await s.getItems(2)).toEqual(items.slice(-3, -1))
    expect(await s.getItems()).toEqual(items.slice(0, -1))
  })

  it("pops the latest item and clears the session as rollbacks, keeping the history in the log", async () => {
    const s = session()
    const sessionId = await s.getSessionId()
    expect(await s.popItem()).toBeUndefined()
    await s.addItems([user("one"), assistant("two"), user("three")])
    expect(await s.popItem()).toEqual(user("three"))
    expect(await s.getItems()).toEqual([user("one"), assistant("two")])
    await s.addItems([user("four")])
    expect(await s.getItems()).toEqual([user("one"), assistant("two"), user("four")])
    expect(await s.popItem()).toEqual(user("four"))

    await s.clearSession()
    expect(await s.getItems()).toEqual([])
    expect(await s.popItem()).toBeUndefined()
    await s.addItems([user("again")])
    expect(await s.getItems()).toEqual([user("again")])

    // Nothing was deleted: every item is in the log, and the rollbacks are events.
    const stream = await s.client.events.readStream.query({ streamId: `session-${sessionId}` })
    expect(stream.items.map((e) => e.type)).toEqual([
      "SessionStarted",
      "MessageAppended",
      "MessageAppended",
      "MessageAppended",
      "SessionRolledBack",
      "MessageAppended",
      "SessionRolledBack",
      "SessionRolledBack",
      "MessageAppended",
    ])
    // …and the session reads as it was before the clear.
    const before = await s.client.messages.list.query({ sessionId, asOf: { version: 6 } })
    expect(before.items.map((m) => m.content)).toEqual(["one", "two", "four"])
  })

  it("persists an agent loop's history (a tool call included) and reloads it in a new session object", async () => {
    const key = `conversation-${randomUUID()}`
    const lookup = tool({
      name: "lookup_order",
      description: "Where an order is",
      parameters: z.object({ order: z.string() }),
      execute: async ({ order }) => `order ${order} shipped on Monday`,
    })
    const model = new ScriptedModel([
      () => [
        {
          type: "function_call",
          callId: "call_42",
          name: "lookup_order",
          arguments: JSON.stringify({ order: "4711" }),
          status: "completed",
        },
      ],
      () => [
        {
          type: "message",
          role: "assistant",
          status: "completed",
          id: "msg_1",
          content: [{ type: "output_text", text: "Your order shipped on Monday." }],
        },
      ],
      () => [
        {
          type: "message",
          role: "assistant",
          status: "completed",
          id: "msg_2",
          content: [{ type: "output_text", text: "You asked about order 4711." }],
        },
      ],
    ])
    const runner = new Runner({ modelProvider: { getModel: () => model }, tracingDisabled: true })
    const agent = new Agent({ name: "support", instructions: "Help with orders.", tools: [lookup] })

    const first = await runner.run(agent, "Where is order 4711?", { session: session(key) })
    expect(first.finalOutput).toBe("Your order shipped on Monday.")

    // A new session object (a new process, say) reloads the whole history by key.
    const reloaded = session(key)
    const history = await reloaded.getItems()
    expect(history.map((i) => ("type" in i ? i.type : undefined) ?? "message")).toEqual([
      "message",
      "function_call",
      "function_call_result",
      "message",
    ])
    expect(history[0]).toMatchObject({ role: "user", content: "Where is order 4711?" })
    expect(history[2]).toMatchObject({ callId: "call_42", output: { text: "order 4711 shipped on Monday" } })

    // The next turn sends that history to the model, then appends to it.
    const second = await runner.run(agent, "What did I ask?", { session: reloaded })
    expect(second.finalOutput).toBe("You asked about order 4711.")
    const sent = model.requests.at(-1)!.input as Array<AgentInputItem>
    expect(sent.slice(0, 4)).toEqual(history)
    expect(sent.at(-1)).toMatchObject({ role: "user", content: "What did I ask?" })
    expect(await session(key).getItems()).toHaveLength(6)
  })
})

describe.each(testDatabases(env))("ChronicleSession resumed after expiry ($name)", (database) => {
  let server: TestServer
  let token: string
  beforeAll(async () => {
    server = await startTestServer(database)
    token = await server.authority.hs256Token({ sub: randomUUID() })
  })
  afterAll(async () => {
    await server?.close()
  })

  /** The server's retention sweep, run as if a year had passed: every idle session expires. */
  const expireAll = async (s: ChronicleSession) => {
    expect((await sweepLater(server, 24 * 365)).expired).toBeGreaterThanOrEqual(1)
    expect((await s.client.sessions.get.query({ id: await s.getSessionId() })).status).toBe("expired")
  }

  it("adds, pops and clears items of a session the sweep expired, from a new process too", async () => {
    const key = randomUUID()
    const first = new ChronicleSession({ client: clientFor(server.server.url, token), key })
    await first.addItems([user("Where is 4711?"), assistant("It shipped.")])
    await expireAll(first)

    // The next day, another process picks the conversation up by key.
    const next = new ChronicleSession({ client: clientFor(server.server.url, token), key })
    expect(await next.getItems()).toEqual([user("Where is 4711?"), assistant("It shipped.")])
    await next.addItems([user("And 4712?")])
    expect(await next.getItems()).toEqual([
      user("Where is 4711?"),
      assistant("It shipped."),
      user("And 4712?"),
    ])
    const id = await next.getSessionId()
    expect((await next.client.sessions.get.query({ id })).status).toBe("active")

    await expireAll(next)
    expect(await next.popItem()).toEqual(user("And 4712?"))
    expect(await next.getItems()).toHaveLength(2)
    await expireAll(next)
    await next.clearSession()
    expect(await next.getItems()).toEqual([])
    await next.addItems([user("Start over")])
    expect(await next.getItems()).toEqual([user("Start over")])

    const types = (await next.client.sessions.timeline.query({ id, limit: 100 })).items.map((e) => e.type)
    expect(types.filter((type) => type === "SessionExpired")).toHaveLength(3)
    expect(types.filter((type) => type === "SessionReopened")).toHaveLength(3)
  })
})
