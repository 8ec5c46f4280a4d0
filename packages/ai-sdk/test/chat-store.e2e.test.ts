/**
 * ChronicleChatStore against the real server (embedded database and Postgres) through the real
 * client, with the AI SDK's own types and validation; and the documented route pattern
 * (`consumeStream()` + `onFinish` → `saveChat`) with a scripted model, no network.
 */
import { randomUUID } from "node:crypto"
import {
  clientFor,
  startTestServer,
  sweepLater,
  type TestServer,
  testDatabases,
} from "@chronicle/server/testing"
import { convertToModelMessages, simulateReadableStream, streamText, type UIMessage } from "ai"
import { MockLanguageModelV4 } from "ai/test"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { z } from "zod"
import { ChronicleChatStore } from "../src/index.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const text = (id: string, role: UIMessage["role"], value: string): UIMessage => ({
  id,
  role,
  parts: [{ type: "text", text: value }],
})

/** A model that streams one scripted answer. */
const answering = (answer: string) =>
  new MockLanguageModelV4({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunks: [
          { type: "text-start" as const, id: "t1" },
          ...answer.split(" ").map((word, i) => ({
            type: "text-delta" as const,
            id: "t1",
            delta: i === 0 ? word : ` ${word}`,
          })),
          { type: "text-end" as const, id: "t1" },
          {
            type: "finish" as const,
            finishReason: { unified: "stop" as const, raw: "stop" },
            usage: {
              inputTokens: { total: 3, noCache: 3, cacheRead: undefined, cacheWrite: undefined },
              outputTokens: { total: 5, text: 5, reasoning: undefined },
            },
          },
        ],
      }),
    }),
  })

