/**
 * `imports.conversation` up to the advertised 5,000 messages, on both databases: the import is
 * several appends (the store takes 500 events at most in one) in one transaction, so it lands
 * whole or not at all; 5,001 messages are refused at the boundary with the field path.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { allPages, clientFor, refusal, startTestServer, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const MAX_MESSAGES = 5000

const conversation = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    role: i % 2 === 0 ? ("user" as const) : ("assistant" as const),
    content: `message ${i + 1}`,
    createdAt: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
  }))

describe.each(testDatabases(env))("importing a long conversation, on $name", (database) => {
  let t: TestServer
  let me: ChronicleClient

  beforeAll(async () => {
    t = await startTestServer(database)
    me = clientFor(t.server.url, await t.authority.hs256Token({ sub: randomUUID() }))
  })
  afterAll(() => t?.close())

  it("imports 5,000 messages as one session: listed in order, versions contiguous", async () => {
    const messages = conversation(MAX_MESSAGES)
    const session = await me.imports.conversation.mutate({
      title: "legacy",
      externalKey: "legacy-1",
      messages,
    })
    expect(session).toMatchObject({ version: MAX_MESSAGES + 1, counts: { messages: MAX_MESSAGES } })
    const { items } = await allPages((cursor) =>
      me.messages.list.query({ sessionId: session.id, limit: 500, cursor }),
    )
    expect(items.map((m) => [m.seq, m.role, m.content, m.createdAt])).toEqual(
      messages.map((m, i) => [i + 1, m.role, m.content, m.createdAt]),
    )
    const { items: events } = await allPages((cursor) =>
      me.events.readStream.query({ streamId: `session-${session.id}`, limit: 500, cursor }),
    )
    expect(events.map((e) => e.version)).toEqual(Array.from({ length: MAX_MESSAGES + 1 }, (_, i) => i + 1))
    expect(await me.sessions.getByKey.query({ externalKey: "legacy-1" })).toEqual(session)
  })

  it("refuses 5,001 messages at the boundary, naming the field", async () => {
    await refusal(me.imports.conversation.mutate({ messages: conversation(MAX_MESSAGES + 1) }), {
      code: "BAD_REQUEST",
      message: /^messages: .*5000/,
    })
  })

  it("writes nothing when a later chunk is refused: all or nothing", async () => {
    const messages = conversation(1200)
    // Message 1,100 (event 1,101: the third append, its 101st) carries metadata past the largest event the store takes.
    const huge = { blob: "x".repeat(7 * 1024 * 1024) }
    const refused = await refusal(
      me.imports.conversation.mutate({
        externalKey: "legacy-2",
        messages: messages.map((m, i) => (i === 1099 ? { ...m, metadata: huge } : m)),
      }),
      { code: "PAYLOAD_TOO_LARGE", tag: "EventTooLarge" },
    )
    expect(refused.message).toMatch(/^messages\[1099\]: the event is \d+ bytes/)
    await refusal(me.sessions.getByKey.query({ externalKey: "legacy-2" }), { code: "NOT_FOUND" })
    // The same import without the oversize message then succeeds, whole.
    const session = await me.imports.conversation.mutate({ externalKey: "legacy-2", messages })
    expect(session).toMatchObject({ version: 1201, counts: { messages: 1200 } })
  })
})
