/**
 * List channels stored as what they added, against the real server (embedded database and
 * Postgres) through the real client: threads written before (each list whole) read as they
 * did and go on in the new shape; a list on a base the thread does not hold is refused; and a
 * saver that remembers a base of a thread deleted meanwhile sends the whole list instead.
 */
import { randomUUID } from "node:crypto"
import { testDatabases } from "@chronicle/server/testing"
import { type BaseMessage, HumanMessage } from "@langchain/core/messages"
import { type BaseCheckpointSaver, type CheckpointTuple, MemorySaver } from "@langchain/langgraph-checkpoint"
import { describe, expect, it } from "vitest"
import { chatGraph, env, serverUser } from "./support.ts"

const chat = (checkpointer: BaseCheckpointSaver) => chatGraph(checkpointer, (n) => `reply ${n}`)

const contents = (messages: unknown) => (messages as Array<BaseMessage>).map((m) => m.content)

describe.each(testDatabases(env))("list channels in ChronicleSaver ($name)", (database) => {
  const served = serverUser(database)

  /** The `GraphCheckpointSaved` events of a thread, oldest first. */
  const checkpointEvents = async (threadId: string) =>
    (await served.threadEvents(threadId))
      .filter((e) => e.type === "GraphCheckpointSaved")
      .map((e) => e.data as Record<string, never>)

  it("reads a thread whose lists were stored whole, and goes on storing what each step adds", async () => {
    // Two turns recorded as the saver recorded them before: every changed value whole.
    const memory = new MemorySaver()
    const config = { configurable: { thread_id: `old-${randomUUID()}` } }
    const old = chat(memory)
    await old.invoke({ messages: [new HumanMessage("first")] }, config)
    await old.invoke({ messages: [new HumanMessage("second")] }, config)
    const tuples: Array<CheckpointTuple> = []
    for await (const tuple of memory.list(config)) tuples.unshift(tuple)
    const client = served.client()
    const dump = async (value: unknown) => {
      const [type, bytes] = await memory.serde.dumpsTyped(value)
      return { type, data: Buffer.from(bytes).toString("base64") }
    }
    for (const tuple of tuples) {
      const { channel_values: values, ...rest } = tuple.checkpoint
      const versions = Object.entries(tuple.checkpoint.channel_versions).map(
        ([c, v]) => [c, String(v)] as const,
      )
      await client.graphs.putCheckpoint.mutate({
        threadId: config.configurable.thread_id,
        checkpointNs: "",
        checkpointId: tuple.checkpoint.id,
        parentCheckpointId: tuple.parentConfig?.configurable?.checkpoint_id ?? null,
        checkpoint: await dump(rest),
        metadata: JSON.parse(JSON.stringify(tuple.metadata)),
        channelVersions: Object.fromEntries(versions),
        blobs: await Promise.all(
          versions
            .filter(([channel]) => values[channel] !== undefined)
            .map(async ([channel, version]) => ({ channel, version, value: await dump(values[channel]) })),
        ),
      })
    }
    const before = (await checkpointEvents(config.configurable.thread_id)).length

    const graph = chat(served.saver())
    expect(contents((await graph.getState(config)).values.messages)).toEqual([
      "first",
      "reply 1",
      "second",
      "reply 3",
    ])
    await graph.invoke({ messages: [new HumanMessage("third")] }, config)
    await graph.invoke({ messages: [new HumanMessage("fourth")] }, config)
    expect(contents((await graph.getState(config)).values.messages)).toEqual([
      "first",
      "reply 1",
      "second",
      "reply 3",
      "third",
      "reply 5",
      "fourth",
      "reply 7",
    ])
    // The first list the saver writes is whole (it knew no list of the thread), the next ones
    // carry one message on top of the one before.
    const lists = (await checkpointEvents(config.configurable.thread_id))
      .slice(before)
      .flatMap(
        (e) =>
          e.blobs as unknown as Array<{
            channel: string
            list?: { base: string | null; items: Array<unknown> }
          }>,
      )
      .filter((b) => b.channel === "messages")
      .map((b) => b.list)
    expect(lists[0]).toMatchObject({ base: null })
    expect(lists[0]!.items).toHaveLength(5)
    for (const list of lists.slice(1)) {
      expect(list!.base).not.toBeNull()
      expect(list!.items).toHaveLength(1)
    }
    // Old checkpoints still read as they were stored.
    const history: Array<number> = []
    for await (const snapshot of graph.getStateHistory(config)) {
      history.push((snapshot.values.messages as Array<unknown> | undefined)?.length ?? 0)
    }
    expect(history).toEqual([8, 7, 6, 6, 5, 4, 4, 3, 2, 2, 1, 0])
  })

  it("refuses a list on a base the thread does not hold, with the field that names it", async () => {
    const client = served.client()
    const value = { type: "json", data: Buffer.from('"x"').toString("base64") }
    const put = (list: { base: string | null; keep: number }) =>
      client.graphs.putCheckpoint.mutate({
        threadId: `refused-${randomUUID()}`,
        checkpointNs: "",
        checkpointId: "cp-1",
        parentCheckpointId: null,
        checkpoint: value,
        metadata: {},
        channelVersions: { messages: "2" },
        blobs: [{ channel: "messages", version: "2", list: { ...list, items: [value] } }],
      })
    await expect(put({ base: "1", keep: 1 })).rejects.toMatchObject({
      data: { code: "NOT_FOUND" },
      message:
        'blobs.0.list.base: the list of channel "messages" at version "1", with 1 or more items, was not found',
    })
    await expect(put({ base: null, keep: 1 })).rejects.toMatchObject({
      data: { code: "BAD_REQUEST" },
      message: expect.stringContaining("blobs.0.list.keep"),
    })
    await expect(put({ base: "2", keep: 1 })).rejects.toMatchObject({ data: { code: "BAD_REQUEST" } })
  })

  it("sends the whole list when the base it remembers was deleted with its thread", async () => {
    const config = { configurable: { thread_id: `deleted-${randomUUID()}` } }
    // Counts the puts the server answered NOT_FOUND.
    const refused: Array<number> = []
    const counting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init)
      const url = input instanceof Request ? input.url : String(input)
      if (url.includes("graphs.putCheckpoint") && response.status === 404) refused.push(response.status)
      return response
    }
    const remembering = served.saver(counting)
    const graph = chat(remembering)
    // The same message (its id too) starts both conversations: the new list starts as the
    // remembered one did.
    const hello = () => new HumanMessage({ content: "hello", id: "hello-1" })
    await graph.invoke({ messages: [hello()] }, config)
    // Another process deletes the thread; this saver still remembers its lists.
    await served.saver().deleteThread(config.configurable.thread_id)
    await graph.invoke({ messages: [hello()] }, config)
    expect(refused.length).toBeGreaterThan(0)
    expect(contents((await graph.getState(config)).values.messages)).toEqual(["hello", "reply 1"])
    await graph.invoke({ messages: [new HumanMessage("again")] }, config)
    expect(contents((await chat(served.saver()).getState(config)).values.messages)).toEqual([
      "hello",
      "reply 1",
      "again",
      "reply 3",
    ])
  })
})