describe.each(testDatabases(env))("ChronicleChatStore ($name)", (database) => {
  let server: TestServer
  let store: ChronicleChatStore
  beforeAll(async () => {
    server = await startTestServer(database)
    const token = await server.authority.hs256Token({ sub: randomUUID() })
    store = new ChronicleChatStore({ client: clientFor(server.server.url, token) })
  })
  afterAll(async () => {
    await server?.close()
  })

  const eventTypes = async (chatId: string) => {
    const session = await store.session(chatId)
    const page = await store.client.events.readStream.query({ streamId: `session-${session.id}` })
    return page.items.map((e) => e.type)
  }

  it("loads what it saved; re-saving the same messages records nothing", async () => {
    const chatId = await store.createChat()
    expect(await store.loadChat(chatId)).toEqual([])
    const messages: Array<UIMessage> = [
      text("m1", "user", "Plan a CLI"),
      {
        id: "m2",
        role: "assistant",
        metadata: { model: "scripted" },
        parts: [
          { type: "step-start" },
          { type: "reasoning", text: "think", state: "done" },
          { type: "text", text: "Here is a plan.", state: "done" },
        ],
      },
    ]
    expect(await store.saveChat({ chatId, messages })).toEqual({ appended: 2, replaced: 0 })
    expect(await store.loadChat(chatId)).toEqual(messages)
    const before = await eventTypes(chatId)

    expect(await store.saveChat({ chatId, messages })).toEqual({ appended: 0, replaced: 0 })
    expect(await store.saveChat({ id: chatId, messages: structuredClone(messages) })).toEqual({
      appended: 0,
      replaced: 0,
    })
    expect(await eventTypes(chatId)).toEqual(before)

    // A longer list appends only what is new.
    const more = [...messages, text("m3", "user", "Shorter, please")]
    expect(await store.saveChat({ chatId, messages: more })).toEqual({ appended: 1, replaced: 0 })
    expect(await store.loadChat(chatId)).toEqual(more)
  })

  it("stores each message's text once: in its content, not again in the metadata", async () => {
    const chatId = await store.createChat()
    const long = "a line of the answer that should be stored once. ".repeat(2_000)
    const messages: Array<UIMessage> = [
      text("u1", "user", "Tell me \u2028everything 😀"),
      {
        id: "a1",
        role: "assistant",
        parts: [
          { type: "text", text: long, state: "done" },
          { type: "reasoning", text: "not the answer", state: "done" },
          { type: "text", text: " — and a second part.", state: "done" },
        ],
      },
    ]
    await store.saveChat({ chatId, messages })
    const session = await store.session(chatId)
    const stored = (await store.client.messages.list.query({ sessionId: session.id })).items
    expect(stored.map((m) => m.content)).toEqual([
      "Tell me \u2028everything 😀",
      `${long} — and a second part.`,
    ])
    // The metadata keeps the rest of the message (parts, their order, the reasoning), not the text.
    for (const m of stored) {
      const metadata = JSON.stringify(m.metadata)
      expect(metadata).not.toContain("everything")
      expect(metadata).not.toContain("a line of the answer")
      expect(metadata).not.toContain("a second part")
    }
    expect(JSON.stringify(stored[1]!.metadata)).toContain("not the answer")
    expect(await store.loadChat(chatId)).toEqual(messages)
  })

  it("replaces a regenerated answer by a rollback, keeping the old one in the log", async () => {
    const chatId = await store.createChat()
    const question = text("q", "user", "Name a colour")
    await store.saveChat({ chatId, messages: [question, text("a1", "assistant", "Red")] })
    expect(await store.saveChat({ chatId, messages: [question, text("a2", "assistant", "Blue")] })).toEqual({
      appended: 1,
      replaced: 1,
    })
    expect(await store.loadChat(chatId)).toEqual([question, text("a2", "assistant", "Blue")])
    expect(await eventTypes(chatId)).toEqual([
      "SessionStarted",
      "MessageAppended",
      "MessageAppended",
      "SessionRolledBack",
      "MessageAppended",
    ])
  })

  it("gives a message sent without an id one on save", async () => {
    const chatId = await store.createChat()
    await store.saveChat({ chatId, messages: [text("", "user", "hello")] })
    const [loaded] = await store.loadChat(chatId)
    expect(loaded?.id).toMatch(/^[0-9a-f-]{36}$/)
    // The stored id now identifies it: saving what was loaded records nothing.
    expect(await store.saveChat({ chatId, messages: [loaded!] })).toEqual({ appended: 0, replaced: 0 })
  })

  it("validates on load: metadata that breaks the app's schema is refused", async () => {
    const strict = new ChronicleChatStore({
      client: store.client,
      validation: { metadataSchema: z.object({ model: z.string() }) },
    })
    const chatId = await store.createChat()
    await store.saveChat({
      chatId,
      messages: [
        { id: "x", role: "assistant", metadata: { model: 42 }, parts: [{ type: "text", text: "hi" }] },
      ],
    })
    await expect(strict.loadChat(chatId)).rejects.toThrow()
    expect(await store.loadChat(chatId)).toHaveLength(1)
  })

  it("persists a streamed answer with onFinish + consumeStream(), with a server-assigned id", async () => {
    const chatId = await store.createChat()
    await store.saveChat({ chatId, messages: [text("u1", "user", "Hi")] })

    // The route handler of the README, with a scripted model.
    const post = async (incoming: UIMessage) => {
      const messages = [...(await store.loadChat(chatId)), incoming]
      const result = streamText({
        model: answering("Hello there, how can I help?"),
        messages: await convertToModelMessages(messages),
      })
      result.consumeStream() // no await: the model's stream runs to its end whatever the client does
      let finished!: (saving: Promise<unknown>) => void
      const saved = new Promise<unknown>((resolve) => {
        finished = resolve
      })
      const response = result.toUIMessageStreamResponse({
        originalMessages: messages,
        generateMessageId: store.generateMessageId,
        onFinish: ({ messages }) => finished(store.saveChat({ chatId, messages })),
      })
      return { response, saved }
    }

    const { response, saved } = await post(text("u2", "user", "Anyone there?"))
    const body = await response.text() // what the browser's useChat reads
    expect(body).toContain("Hello")
    await saved

    const chat = await store.loadChat(chatId)
    expect(chat.map((m) => [m.role, m.parts.filter((p) => p.type === "text").map((p) => p.text)])).toEqual([
      ["user", ["Hi"]],
      ["user", ["Anyone there?"]],
      ["assistant", ["Hello there, how can I help?"]],
    ])
    expect(chat[2]!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/)
  })

  it("saves and loads an answer whose tool call returned 10 MB", async () => {
    const chatId = await store.createChat()
    const output = `${'a page of the fetched site, with "quotes" and ünïcødé\n'.repeat(190_000)}end`
    const messages: Array<UIMessage> = [
      text("u1", "user", "Fetch the site"),
      {
        id: "a1",
        role: "assistant",
        parts: [
          { type: "step-start" },
          {
            type: "tool-fetch_page",
            toolCallId: "call-1",
            state: "output-available",
            input: { url: "https://example.test/" },
            output,
          },
          { type: "text", text: "Fetched.", state: "done" },
        ],
      },
    ]
    expect(await store.saveChat({ chatId, messages })).toEqual({ appended: 2, replaced: 0 })
    expect(await store.loadChat(chatId)).toEqual(messages)
    expect(await store.saveChat({ chatId, messages })).toEqual({ appended: 0, replaced: 0 })
  }, 120_000)

  it("saves a turn whose message carries a 5 MB image attachment in onFinish, and loads it back", async () => {
    const chatId = await store.createChat()
    // Bytes that do not compress: a real image's are about as random.
    const image = Buffer.alloc(5 * 1024 * 1024)
    for (let i = 0; i < image.length; i++) image[i] = (i * 2654435761) >>> 24
    const withImage: UIMessage = {
      id: "u-image",
      role: "user",
      parts: [
        { type: "file", mediaType: "image/png", url: `data:image/png;base64,${image.toString("base64")}` },
        { type: "text", text: "What is in this picture?" },
      ],
    }
    const messages = [...(await store.loadChat(chatId)), withImage]
    const result = streamText({
      model: answering("A very large picture."),
      messages: await convertToModelMessages(messages),
    })
    result.consumeStream()
    let finished!: (saving: Promise<unknown>) => void
    const saved = new Promise<unknown>((resolve) => {
      finished = resolve
    })
    const response = result.toUIMessageStreamResponse({
      originalMessages: messages,
      generateMessageId: store.generateMessageId,
      onFinish: ({ messages }) => finished(store.saveChat({ chatId, messages })),
    })
    await response.text()
    expect(await saved).toEqual({ appended: 2, replaced: 0 })

    const chat = await store.loadChat(chatId)
    expect(chat[0]).toEqual(withImage)
    expect(chat[1]!.parts.filter((p) => p.type === "text").map((p) => p.text)).toEqual([
      "A very large picture.",
    ])
    // Saving the same chat again records nothing.
    expect(await store.saveChat({ chatId, messages: chat })).toEqual({ appended: 0, replaced: 0 })
    // The event refers to the attachment; the bytes are in the blob store.
    const session = await store.session(chatId)
    const stream = await store.client.events.readStream.query({
      streamId: `session-${session.id}`,
      largeContent: "omit",
    })
    const appended = stream.items.filter((e) => e.type === "MessageAppended")
    expect(Math.max(...appended.map((e) => Buffer.byteLength(JSON.stringify(e.data))))).toBeLessThan(4_096)
  }, 120_000)
})

