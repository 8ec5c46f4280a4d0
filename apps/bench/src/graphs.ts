/**
 * `--only graphs`: the storage a LangGraph messages thread takes as it grows. A chat graph
 * (MessagesAnnotation, one node answering each user message) runs turn after turn, each turn
 * adding a user and an assistant message of about 2 KB, through ChronicleSaver against the
 * real server, and the same turns through LangGraph's own MemorySaver. At each checkpoint of
 * the run (e.g. 50, 100, 200 turns) it reports the bytes the thread takes in Chronicle's log
 * (the events' JSON), in its read model (the graph_* rows) and in the blob store, next to the
 * bytes MemorySaver holds serialized for the same turns.
 */
import { createChronicleClient } from "@chronicle/client"
import { ChronicleSaver } from "@chronicle/langgraph"
import { AIMessage, type BaseMessage, HumanMessage } from "@langchain/core/messages"
import { type BaseCheckpointSaver, END, MessagesAnnotation, START, StateGraph } from "@langchain/langgraph"
import { MemorySaver } from "@langchain/langgraph-checkpoint"
import type { BenchEnv } from "./env.ts"
import { startChronicle } from "./http.ts"
import { value } from "./report.ts"
import { type Section, section } from "./workloads.ts"

/** The turns at which the thread is measured. */
export const GRAPH_TURNS = { full: [50, 100, 200], quick: [10, 20, 40] } as const
const MESSAGE_BYTES = 2_000

/** About `bytes` of prose, different for every `seed`. */
const prose = (seed: string, bytes: number) => {
  const words = ["the", "agent", "reads", "every", "file", "in", "the", "project", "and", "answers"]
  let text = `${seed}:`
  for (let i = 0; text.length < bytes; i++) text += ` ${words[(i * 7 + seed.length) % words.length]}${i % 13}`
  return text
}

const chatGraph = (checkpointer: BaseCheckpointSaver) =>
  new StateGraph(MessagesAnnotation)
    .addNode("agent", (state: { messages: Array<BaseMessage> }) => ({
      messages: [new AIMessage({ content: prose(`reply ${state.messages.length}`, MESSAGE_BYTES) })],
    }))
    .addEdge(START, "agent")
    .addEdge("agent", END)
    .compile({ checkpointer })

/** Bytes MemorySaver holds for its threads: serialized checkpoints, metadata and writes. */
const memoryBytes = (saver: MemorySaver) => {
  let bytes = 0
  for (const namespaces of Object.values(saver.storage)) {
    for (const checkpoints of Object.values(namespaces)) {
      for (const [checkpoint, metadata] of Object.values(checkpoints)) {
        bytes += checkpoint.byteLength + metadata.byteLength
      }
    }
  }
  for (const writes of Object.values(saver.writes)) {
    for (const [, , value] of Object.values(writes)) bytes += value.byteLength
  }
  return bytes
}

/** Bytes the thread takes in Chronicle: its events' JSON, its read-model rows, its values in the blob store. */
const chronicleBytes = async (env: BenchEnv, threadId: string) => {
  const [row] = await env.raw.query<{ log: string; read_model: string; blobs: string }>(
    `with s as (
       select stream_id, chronicle.stream_uuid(stream_id) as graph_id from chronicle.events
        where type = 'GraphThreadStarted' and data ->> 'threadId' = $1)
     select (select coalesce(sum(octet_length(e.data::text) + octet_length(e.metadata::text)), 0)
               from chronicle.events e join s using (stream_id))::text as log,
            ((select coalesce(sum(pg_column_size(c.*)), 0) from chronicle.graph_checkpoints c join s using (graph_id))
             + (select coalesce(sum(pg_column_size(b.*)), 0) from chronicle.graph_blobs b join s using (graph_id))
             + (select coalesce(sum(pg_column_size(w.*)), 0) from chronicle.graph_writes w join s using (graph_id))
            )::text as read_model,
            (select coalesce(sum(x.size), 0) from chronicle.blobs x
              where x.sha256 in (select b.sha256 from chronicle.graph_blobs b join s using (graph_id)
                                 union select i ->> 'sha256' from chronicle.graph_blobs b join s using (graph_id),
                                        jsonb_array_elements(coalesce(b.items, '[]')) i
                                 union select w.sha256 from chronicle.graph_writes w join s using (graph_id))
            )::text as blobs`,
    [threadId],
  )
  return { log: Number(row!.log), readModel: Number(row!.read_model), blobs: Number(row!.blobs) }
}

