/**
 * A long messages thread through ChronicleSaver, against the real server (embedded database
 * and Postgres): every turn adds a user and an assistant message of about 2 KB, so the
 * thread's `messages` channel holds a list that grows by two each turn. The log must grow
 * with the turns, not with their square: a checkpoint stores the messages it adds, not the
 * whole list again. And one value larger than an event may hold is stored, and read back.
 */
import { randomUUID } from "node:crypto"
import { graphIdForThread, graphStreamId } from "@chronicle/domain"
import { testDatabases } from "@chronicle/server/testing"
import { type BaseMessage, HumanMessage } from "@langchain/core/messages"
import { describe, expect, it } from "vitest"
import type { ChronicleSaver } from "../src/index.ts"
import { chatGraph, env, serverUser } from "./support.ts"

/** About `bytes` of prose, different for every `seed`. */
const prose = (seed: string, bytes: number) => {
  const words = ["the", "thread", "keeps", "every", "turn", "of", "a", "long", "conversation", "safely"]
  let text = `${seed}:`
  for (let i = 0; text.length < bytes; i++) text += ` ${words[(i * 7 + seed.length) % words.length]}${i % 13}`
  return text
}

/** A chat graph whose node answers the last user message with about `replyBytes` of text. */
const proseGraph = (checkpointer: ChronicleSaver, replyBytes = 2_000) =>
  chatGraph(checkpointer, (n) => prose(`reply ${n}`, replyBytes))

describe.each(testDatabases(env))("a long messages thread in ChronicleSaver ($name)", (database) => {
  const served = serverUser(database)

  /** Bytes of JSON the thread's events hold in the log. */
  const logBytes = async (threadId: string) => {
    const client = served.client()
    let bytes = 0
    let cursor: string | undefined
    for (;;) {
      const page = await client.events.readStream.query({
        streamId: graphStreamId(graphIdForThread(served.user, threadId)),
        ...(cursor === undefined ? {} : { cursor }),
        limit: 500,
      })
      for (const event of page.items) bytes += JSON.stringify(event.data).length
      if (page.nextCursor === null) return bytes
      cursor = page.nextCursor
    }
  }

  it("runs 200 turns, and the log grows linearly with them", { timeout: 300_000 }, async () => {
    const saver = served.saver()
    const graph = proseGraph(saver)
    const threadId = `chat-${randomUUID()}`
    const config = { configurable: { thread_id: threadId } }
    const bytesAt: Record<number, number> = {}
    for (let turn = 1; turn <= 200; turn++) {
      await graph.invoke({ messages: [new HumanMessage(prose(`question ${turn}`, 2_000))] }, config)
      if (turn === 100 || turn === 200) bytesAt[turn] = await logBytes(threadId)
    }
    const state = await graph.getState(config)
    const messages = state.values.messages as Array<BaseMessage>
    expect(messages).toHaveLength(400)
    expect(messages[0]!.content).toBe(prose("question 1", 2_000))
    expect(messages[399]!.content).toBe(prose("reply 399", 2_000))
    console.info(`log bytes of a messages thread: ${JSON.stringify(bytesAt)}`)
    // Twice the turns, about twice the bytes (the square would be four times).
    expect(bytesAt[200]! / bytesAt[100]!).toBeLessThan(2.5)

    // A new saver (another process) reads the thread as it is, and goes on from it.
    const resumed = proseGraph(served.saver())
    await resumed.invoke({ messages: [new HumanMessage("one more")] }, config)
    const after = (await resumed.getState(config)).values.messages as Array<BaseMessage>
    expect(after).toHaveLength(402)
    expect(after.slice(0, 400).map((m) => m.content)).toEqual(messages.map((m) => m.content))

    // Every checkpoint of the history reads its own list.
    const lengths: Array<number> = []
    for await (const snapshot of resumed.getStateHistory(config, { limit: 5 })) {
      lengths.push((snapshot.values.messages as Array<BaseMessage> | undefined)?.length ?? 0)
    }
    expect(lengths).toEqual([402, 401, 400, 400, 399])
  })

  it("keeps one value larger than an event may hold", async () => {
    const saver = served.saver()
    // 5 MiB of text: more than one event may hold (6 MiB of JSON here) once base64-encoded.
    const graph = proseGraph(saver, 5 * 1024 * 1024)
    const config = { configurable: { thread_id: `big-${randomUUID()}` } }
    await graph.invoke({ messages: [new HumanMessage("give me everything")] }, config)
    await graph.invoke({ messages: [new HumanMessage("and again")] }, config)
    const fresh = proseGraph(served.saver())
    const messages = (await fresh.getState(config)).values.messages as Array<BaseMessage>
    expect(messages.map((m) => (m.content as string).length)).toEqual([
      "give me everything".length,
      prose("reply 1", 5 * 1024 * 1024).length,
      "and again".length,
      prose("reply 3", 5 * 1024 * 1024).length,
    ])
    expect(messages[3]!.content).toBe(prose("reply 3", 5 * 1024 * 1024))
    // The log carries the replies' SHA-256, their bytes are in the blob store.
    const events = await served.threadEvents(config.configurable.thread_id)
    for (const event of events) expect(JSON.stringify(event.data).length).toBeLessThan(100_000)
    expect(JSON.stringify(events)).toContain('"sha256"')
  })
})
