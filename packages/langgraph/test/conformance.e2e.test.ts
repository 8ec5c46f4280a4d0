/**
 * LangGraph's own conformance suite for checkpointers (@langchain/langgraph-checkpoint-validation),
 * run against the real server on Postgres (the embedded database when no Postgres answers),
 * through the real client: `validate` (put, putWrites, getTuple, list, deleteThread) and the
 * separately exported delta-channel-history tests.
 */
import { randomUUID } from "node:crypto"
import { clientFor, startTestServer, type TestServer, testDatabases } from "@chronicle/server/testing"
import {
  type CheckpointSaverTestInitializer,
  deltaChannelHistoryTests,
  validate,
} from "@langchain/langgraph-checkpoint-validation"
import { inject } from "vitest"
import { ChronicleSaver } from "../src/index.ts"

const databases = testDatabases({
  postgresUrl: inject("postgresUrl"),
  pgliteTemplate: inject("pgliteTemplate"),
})
const database = databases.find((d) => d.name === "postgres") ?? databases[0]!

let server: TestServer | undefined

const initializer: CheckpointSaverTestInitializer<ChronicleSaver> = {
  checkpointerName: `@chronicle/langgraph on ${database.name}`,
  beforeAllTimeout: 120_000,
  beforeAll: async () => {
    server = await startTestServer(database)
  },
  afterAll: async () => {
    await server?.close()
  },
  // Each checkpointer acts for a new user, so no instance sees another's threads.
  createCheckpointer: async () =>
    new ChronicleSaver({
      client: clientFor(server!.server.url, await server!.authority.hs256Token({ sub: randomUUID() })),
    }),
}

validate(initializer)
deltaChannelHistoryTests(initializer)