describe.each(testDatabases(env))("ChronicleChatStore resumed after expiry ($name)", (database) => {
  let server: TestServer
  let store: ChronicleChatStore
  beforeAll(async () => {
    server = await startTestServer(database)
    const token = await server.authority.hs256Token({ sub: randomUUID() })
    store = new ChronicleChatStore({ client: clientFor(server.server.url, token) })
  })
  afterAll(async () => {
    await server?.close()
  })

  /** The server's retention sweep, run as if a year had passed: every idle chat expires. */
  const expireAll = async (chatId: string) => {
    expect((await sweepLater(server, 24 * 365)).expired).toBeGreaterThanOrEqual(1)
    expect((await store.session(chatId)).status).toBe("expired")
  }

  it("saves a chat the sweep expired: new messages, and a regenerated answer", async () => {
    const chatId = await store.createChat()
    const question = text("m1", "user", "Plan a CLI")
    await store.saveChat({ chatId, messages: [question, text("m2", "assistant", "Step 1")] })
    await expireAll(chatId)

    // Resumed the next day: the conversation goes on.
    const followUp = [question, text("m2", "assistant", "Step 1"), text("m3", "user", "And then?")]
    expect(await store.saveChat({ chatId, messages: followUp })).toEqual({ appended: 1, replaced: 0 })
    expect(await store.loadChat(chatId)).toEqual(followUp)
    expect((await store.session(chatId)).status).toBe("active")

    // Expired again, then the last answer regenerated: a rollback and an append.
    await expireAll(chatId)
    const regenerated = [question, text("m2b", "assistant", "Step one, better")]
    expect(await store.saveChat({ chatId, messages: regenerated })).toEqual({ appended: 1, replaced: 2 })
    expect(await store.loadChat(chatId)).toEqual(regenerated)
  })
})
