/**
 * Ids are UUIDs, and a UUID written in upper case (as .NET's Guid.ToString("D").ToUpper(),
 * SQL Server and many a hand-typed URL write them) names the same thing: every procedure that
 * takes an id accepts either case and answers with the lower-case id.
 */
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { type Callers, callers, refusal, startTestServer, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const UP = (id: string) => id.toUpperCase()

describe.each(testDatabases(env).filter((d) => d.name === "postgres" || env.postgresUrl === null))(
  "upper-case UUIDs through the client ($name)",
  (database) => {
    let t: TestServer
    let c: Callers
    beforeAll(async () => {
      t = await startTestServer(database)
      c = await callers(t)
    })
    afterAll(() => t.close())

    it("finds, appends to, checkpoints, forks and reads a session named by an upper-case id", async () => {
      const session = await c.asAlice.sessions.create.mutate({ title: "case" })
      expect(UP(session.id)).not.toBe(session.id)

      expect((await c.asAlice.sessions.get.query({ id: UP(session.id) })).id).toBe(session.id)
      const message = await c.asAlice.messages.append.mutate({
        sessionId: UP(session.id),
        role: "user",
        content: "hello",
      })
      expect(message.sessionId).toBe(session.id)
      const checkpoint = await c.asAlice.checkpoints.create.mutate({ sessionId: UP(session.id), label: "cp" })
      await c.asAlice.messages.append.mutate({ sessionId: session.id, role: "assistant", content: "later" })

      const asOf = await c.asAlice.messages.list.query({
        sessionId: UP(session.id),
        asOf: { checkpointId: UP(checkpoint.id) },
      })
      expect(asOf.items.map((m) => m.content)).toEqual(["hello"])

      const fork = await c.asAlice.sessions.fork.mutate({
        id: UP(session.id),
        checkpointId: UP(checkpoint.id),
      })
      expect(fork.parentId).toBe(session.id)
      const children = await c.asAlice.sessions.list.query({ parentId: UP(session.id) })
      expect(children.items.map((s) => s.id)).toEqual([fork.id])

      const stream = await c.asAlice.events.readStream.query({ streamId: `session-${UP(session.id)}` })
      expect(stream.items.map((e) => e.streamId)).toEqual(stream.items.map(() => `session-${session.id}`))
      expect(stream.items.length).toBeGreaterThanOrEqual(3)
    })

    it("takes upper-case ids for jobs, files and the service role's acting-for owner", async () => {
      const job = await c.asAlice.jobs.create.mutate({ type: "build", sessionId: null })
      expect((await c.asAlice.jobs.start.mutate({ id: UP(job.id) })).state).toBe("running")
      const file = await c.asAlice.files.put.mutate({
        name: "a.txt",
        mimeType: "text/plain",
        contentBase64: Buffer.from("a").toString("base64"),
      })
      expect((await c.asAlice.files.get.query({ id: UP(file.id) })).id).toBe(file.id)
      const mine = await c.asServiceFor(UP(c.alice)).sessions.list.query({})
      expect(mine.items.length).toBeGreaterThan(0)
    })

    it("still refuses what is not a UUID in either case, naming the field", async () => {
      await refusal(c.asAlice.sessions.get.query({ id: "NOT-A-UUID" }), {
        code: "BAD_REQUEST",
        message: /^id: /,
      })
      await refusal(c.asAlice.sessions.get.query({ id: UP(randomUUID()) }), { code: "NOT_FOUND" })
    })
  },
)
