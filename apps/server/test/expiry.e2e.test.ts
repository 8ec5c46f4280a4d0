/**
 * Expiry never breaks a conversation, on both databases, through the real server and client:
 * a session the retention sweep expired is reopened by the next write of any kind, recorded as
 * SessionReopened just before the write's own events; archived and deleted sessions stay
 * read-only; a caller's expected version and idempotency key keep their meaning.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { clientFor, refusal, startTestServer, sweepLater, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

/** Longer than any TTL the server runs with here (the default). */
const IDLE_HOURS = 24 * 365

describe.each(testDatabases(env))("expired sessions, on $name", (database) => {
  let t: TestServer
  let me: ChronicleClient
  const owner = randomUUID()

  beforeAll(async () => {
    t = await startTestServer(database)
    me = clientFor(t.server.url, await t.authority.hs256Token({ sub: owner }))
  })
  afterAll(() => t?.close())

  /** Expires every idle session through the server's sweep, and checks that this one was. */
  const expire = async (sessionId: string) => {
    const report = await sweepLater(t, IDLE_HOURS)
    expect(report.expired).toBeGreaterThanOrEqual(1)
    expect((await me.sessions.get.query({ id: sessionId })).status).toBe("expired")
  }

  const timeline = async (sessionId: string) =>
    (await me.sessions.timeline.query({ id: sessionId, limit: 500 })).items

  it("is reopened by the next write of every kind, the reopening recorded just before it", async () => {
    const session = await me.sessions.create.mutate({ title: "resumed the next day" })
    await me.messages.append.mutate({ sessionId: session.id, role: "user", content: "first" })
    const file = await me.files.put.mutate({
      name: "notes.txt",
      mimeType: "text/plain",
      contentBase64: Buffer.from("notes").toString("base64"),
    })
    const writes: ReadonlyArray<readonly [command: string, event: string, write: () => Promise<unknown>]> = [
      [
        "AppendMessages",
        "MessageAppended",
        () => me.messages.append.mutate({ sessionId: session.id, role: "user", content: "again" }),
      ],
      [
        "AppendMessages",
        "MessageAppended",
        () =>
          me.messages.appendMany.mutate({
            sessionId: session.id,
            messages: [{ role: "assistant", content: "a batch" }],
          }),
      ],
      [
        "AddRevision",
        "RevisionAdded",
        () => me.revisions.add.mutate({ sessionId: session.id, ir: { steps: [1] } }),
      ],
      [
        "RecordDraft",
        "DraftRecorded",
        () => me.drafts.add.mutate({ sessionId: session.id, code: "x", language: "ts", valid: true }),
      ],
      [
        "ResolveHole",
        "HoleResolved",
        () => me.holes.resolve.mutate({ sessionId: session.id, holeId: "h", value: 1, confidence: 0.5 }),
      ],
      [
        "RecordToolRun",
        "ToolRunRecorded",
        () =>
          me.toolRuns.record.mutate({ sessionId: session.id, tool: "grep", input: {}, status: "succeeded" }),
      ],
      [
        "UpdateSession",
        "SessionUpdated",
        () => me.sessions.update.mutate({ id: session.id, title: "renamed" }),
      ],
      [
        "AttachFile",
        "FileAttached",
        () => me.files.attach.mutate({ sessionId: session.id, fileId: file.id }),
      ],
      [
        "DetachFile",
        "FileDetached",
        () => me.files.detach.mutate({ sessionId: session.id, fileId: file.id }),
      ],
      [
        "CreateCheckpoint",
        "CheckpointCreated",
        () => me.checkpoints.create.mutate({ sessionId: session.id, label: "after a night" }),
      ],
      ["RollBack", "SessionRolledBack", () => me.sessions.rollback.mutate({ id: session.id, toVersion: 2 })],
    ]
    for (const [command, event, write] of writes) {
      await expire(session.id)
      const before = (await me.sessions.get.query({ id: session.id })).version
      await write()
      const after = await me.sessions.get.query({ id: session.id })
      expect(after.status, command).toBe("active")
      expect(after.version, command).toBe(before + 2)
      const tail = (await timeline(session.id)).slice(-3)
      expect(
        tail.map((e) => [e.type, e.data]),
        command,
      ).toEqual([
        ["SessionExpired", expect.anything()],
        ["SessionReopened", { command }],
        [event, expect.anything()],
      ])
    }
    // The rollback reverted content, never the reopenings (lifecycle events).
    const entries = await timeline(session.id)
    expect(entries.filter((e) => e.type === "SessionReopened").every((e) => !e.reverted)).toBe(true)
    const messages = await me.messages.list.query({ sessionId: session.id })
    expect(messages.items.map((m) => [m.seq, m.content])).toEqual([[1, "first"]])
    // A new message after all that continues the effective list.
    await expire(session.id)
    const next = await me.messages.append.mutate({ sessionId: session.id, role: "user", content: "next" })
    expect(next.seq).toBe(2)
  })

  it("keeps the caller's expected version and idempotency key meaningful across the reopening", async () => {
    const session = await me.sessions.create.mutate({ title: "pinned" })
    await me.messages.append.mutate({ sessionId: session.id, role: "user", content: "one" })
    await expire(session.id)
    const expired = await me.sessions.get.query({ id: session.id })
    // A version from before the expiry is stale: the sweep moved the session.
    await refusal(
      me.messages.append.mutate({
        sessionId: session.id,
        role: "user",
        content: "stale",
        expectedVersion: expired.version - 1,
      }),
      { code: "CONFLICT", tag: "VersionConflict" },
    )
    const request = {
      sessionId: session.id,
      role: "user" as const,
      content: "two",
      expectedVersion: expired.version,
      idempotencyKey: "resume-1",
    }
    const first = await me.messages.append.mutate(request)
    expect(first).toMatchObject({ seq: 2, version: expired.version + 2 })
    // The retry returns the first answer and records nothing: not another reopening either.
    expect(await me.messages.append.mutate({ ...request })).toEqual(first)
    const session2 = await me.sessions.get.query({ id: session.id })
    expect(session2).toMatchObject({ status: "active", version: expired.version + 2 })
  })

  it("is reopened once when several writers resume it at the same time", async () => {
    const session = await me.sessions.create.mutate({ title: "crowd" })
    await expire(session.id)
    const writers = 8
    const written = await Promise.all(
      Array.from({ length: writers }, (_, i) =>
        me.messages.append.mutate({ sessionId: session.id, role: "user", content: `w${i}` }),
      ),
    )
    expect(written.map((m) => m.seq).sort((a, b) => a - b)).toEqual(
      Array.from({ length: writers }, (_, i) => i + 1),
    )
    const types = (await timeline(session.id)).map((e) => e.type)
    expect(types.filter((type) => type === "SessionReopened")).toHaveLength(1)
    expect(types.slice(0, 3)).toEqual(["SessionStarted", "SessionExpired", "SessionReopened"])
  })

  it("leaves archived and deleted sessions read-only, and does not expire them", async () => {
    const archived = await me.sessions.create.mutate({ title: "archived" })
    await me.sessions.archive.mutate({ id: archived.id })
    const deleted = await me.sessions.create.mutate({ title: "deleted" })
    await me.sessions.delete.mutate({ id: deleted.id })
    await sweepLater(t, IDLE_HOURS)
    expect((await me.sessions.get.query({ id: archived.id })).status).toBe("archived")
    expect((await me.sessions.get.query({ id: deleted.id })).status).toBe("deleted")
    await refusal(me.messages.append.mutate({ sessionId: archived.id, role: "user", content: "x" }), {
      code: "CONFLICT",
      tag: "InvalidTransition",
      message: /archived session is read-only/,
    })
    await refusal(
      me.toolRuns.record.mutate({ sessionId: deleted.id, tool: "t", input: {}, status: "failed" }),
      {
        code: "CONFLICT",
        tag: "InvalidTransition",
        message: /deleted session is read-only/,
      },
    )
    // An expired session may still be archived: that does not reopen it.
    const idle = await me.sessions.create.mutate({ title: "idle" })
    await expire(idle.id)
    await me.sessions.archive.mutate({ id: idle.id, reason: "done" })
    expect((await timeline(idle.id)).map((e) => e.type)).toEqual([
      "SessionStarted",
      "SessionExpired",
      "SessionArchived",
    ])
  })
})
