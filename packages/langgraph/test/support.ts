/**
 * Shared by the LangGraph adapter's e2e tests: the databases they run on, a real server with
 * one user acting on it for each `describe` block, and a one-node chat graph.
 */
import { randomUUID } from "node:crypto"
import { createChronicleClient } from "@chronicle/client"
import { graphIdForThread, graphStreamId } from "@chronicle/domain"
import { startTestServer, type TestDatabase, type TestServer } from "@chronicle/server/testing"
import { AIMessage, type BaseMessage } from "@langchain/core/messages"
import { END, MessagesAnnotation, START, StateGraph } from "@langchain/langgraph"
import type { BaseCheckpointSaver } from "@langchain/langgraph-checkpoint"
import { afterAll, beforeAll, inject } from "vitest"
import { ChronicleSaver } from "../src/index.ts"

export const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

/**
 * A new user of a real server on `database` (started with `serverEnv`), which the enclosing
 * `describe` block starts before its tests and closes after them. `server`, `token`, `client`,
 * `saver` and `threadEvents` are for use inside tests, once the server is up.
 */
export const serverUser = (database: TestDatabase, serverEnv: Record<string, string> = {}) => {
  const user = randomUUID()
  let started: { readonly server: TestServer; readonly token: string } | undefined
  beforeAll(async () => {
    const server = await startTestServer(database, serverEnv)
    started = { server, token: await server.authority.hs256Token({ sub: user }) }
  })
  afterAll(async () => {
    await started?.server.close()
  })
  const up = () => {
    if (started === undefined) throw new Error("the test server is not up: use it inside a test")
    return started
  }
  /** A client acting as the user, through `fetch` when given (the global one otherwise). */
  const client = (fetch?: typeof globalThis.fetch) =>
    createChronicleClient({ url: up().server.server.url, token: up().token, fetch })
  return {
    user,
    get server() {
      return up().server
    },
    get token() {
      return up().token
    },
    client,
    /** A saver of its own, over a new client: another process, as far as the server can tell. */
    saver: (fetch?: typeof globalThis.fetch) => new ChronicleSaver({ client: client(fetch) }),
    /** The first 500 events of the user's thread `threadId`, oldest first. */
    threadEvents: async (threadId: string) =>
      (
        await client().events.readStream.query({
          streamId: graphStreamId(graphIdForThread(user, threadId)),
          limit: 500,
        })
      ).items,
  }
}

/** A chat graph: one node answers with `reply(n)`, `n` the number of messages so far. */
export const chatGraph = (checkpointer: BaseCheckpointSaver, reply: (n: number) => string) =>
  new StateGraph(MessagesAnnotation)
    .addNode("agent", (state: { messages: Array<BaseMessage> }) => ({
      messages: [new AIMessage({ content: reply(state.messages.length) })],
    }))
    .addEdge(START, "agent")
    .addEdge("agent", END)
    .compile({ checkpointer })
