/**
 * ChronicleSaver when responses are lost, against the real server (embedded database and
 * Postgres) through the real client: a `fetch` in front of the client lets each put reach the
 * server, then throws the response away the first time. The saver sends the put again under
 * the same idempotency key, and the log records it once.
 */
import { randomUUID } from "node:crypto"
import { testDatabases } from "@chronicle/server/testing"
import { emptyCheckpoint, uuid6 } from "@langchain/langgraph-checkpoint"
import { describe, expect, it } from "vitest"
import { tripGraph } from "../examples/trip.ts"
import { env, serverUser } from "./support.ts"

/** The procedures a tRPC request calls, from its URL (`/trpc/a.b,c.d?batch=1`). */
const proceduresOf = (url: string) =>
  decodeURIComponent(new URL(url).pathname.replace(/^.*\/trpc\//, "")).split(",")

/**
 * A `fetch` that delivers every request, but loses the response of a request made only of
 * puts (the client may batch several): the first time it sees that exact body (`always`:
 * every time). Records the procedures of each request it lost.
 */
const losingFetch = (options: { readonly always?: boolean } = {}) => {
  const seen = new Set<string>()
  const lost: Array<string> = []
  const lossy: typeof fetch = async (input, init) => {
    const response = await fetch(input, init)
    const procedures = proceduresOf(input instanceof Request ? input.url : String(input))
    const body = typeof init?.body === "string" ? init.body : ""
    if (procedures.every((p) => p.startsWith("graphs.put")) && (options.always || !seen.has(body))) {
      seen.add(body)
      await response.arrayBuffer() // the server has answered: the put is recorded
      lost.push(procedures.join(","))
      throw new TypeError("fetch failed: the connection closed before the response arrived")
    }
    return response
  }
  return { fetch: lossy, lost }
}

describe.each(testDatabases(env))("ChronicleSaver when responses are lost ($name)", (database) => {
  const served = serverUser(database)

  const lossySaver = (options: { readonly always?: boolean } = {}) => {
    const lossy = losingFetch(options)
    return { saver: served.saver(lossy.fetch), lost: lossy.lost }
  }

  /** The thread's log: each event's type, and the checkpoint or task it is about. */
  const log = async (threadId: string) =>
    (await served.threadEvents(threadId)).map((e) => {
      const data = e.data as { checkpointId?: string; taskId?: string }
      return [
        e.type,
        data.checkpointId ?? null,
        data.taskId ?? null,
        e.metadata.idempotencyKey ?? null,
      ] as const
    })

  it("runs a graph whose every put loses its first response, recording each put once", async () => {
    const clean = { configurable: { thread_id: `trip-${randomUUID()}` } }
    const lossyThread = { configurable: { thread_id: `trip-${randomUUID()}` } }
    const plain = tripGraph(served.saver())
    await plain.invoke({ destination: "Lisbon" }, clean)
    const doneClean = await plain.invoke(null, clean)

    const { saver, lost } = lossySaver()
    const graph = tripGraph(saver)
    await graph.invoke({ destination: "Lisbon" }, lossyThread)
    const done = await graph.invoke(null, lossyThread)
    expect(done).toEqual(doneClean)

    const recorded = await log(lossyThread.configurable.thread_id)
    // Every put was lost once and sent again; the log has what a run without losses records.
    const lostCalls = lost.flatMap((request) => request.split(","))
    expect(lostCalls.length).toBe(recorded.filter(([type]) => type !== "GraphThreadStarted").length)
    // LangGraph does not wait for one put before the next, so the order may differ between runs.
    const types = (events: typeof recorded) => events.map(([type]) => type).sort()
    expect(types(recorded)).toEqual(types(await log(clean.configurable.thread_id)))
    const puts = recorded.filter(([type]) => type !== "GraphThreadStarted")
    expect(new Set(puts.map(([type, cp, task]) => `${type} ${cp} ${task}`)).size).toBe(puts.length)
    expect(puts.every(([, , , key]) => typeof key === "string")).toBe(true)

    const history = []
    for await (const tuple of saver.list(lossyThread)) history.push(tuple.checkpoint.id)
    expect(history.length).toBe(puts.filter(([type]) => type === "GraphCheckpointSaved").length)
  })

  it("sends a put three times under one key when every response is lost, then fails; the log holds it once", async () => {
    const threadId = `thread-${randomUUID()}`
    const { saver, lost } = lossySaver({ always: true })
    const checkpoint = { ...emptyCheckpoint(), id: uuid6(-1) }
    const config = { configurable: { thread_id: threadId, checkpoint_ns: "" } }
    await expect(
      saver.put(config, checkpoint, { source: "input", step: -1, parents: {} }, {}),
    ).rejects.toThrow(/fetch failed/)
    expect(lost).toEqual(["graphs.putCheckpoint", "graphs.putCheckpoint", "graphs.putCheckpoint"])
    const recorded = await log(threadId)
    expect(recorded.map(([type, cp]) => [type, cp])).toEqual([
      ["GraphThreadStarted", null],
      ["GraphCheckpointSaved", checkpoint.id],
    ])

    const withId = { configurable: { ...config.configurable, checkpoint_id: checkpoint.id } }
    await expect(saver.putWrites(withId, [["topic", "rain"]], "task-1")).rejects.toThrow(/fetch failed/)
    expect(lost.length).toBe(6)
    expect((await log(threadId)).map(([type]) => type)).toEqual([
      "GraphThreadStarted",
      "GraphCheckpointSaved",
      "GraphWritesSaved",
    ])
    // What the server recorded reads back through a saver that gets its answers.
    const tuple = await served.saver().getTuple(withId)
    expect(tuple?.checkpoint.id).toBe(checkpoint.id)
    expect(tuple?.pendingWrites).toEqual([["task-1", "topic", "rain"]])
  })
})