export const graphFigures = async (env: BenchEnv, quick: boolean): Promise<Section> => {
  const out = section()
  const turns: ReadonlyArray<number> = quick ? GRAPH_TURNS.quick : GRAPH_TURNS.full
  const server = await startChronicle(env)
  try {
    const saver = new ChronicleSaver({ client: createChronicleClient({ url: server.url }) })
    const chronicle = chatGraph(saver)
    const memorySaver = new MemorySaver()
    const memory = chatGraph(memorySaver)
    const threadId = `bench-chat-${Date.now()}`
    const config = { configurable: { thread_id: threadId } }
    const at = new Map<
      number,
      { log: number; readModel: number; blobs: number; memory: number; readMs: number }
    >()
    /** Median time to read the thread's latest checkpoint (its whole message list) through the saver. */
    const readMs = async () => {
      const times: Array<number> = []
      for (let i = 0; i < 11; i++) {
        const t = performance.now()
        await saver.getTuple(config)
        times.push(performance.now() - t)
      }
      return Math.round(times.sort((a, b) => a - b)[5]! * 100) / 100
    }
    const last = turns.at(-1)!
    for (let turn = 1; turn <= last; turn++) {
      const input = { messages: [new HumanMessage(prose(`question ${turn}`, MESSAGE_BYTES))] }
      await chronicle.invoke(input, config)
      await memory.invoke(input, config)
      if (turns.includes(turn)) {
        at.set(turn, {
          ...(await chronicleBytes(env, threadId)),
          memory: memoryBytes(memorySaver),
          readMs: await readMs(),
        })
      }
    }
    const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 100) / 100
    for (const turn of turns) {
      const m = at.get(turn)!
      out.values.push(
        value({
          id: `graphs.log.t${turn}`,
          title: `Messages thread, ${turn} turns: Chronicle log (events' JSON)`,
          value: mib(m.log),
          unit: "MiB",
        }),
        value({
          id: `graphs.readModel.t${turn}`,
          title: `Messages thread, ${turn} turns: Chronicle read model (graph_* rows)`,
          value: mib(m.readModel),
          unit: "MiB",
        }),
        value({
          id: `graphs.blobs.t${turn}`,
          title: `Messages thread, ${turn} turns: Chronicle blob store`,
          value: mib(m.blobs),
          unit: "MiB",
        }),
        value({
          id: `graphs.memorySaver.t${turn}`,
          title: `Messages thread, ${turn} turns: LangGraph MemorySaver (serialized)`,
          value: mib(m.memory),
          unit: "MiB",
        }),
        value({
          id: `graphs.getTuple.t${turn}`,
          title: `Messages thread, ${turn} turns: ChronicleSaver.getTuple (latest checkpoint, ${turn * 2} messages), median of 11`,
          value: m.readMs,
          unit: "ms",
        }),
      )
    }
    // Growth from the middle measurement to the last (twice the turns): 2 is linear, 4 quadratic.
    const mid = at.get(turns[1]!)!
    const end = at.get(last)!
    out.values.push(
      value({
        id: "graphs.log.growth",
        title: `Chronicle log bytes at ${last} turns ÷ at ${turns[1]} turns (linear: 2, quadratic: 4)`,
        value: Math.round((end.log / mid.log) * 100) / 100,
        unit: "×",
        target: { op: "<", value: 2.5 },
      }),
      value({
        id: "graphs.readModel.growth",
        title: `Chronicle read model bytes at ${last} turns ÷ at ${turns[1]} turns`,
        value: Math.round((end.readModel / mid.readModel) * 100) / 100,
        unit: "×",
        target: { op: "<", value: 2.5 },
      }),
      value({
        id: "graphs.memorySaver.growth",
        title: `MemorySaver bytes at ${last} turns ÷ at ${turns[1]} turns`,
        value: Math.round((end.memory / mid.memory) * 100) / 100,
        unit: "×",
      }),
      value({
        id: "graphs.vsMemorySaver",
        title: `Chronicle log ÷ MemorySaver bytes at ${last} turns`,
        value: Math.round((end.log / end.memory) * 1000) / 1000,
        unit: "×",
      }),
    )
    out.notes.push(
      `Graphs: one messages thread (MessagesAnnotation, each turn a user and an assistant message of ~${MESSAGE_BYTES} bytes) run ${last} turns through ChronicleSaver on the real server and through MemorySaver; log = octet_length of the events' data and metadata JSON, read model = pg_column_size of the thread's graph_* rows, MemorySaver = the byte length of its serialized checkpoints, metadata and writes.`,
    )
  } finally {
    await server.close()
  }
  return out
}
