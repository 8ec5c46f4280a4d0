import { createHash, randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest"
import {
  allPages,
  type Callers,
  callers,
  clientFor,
  ISO,
  refusal,
  runEnded,
  SMALL_LIMITS,
  smallLimitsEnv,
  startTestServer,
  type TestServer,
  testDatabases,
  UUID,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const iso = expect.stringMatching(ISO)
const uuid = expect.stringMatching(UUID)
const base64 = (text: string | Uint8Array) => Buffer.from(text).toString("base64")
const sha256 = (bytes: string | Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const cursorOf = (key: unknown) => Buffer.from(JSON.stringify(key)).toString("base64url")
const noDuplicates = (ids: ReadonlyArray<string>) => expect(new Set(ids).size).toBe(ids.length)

describe.each(testDatabases(env))("the domain API over HTTP, on $name", (database) => {
  let t: TestServer
  let c: Callers
  let me: ChronicleClient
  /** A client for a user of its own, so lists and analytics hold only what the test made. */
  let freshUser: () => Promise<{ id: string; client: ChronicleClient }>

  beforeAll(async () => {
    t = await startTestServer(database, smallLimitsEnv)
    c = await callers(t)
    me = c.asAlice
    freshUser = async () => {
      const id = randomUUID()
      return { id, client: clientFor(t.server.url, await t.authority.hs256Token({ sub: id })) }
    }
  })
  afterAll(() => t?.close())

  describe("sessions", () => {
    it("creates a session, ensures and finds it by external key, updates it with optimistic concurrency", async () => {
      const externalKey = `thread-${randomUUID()}`
      const created = await me.sessions.create.mutate({
        title: "Plan a trip",
        metadata: { channel: "web" },
        externalKey,
      })
      expect(created).toEqual({
        id: uuid,
        ownerId: c.alice,
        title: "Plan a trip",
        status: "active",
        metadata: { channel: "web" },
        version: 1,
        parentId: null,
        parentVersion: null,
        externalKey,
        counts: { messages: 0, revisions: 0, drafts: 0, holes: 0, files: 0, toolRuns: 0 },
        createdAt: iso,
        updatedAt: iso,
        lastActivityAt: iso,
      })

      const again = await refusal(me.sessions.create.mutate({ externalKey }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
      })
      expect(again.message).toContain(`a session with external key "${externalKey}" already exists`)

      expect(await me.sessions.ensure.mutate({ externalKey, title: "ignored" })).toEqual({
        session: created,
        created: false,
      })
      const ensured = await me.sessions.ensure.mutate({ externalKey: `${externalKey}-2`, title: "New" })
      expect(ensured).toMatchObject({
        created: true,
        session: { title: "New", version: 1, status: "active" },
      })
      expect(ensured.session.id).not.toBe(created.id)

      expect(await me.sessions.getByKey.query({ externalKey })).toEqual(created)
      await refusal(me.sessions.getByKey.query({ externalKey: "no-such-key" }), {
        code: "NOT_FOUND",
        tag: "NotFound",
        message: "session with external key no-such-key was not found",
      })
      expect(await me.sessions.get.query({ id: created.id })).toEqual(created)

      const updated = await me.sessions.update.mutate({
        id: created.id,
        title: "Plan a long trip",
        expectedVersion: 1,
      })
      expect(updated).toMatchObject({ title: "Plan a long trip", metadata: { channel: "web" }, version: 2 })
      expect(Date.parse(updated.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt))
      const stale = await refusal(
        me.sessions.update.mutate({ id: created.id, title: "x", expectedVersion: 1 }),
        {
          code: "CONFLICT",
          tag: "VersionConflict",
          message: `Stream session-${created.id} is at version 2, but the append expected version 1`,
        },
      )
      expect(stale.data?.fields).toEqual({ streamId: `session-${created.id}`, expected: 1, actual: 2 })
      await refusal(me.sessions.update.mutate({ id: created.id }), {
        code: "BAD_REQUEST",
        tag: "InvalidCommand",
        message: "title, metadata: an update needs a new title, new metadata or both",
      })
      const metadataOnly = await me.sessions.update.mutate({ id: created.id, metadata: { channel: "api" } })
      expect(metadataOnly).toMatchObject({
        title: "Plan a long trip",
        metadata: { channel: "api" },
        version: 3,
      })

      await refusal(me.sessions.get.query({ id: randomUUID() }), { code: "NOT_FOUND", tag: "NotFound" })
    })

    it("archives and deletes sessions, which then refuse appends; lists filter by status", async () => {
      const { client } = await freshUser()
      const [live, archived, deleted] = await Promise.all([
        client.sessions.create.mutate({ title: "live" }),
        client.sessions.create.mutate({ title: "archived" }),
        client.sessions.create.mutate({ title: "deleted" }),
      ])
      expect(await client.sessions.archive.mutate({ id: archived.id, reason: "done" })).toMatchObject({
        status: "archived",
        version: 2,
      })
      await refusal(
        client.messages.append.mutate({ sessionId: archived.id, role: "user", content: "hello?" }),
        {
          code: "CONFLICT",
          tag: "InvalidTransition",
          message: `Cannot append messages to session ${archived.id} (archived): the session is archived, and an archived session is read-only`,
        },
      )
      await refusal(client.sessions.archive.mutate({ id: archived.id }), {
        code: "CONFLICT",
        message: /the session is already archived$/,
      })
      await refusal(client.checkpoints.create.mutate({ sessionId: archived.id }), { code: "CONFLICT" })
      await refusal(
        client.sandboxes.register.mutate({ sessionId: archived.id, provider: "e2b", externalId: "x" }),
        {
          code: "CONFLICT",
          tag: "InvalidTransition",
          message: /sandboxes can be registered only for active sessions/,
        },
      )

      expect(await client.sessions.delete.mutate({ id: deleted.id })).toMatchObject({
        status: "deleted",
        version: 2,
      })
      await refusal(client.sessions.delete.mutate({ id: deleted.id }), {
        code: "CONFLICT",
        message: /the session is already deleted$/,
      })
      await refusal(client.sessions.archive.mutate({ id: deleted.id }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
      })
      await refusal(client.sessions.fork.mutate({ id: deleted.id, atVersion: 1 }), {
        code: "CONFLICT",
        message: /a deleted session cannot be forked/,
      })
      // An archived session may still be deleted.
      expect((await client.sessions.delete.mutate({ id: archived.id })).status).toBe("deleted")

      const ids = async (status?: "active" | "archived" | "deleted") =>
        (await client.sessions.list.query(status === undefined ? undefined : { status })).items.map(
          (s) => s.id,
        )
      expect(await ids()).toEqual([live.id])
      expect(await ids("active")).toEqual([live.id])
      expect(await ids("archived")).toEqual([])
      expect((await ids("deleted")).sort()).toEqual([archived.id, deleted.id].sort())
    })

    it("pages through sessions.list to the end, newest first, with no duplicate and no gap", async () => {
      const { id, client } = await freshUser()
      const created = await Promise.all(
        Array.from({ length: 23 }, (_, i) => client.sessions.create.mutate({ title: `s${i}` })),
      )
      const { items, pages } = await allPages((cursor) =>
        client.sessions.list.query({ limit: 5, ...(cursor ? { cursor } : {}) }),
      )
      expect(pages).toBe(5)
      noDuplicates(items.map((s) => s.id))
      expect(items.map((s) => s.id).sort()).toEqual(created.map((s) => s.id).sort())
      const times = items.map((s) => s.createdAt)
      expect(times).toEqual([...times].sort().reverse())
      expect(items.every((s) => s.ownerId === id)).toBe(true)
      // The service role acting for the owner sees the same list.
      const asService = await allPages((cursor) =>
        c.asServiceFor(id).sessions.list.query({ limit: 500, ...(cursor ? { cursor } : {}) }),
      )
      expect(asService.items.map((s) => s.id)).toEqual(items.map((s) => s.id))
    })
  })

  describe("messages", () => {
    it("appends messages one at a time and in batches, numbered by seq, with ISO timestamps", async () => {
      const session = await me.sessions.create.mutate({ title: "chat" })
      const first = await me.messages.append.mutate({
        sessionId: session.id,
        role: "user",
        content: "Hello",
        metadata: { client: "test" },
      })
      expect(first).toEqual({
        id: uuid,
        sessionId: session.id,
        seq: 1,
        role: "user",
        content: "Hello",
        metadata: { client: "test" },
        version: 2,
        createdAt: iso,
      })
      const batch = await me.messages.appendMany.mutate({
        sessionId: session.id,
        messages: [
          { role: "assistant", content: "Hi" },
          { role: "tool", content: "{}" },
          { role: "system", content: "Be brief" },
        ],
        expectedVersion: 2,
      })
      expect(batch.items.map((m) => [m.seq, m.version, m.role])).toEqual([
        [2, 3, "assistant"],
        [3, 4, "tool"],
        [4, 5, "system"],
      ])
      await refusal(
        me.messages.append.mutate({
          sessionId: session.id,
          role: "user",
          content: "late",
          expectedVersion: 2,
        }),
        {
          code: "CONFLICT",
          tag: "VersionConflict",
          message: `Stream session-${session.id} is at version 5, but the append expected version 2`,
        },
      )
      const listed = await me.messages.list.query({ sessionId: session.id })
      expect(listed).toEqual({ items: [first, ...batch.items], nextCursor: null })
      expect((await me.sessions.get.query({ id: session.id })).counts.messages).toBe(4)
      await refusal(me.messages.list.query({ sessionId: randomUUID() }), {
        code: "NOT_FOUND",
        tag: "NotFound",
      })
    })

    it("refuses an idempotency key reused for a different kind of command on the same session or job", async () => {
      const session = await me.sessions.create.mutate({})
      await me.messages.append.mutate({
        sessionId: session.id,
        role: "user",
        content: "x",
        idempotencyKey: "k",
      })
      await refusal(me.revisions.add.mutate({ sessionId: session.id, ir: {}, idempotencyKey: "k" }), {
        code: "CONFLICT",
        tag: "IdempotencyConflict",
      })
      await refusal(me.checkpoints.create.mutate({ sessionId: session.id, idempotencyKey: "k" }), {
        code: "CONFLICT",
        tag: "IdempotencyConflict",
      })
      const job = await me.jobs.create.mutate({ type: "build" })
      const started = await me.jobs.start.mutate({ id: job.id, idempotencyKey: "j" })
      expect(await me.jobs.start.mutate({ id: job.id, idempotencyKey: "j" })).toEqual(started)
      await refusal(me.jobs.complete.mutate({ id: job.id, idempotencyKey: "j" }), {
        code: "CONFLICT",
        tag: "IdempotencyConflict",
      })
      expect((await me.jobs.get.query({ id: job.id })).state).toBe("running")
      expect((await me.sessions.get.query({ id: session.id })).version).toBe(2)
    })

    it("refuses text Postgres cannot store (NUL, lone surrogates), in values and keys, naming the field", async () => {
      const session = await me.sessions.create.mutate({})
      await refusal(me.messages.append.mutate({ sessionId: session.id, role: "user", content: "a\u0000b" }), {
        code: "BAD_REQUEST",
        tag: "InvalidInput",
        message: "content contains a NUL character, which Postgres cannot store",
      })
      await refusal(me.sessions.update.mutate({ id: session.id, title: "\ud800" }), {
        code: "BAD_REQUEST",
        message: "title contains a lone UTF-16 surrogate",
      })
      await refusal(me.jobs.create.mutate({ type: "t", input: { "a\u0000": 1 } }), {
        code: "BAD_REQUEST",
        message: "input has a key with a NUL character, which Postgres cannot store",
      })
      expect((await me.sessions.get.query({ id: session.id })).version).toBe(1)
    })

    it("returns the first result for a retry with the same idempotency key, recording nothing new", async () => {
      const session = await me.sessions.create.mutate({})
      const send = () =>
        me.messages.append.mutate({
          sessionId: session.id,
          role: "user",
          content: "once",
          idempotencyKey: "msg-1",
        })
      const first = await send()
      const retry = await send()
      expect(retry).toEqual(first)
      // Even when the session moved on in between.
      await me.messages.append.mutate({ sessionId: session.id, role: "assistant", content: "reply" })
      expect(await send()).toEqual(first)
      const many = () =>
        me.messages.appendMany.mutate({
          sessionId: session.id,
          messages: [
            { role: "user", content: "a" },
            { role: "user", content: "b" },
          ],
          idempotencyKey: "batch-1",
        })
      const batch = await many()
      expect(await many()).toEqual(batch)
      const after = await me.sessions.get.query({ id: session.id })
      expect(after.version).toBe(5)
      expect((await me.messages.list.query({ sessionId: session.id })).items.map((m) => m.content)).toEqual([
        "once",
        "reply",
        "a",
        "b",
      ])
    })

    it("takes a batch of 500 but not 501, serves a page of 500 but not 501, and pages to the end", async () => {
      const session = await me.sessions.create.mutate({})
      const batch = (n: number, from = 0) =>
        Array.from({ length: n }, (_, i) => ({ role: "user" as const, content: `m${from + i + 1}` }))
      const tooMany = await refusal(
        me.messages.appendMany.mutate({ sessionId: session.id, messages: batch(501) }),
        {
          code: "BAD_REQUEST",
          tag: "InvalidInput",
          message: "messages: Expected a value with a length of at most 500",
        },
      )
      expect(tooMany.data?.fields).toEqual({
        issues: [{ path: "messages", message: "Expected a value with a length of at most 500" }],
      })
      await refusal(me.messages.appendMany.mutate({ sessionId: session.id, messages: [] }), {
        code: "BAD_REQUEST",
        message: /^messages: /,
      })
      expect(
        (await me.messages.appendMany.mutate({ sessionId: session.id, messages: batch(500) })).items,
      ).toHaveLength(500)
      expect(
        await me.messages.append.mutate({ sessionId: session.id, role: "assistant", content: "m501" }),
      ).toMatchObject({ seq: 501, version: 502 })

      await refusal(me.messages.list.query({ sessionId: session.id, limit: 501 }), {
        code: "BAD_REQUEST",
        tag: "InvalidInput",
        message: "limit: Expected a value less than or equal to 500",
      })
      await refusal(me.messages.list.query({ sessionId: session.id, limit: 0 }), {
        code: "BAD_REQUEST",
        message: "limit: Expected a value greater than or equal to 1",
      })
      const full = await me.messages.list.query({ sessionId: session.id, limit: 500 })
      expect(full.items).toHaveLength(500)
      expect(full.nextCursor).toEqual(expect.any(String))
      const rest = await me.messages.list.query({
        sessionId: session.id,
        limit: 500,
        cursor: full.nextCursor!,
      })
      expect(rest).toMatchObject({ items: [{ seq: 501, content: "m501" }], nextCursor: null })
      expect((await me.messages.list.query({ sessionId: session.id })).items).toHaveLength(50)

      const { items, pages } = await allPages((cursor) =>
        me.messages.list.query({ sessionId: session.id, limit: 37, ...(cursor ? { cursor } : {}) }),
      )
      expect(pages).toBe(14)
      noDuplicates(items.map((m) => m.id))
      expect(items.map((m) => m.seq)).toEqual(Array.from({ length: 501 }, (_, i) => i + 1))
      expect(items.map((m) => m.content)).toEqual(Array.from({ length: 501 }, (_, i) => `m${i + 1}`))
    })
  })

  describe("checkpoints, as-of reads, rollback and the timeline", () => {
    it("reads as of a checkpoint or a version, rolls back (also onto an abandoned branch) and marks reverted events", async () => {
      const s = await me.sessions.create.mutate({ title: "draft plan" }) // v1
      const say = (content: string) => me.messages.append.mutate({ sessionId: s.id, role: "user", content })
      const m1 = await say("first") // v2
      const m2 = await say("second") // v3
      const checkpoint = await me.checkpoints.create.mutate({ sessionId: s.id, label: "before edits" }) // v4
      expect(checkpoint).toEqual({
        id: uuid,
        sessionId: s.id,
        version: 3,
        label: "before edits",
        cursor: expect.stringMatching(/^\d+$/),
        createdAt: iso,
      })
      await me.sessions.update.mutate({ id: s.id, title: "edited plan" }) // v5
      const m3 = await say("third") // v6
      await me.revisions.add.mutate({ sessionId: s.id, ir: { step: 1 } }) // v7
      expect(await me.checkpoints.list.query({ sessionId: s.id })).toEqual({
        items: [checkpoint],
        nextCursor: null,
      })

      const atCheckpoint = await me.sessions.get.query({ id: s.id, asOf: { checkpointId: checkpoint.id } })
      expect(atCheckpoint).toMatchObject({
        id: s.id,
        title: "draft plan",
        version: 3,
        status: "active",
        counts: { messages: 2, revisions: 0 },
      })
      expect(await me.sessions.get.query({ id: s.id, asOf: { version: 7 } })).toMatchObject({
        title: "edited plan",
        version: 7,
        counts: { messages: 3, revisions: 1 },
      })
      const listAt = async (asOf: { version: number } | { checkpointId: string }) =>
        (await me.messages.list.query({ sessionId: s.id, asOf })).items.map((m) => m.content)
      expect(await listAt({ checkpointId: checkpoint.id })).toEqual(["first", "second"])
      expect(await listAt({ version: 2 })).toEqual(["first"])
      expect(await listAt({ version: 6 })).toEqual(["first", "second", "third"])
      expect((await me.revisions.list.query({ sessionId: s.id, asOf: { version: 6 } })).items).toEqual([])

      const rolledBack = await me.sessions.rollback.mutate({ id: s.id, checkpointId: checkpoint.id }) // v8
      expect(rolledBack).toMatchObject({
        version: 8,
        title: "draft plan",
        status: "active",
        counts: { messages: 2, revisions: 0 },
      })
      const m4 = await say("fourth") // v9: reuses the seq of the reverted message
      expect(m4).toMatchObject({ seq: 3, version: 9 })
      expect((await me.messages.list.query({ sessionId: s.id })).items).toEqual([m1, m2, m4])

      const timeline = async () =>
        (
          await allPages((cursor) =>
            me.sessions.timeline.query({ id: s.id, limit: 4, ...(cursor ? { cursor } : {}) }),
          )
        ).items
      const before = await timeline()
      expect(before.map((e) => [e.version, e.type, e.reverted])).toEqual([
        [1, "SessionStarted", false],
        [2, "MessageAppended", false],
        [3, "MessageAppended", false],
        [4, "CheckpointCreated", false],
        [5, "SessionUpdated", true],
        [6, "MessageAppended", true],
        [7, "RevisionAdded", true],
        [8, "SessionRolledBack", false],
        [9, "MessageAppended", false],
      ])
      expect(before[0]).toEqual({
        eventId: uuid,
        version: 1,
        type: "SessionStarted",
        data: expect.objectContaining({ sessionId: s.id, title: "draft plan" }),
        metadata: { actor: `user:${c.alice}` },
        recordedAt: iso,
        reverted: false,
      })

      await refusal(me.sessions.rollback.mutate({ id: s.id, toVersion: 9 }), {
        code: "BAD_REQUEST",
        tag: "InvalidCommand",
        message: `toVersion: cannot roll back to version 9: it must be between 1 and 8 (session ${s.id} is at version 9)`,
      })
      await refusal(me.sessions.rollback.mutate({ id: s.id, toVersion: 0 }), {
        code: "BAD_REQUEST",
        tag: "InvalidInput",
        message: /toVersion: Expected a value greater than or equal to 1/,
      })
      await refusal(me.sessions.rollback.mutate({ id: s.id, toVersion: 2, expectedVersion: 8 }), {
        code: "CONFLICT",
        tag: "VersionConflict",
      })
      // Version 6 was on the branch the rollback abandoned: rolling back to it restores what a reader saw then.
      const restored = await me.sessions.rollback.mutate({ id: s.id, toVersion: 6, expectedVersion: 9 }) // v10
      expect(restored).toMatchObject({
        version: 10,
        title: "edited plan",
        counts: { messages: 3, revisions: 0 },
      })
      expect((await me.messages.list.query({ sessionId: s.id })).items).toEqual([m1, m2, m3])
      expect((await timeline()).filter((e) => e.reverted).map((e) => e.version)).toEqual([7, 9])

      await refusal(me.sessions.get.query({ id: s.id, asOf: { version: 99 } }), {
        code: "BAD_REQUEST",
        tag: "InvalidCommand",
        message: "asOf.version: must be a version of this session, 1 to 10",
      })
      const unknown = randomUUID()
      await refusal(me.sessions.get.query({ id: s.id, asOf: { checkpointId: unknown } }), {
        code: "NOT_FOUND",
        message: `checkpoint ${unknown} was not found`,
      })
      // A checkpoint of another session does not exist for this one.
      const other = await me.sessions.create.mutate({})
      await refusal(me.sessions.rollback.mutate({ id: other.id, checkpointId: checkpoint.id }), {
        code: "NOT_FOUND",
        message: `checkpoint ${checkpoint.id} was not found`,
      })

      const exported = await me.sessions.export.query({ id: s.id })
      expect(exported.format).toBe("chronicle.session.v1")
      expect(exported.session).toEqual(await me.sessions.get.query({ id: s.id }))
      expect(exported.events.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      expect(exported.events[7]).toMatchObject({
        type: "SessionRolledBack",
        schemaVersion: 1,
        data: { toVersion: 3, checkpointId: checkpoint.id },
        recordedAt: iso,
      })
    })

    it("forks at a version or a checkpoint: the child starts with the parent's content as of then", async () => {
      const p = await me.sessions.create.mutate({ title: "parent", metadata: { v: 1 } }) // v1
      const put = (name: string) =>
        me.files.put.mutate({
          name,
          mimeType: "text/plain",
          contentBase64: base64(`${name} ${randomUUID()}`),
        })
      const [f1, f2, f3] = await Promise.all([put("a.txt"), put("b.txt"), put("c.txt")])
      await me.messages.append.mutate({ sessionId: p.id, role: "user", content: "m1" }) // v2
      await me.revisions.add.mutate({ sessionId: p.id, ir: { r: 1 }, note: "first" }) // v3
      await me.files.attach.mutate({ sessionId: p.id, fileId: f1!.id }) // v4
      await me.files.attach.mutate({ sessionId: p.id, fileId: f2!.id }) // v5
      await me.toolRuns.record.mutate({
        sessionId: p.id,
        tool: "search",
        input: { q: "x" },
        status: "succeeded",
      }) // v6
      const checkpoint = await me.checkpoints.create.mutate({ sessionId: p.id }) // v7 (version 6)
      await me.messages.append.mutate({ sessionId: p.id, role: "assistant", content: "m2" }) // v8
      await me.files.attach.mutate({ sessionId: p.id, fileId: f3!.id }) // v9
      await me.files.detach.mutate({ sessionId: p.id, fileId: f1!.id }) // v10

      const a = await me.sessions.fork.mutate({ id: p.id, checkpointId: checkpoint.id })
      expect(a).toMatchObject({
        id: uuid,
        ownerId: c.alice,
        parentId: p.id,
        parentVersion: 6,
        version: 1,
        status: "active",
        title: "parent",
        metadata: { v: 1 },
        counts: { messages: 1, revisions: 1, drafts: 0, holes: 0, files: 2, toolRuns: 1 },
      })
      const b = await me.sessions.fork.mutate({
        id: p.id,
        atVersion: 10,
        title: "child b",
        metadata: { v: 2 },
      })
      expect(b).toMatchObject({
        parentVersion: 10,
        title: "child b",
        metadata: { v: 2 },
        counts: { messages: 2, files: 2, toolRuns: 1 },
      })

      expect((await me.messages.list.query({ sessionId: a.id })).items).toMatchObject([
        { seq: 1, content: "m1", version: 1, sessionId: a.id },
      ])
      expect(
        await me.messages.append.mutate({ sessionId: a.id, role: "user", content: "own" }),
      ).toMatchObject({
        seq: 2,
        version: 2,
      })
      expect((await me.revisions.list.query({ sessionId: a.id })).items).toMatchObject([
        { number: 1, note: "first", version: 1 },
      ])
      expect((await me.toolRuns.list.query({ sessionId: a.id })).items).toMatchObject([
        { tool: "search", version: 1 },
      ])
      expect(await me.checkpoints.list.query({ sessionId: a.id })).toEqual({ items: [], nextCursor: null })
      // Every copied attachment sits at version 1: paging one at a time still reaches each of them.
      const attached = async (sessionId: string) =>
        (
          await allPages((cursor) =>
            me.files.listAttached.query({ sessionId, limit: 1, ...(cursor ? { cursor } : {}) }),
          )
        ).items.map((f) => f.name)
      expect((await attached(a.id)).sort()).toEqual(["a.txt", "b.txt"])
      expect((await attached(b.id)).sort()).toEqual(["b.txt", "c.txt"])
      expect((await me.sessions.timeline.query({ id: a.id })).items.map((e) => e.type)).toEqual([
        "SessionForked",
        "MessageAppended",
      ])

      const children = await me.sessions.list.query({ parentId: p.id })
      expect(children.items.map((s) => s.id).sort()).toEqual([a.id, b.id].sort())
      await refusal(me.sessions.fork.mutate({ id: p.id, atVersion: 11 }), {
        code: "BAD_REQUEST",
        tag: "InvalidCommand",
        message: "atVersion: must be a version of the parent session, 1 to 10",
      })
      await refusal(me.sessions.fork.mutate({ id: p.id, checkpointId: randomUUID() }), {
        code: "NOT_FOUND",
        message: /^checkpoint .* was not found$/,
      })
    })
  })

  describe("revisions, drafts, holes and tool runs", () => {
    it("numbers revisions, ties drafts to effective revisions and keeps hole confidence from falling", async () => {
      const s = await me.sessions.create.mutate({})
      const r1 = await me.revisions.add.mutate({ sessionId: s.id, ir: { ast: [1] } })
      expect(r1).toEqual({
        id: uuid,
        sessionId: s.id,
        number: 1,
        ir: { ast: [1] },
        note: null,
        version: 2,
        createdAt: iso,
      })
      const r2 = await me.revisions.add.mutate({ sessionId: s.id, ir: [2], note: "second" })
      expect(r2).toMatchObject({ number: 2, version: 3, note: "second" })
      expect((await me.revisions.list.query({ sessionId: s.id })).items).toEqual([r1, r2])

      const draft = await me.drafts.add.mutate({
        sessionId: s.id,
        code: "let x = 1",
        language: "ts",
        valid: true,
        metrics: { ms: 3 },
        revisionNumber: 2,
      })
      expect(draft).toEqual({
        id: uuid,
        sessionId: s.id,
        code: "let x = 1",
        language: "ts",
        valid: true,
        metrics: { ms: 3 },
        revisionNumber: 2,
        version: 4,
        createdAt: iso,
      })
      await refusal(
        me.drafts.add.mutate({ sessionId: s.id, code: "x", language: "ts", valid: false, revisionNumber: 3 }),
        {
          code: "CONFLICT",
          tag: "InvalidTransition",
          message: /the draft names revision 3, but the session's revisions are 1 to 2$/,
        },
      )
      const unbound = await me.drafts.add.mutate({ sessionId: s.id, code: "y", language: "py", valid: false })
      expect(unbound).toMatchObject({ revisionNumber: null, metrics: {}, valid: false })
      expect((await me.drafts.list.query({ sessionId: s.id })).items).toEqual([draft, unbound])

      const h1 = await me.holes.resolve.mutate({
        sessionId: s.id,
        holeId: "h1",
        value: "42",
        confidence: 0.5,
      })
      expect(h1).toEqual({
        id: uuid,
        sessionId: s.id,
        holeId: "h1",
        value: "42",
        confidence: 0.5,
        version: 6,
        createdAt: iso,
      })
      await refusal(
        me.holes.resolve.mutate({ sessionId: s.id, holeId: "h1", value: "41", confidence: 0.4 }),
        {
          code: "CONFLICT",
          tag: "InvalidTransition",
          message:
            /hole h1 is resolved with confidence 0\.5; a new resolution needs at least that, not 0\.4$/,
        },
      )
      await refusal(me.holes.resolve.mutate({ sessionId: s.id, holeId: "h1", value: "x", confidence: 1.5 }), {
        code: "BAD_REQUEST",
        tag: "InvalidInput",
        message: /^confidence: /,
      })
      const h1b = await me.holes.resolve.mutate({ sessionId: s.id, holeId: "h1", value: 43, confidence: 0.9 })
      const h2 = await me.holes.resolve.mutate({
        sessionId: s.id,
        holeId: "h2",
        value: null,
        confidence: 0.1,
      })
      expect((await me.holes.list.query({ sessionId: s.id })).items).toEqual([h1, h1b, h2])
      expect((await me.holes.list.query({ sessionId: s.id, holeId: "h1" })).items).toEqual([h1, h1b])
      expect((await me.sessions.get.query({ id: s.id })).counts).toEqual({
        messages: 0,
        revisions: 2,
        drafts: 2,
        holes: 3,
        files: 0,
        toolRuns: 0,
      })
    })

    it("records tool runs, which a rollback never reverts", async () => {
      const s = await me.sessions.create.mutate({})
      await me.messages.append.mutate({ sessionId: s.id, role: "user", content: "run it" }) // v2
      const run = await me.toolRuns.record.mutate({
        sessionId: s.id,
        tool: "shell",
        input: { cmd: "ls" },
        output: { files: 3 },
        status: "failed",
        durationMs: 120,
        error: "exit 1",
      }) // v3
      expect(run).toEqual({
        id: uuid,
        sessionId: s.id,
        tool: "shell",
        input: { cmd: "ls" },
        output: { files: 3 },
        status: "failed",
        durationMs: 120,
        error: "exit 1",
        version: 3,
        createdAt: iso,
      })
      const after = await me.sessions.rollback.mutate({ id: s.id, toVersion: 1 })
      expect(after.counts).toMatchObject({ messages: 0, toolRuns: 1 })
      expect((await me.toolRuns.list.query({ sessionId: s.id })).items).toEqual([run])
      expect((await me.toolRuns.list.query({ sessionId: s.id, asOf: { version: 2 } })).items).toEqual([])
      await refusal(
        me.toolRuns.record.mutate({
          sessionId: s.id,
          tool: "x",
          input: null,
          status: "exploded" as "failed",
        }),
        { code: "BAD_REQUEST", tag: "InvalidInput", message: /^status: / },
      )
    })
  })

  describe("files", () => {
    it("stores files once per content, attaches and detaches them, and lists them as of a version", async () => {
      const text = `notes ${randomUUID()}`
      const file = await me.files.put.mutate({
        name: "notes.txt",
        mimeType: "text/plain",
        contentBase64: base64(text),
      })
      expect(file).toEqual({
        id: uuid,
        ownerId: c.alice,
        sha256: sha256(text),
        name: "notes.txt",
        mimeType: "text/plain",
        size: Buffer.byteLength(text),
        createdAt: iso,
      })
      expect(await me.files.get.query({ id: file.id })).toEqual({ ...file, contentBase64: null })
      expect(await me.files.get.query({ id: file.id, includeContent: true })).toEqual({
        ...file,
        contentBase64: base64(text),
      })
      const copy = await me.files.put.mutate({
        name: "copy.txt",
        mimeType: "text/plain",
        contentBase64: base64(text),
      })
      expect(copy).toMatchObject({ sha256: file.sha256, name: "copy.txt" })
      expect(copy.id).not.toBe(file.id)

      const s = await me.sessions.create.mutate({})
      const attachment = await me.files.attach.mutate({ sessionId: s.id, fileId: file.id })
      expect(attachment).toEqual({
        fileId: file.id,
        sessionId: s.id,
        sha256: file.sha256,
        name: "notes.txt",
        mimeType: "text/plain",
        size: file.size,
        version: 2,
        attachedAt: iso,
      })
      await refusal(me.files.attach.mutate({ sessionId: s.id, fileId: file.id }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
        message: new RegExp(`file ${file.id} is already attached$`),
      })
      expect(await me.files.listAttached.query({ sessionId: s.id })).toEqual({
        items: [attachment],
        nextCursor: null,
      })
      expect(await me.files.detach.mutate({ sessionId: s.id, fileId: file.id })).toEqual({ detached: true })
      await refusal(me.files.detach.mutate({ sessionId: s.id, fileId: file.id }), {
        code: "NOT_FOUND",
        message: `attached file ${file.id} was not found`,
      })
      expect((await me.files.listAttached.query({ sessionId: s.id })).items).toEqual([])
      expect((await me.files.listAttached.query({ sessionId: s.id, asOf: { version: 2 } })).items).toEqual([
        attachment,
      ])
      expect((await me.sessions.get.query({ id: s.id })).counts.files).toBe(0)

      const bobs = await c.asBob.files.put.mutate({
        name: "b.txt",
        mimeType: "text/plain",
        contentBase64: base64("b"),
      })
      await refusal(me.files.attach.mutate({ sessionId: s.id, fileId: bobs.id }), {
        code: "NOT_FOUND",
        message: `file ${bobs.id} was not found`,
      })
      await refusal(me.files.get.query({ id: bobs.id }), { code: "NOT_FOUND", tag: "NotFound" })
      await refusal(me.files.attach.mutate({ sessionId: s.id, fileId: randomUUID() }), { code: "NOT_FOUND" })
    })

    it("pages through files.list to the end, newest first", async () => {
      const { client } = await freshUser()
      const put = (i: number) =>
        client.files.put.mutate({
          name: `f${i}.json`,
          mimeType: "application/json",
          contentBase64: base64(`[${i}]`),
        })
      const stored = await Promise.all(Array.from({ length: 7 }, (_, i) => put(i)))
      const { items, pages } = await allPages((cursor) =>
        client.files.list.query({ limit: 3, ...(cursor ? { cursor } : {}) }),
      )
      expect(pages).toBe(3)
      noDuplicates(items.map((f) => f.id))
      expect(items.map((f) => f.id).sort()).toEqual(stored.map((f) => f.id).sort())
    })

    it("refuses a file over the size limit, a MIME type off the allow-list and bytes that are not base64", async () => {
      const limit = SMALL_LIMITS.maxFileBytes
      const atLimit = await me.files.put.mutate({
        name: "max.bin",
        mimeType: "application/octet-stream",
        contentBase64: base64(new Uint8Array(limit).fill(7)),
      })
      expect(atLimit.size).toBe(limit)
      const over = await refusal(
        me.files.put.mutate({
          name: "big.bin",
          mimeType: "application/octet-stream",
          contentBase64: base64(new Uint8Array(limit + 1)),
        }),
        {
          code: "PAYLOAD_TOO_LARGE",
          tag: "PayloadTooLarge",
          message: `The file is ${limit + 1} bytes, over the limit of ${limit} bytes`,
        },
      )
      expect(over.data?.fields).toEqual({ what: "The file", size: limit + 1, limit })
      const media = await refusal(
        me.files.put.mutate({ name: "clip.mp4", mimeType: "video/mp4", contentBase64: base64("mp4") }),
        {
          code: "UNSUPPORTED_MEDIA_TYPE",
          tag: "UnsupportedMediaType",
          message: /^MIME type video\/mp4 is not allowed; allowed: text\/\*, /,
        },
      )
      expect(media.data?.fields).toMatchObject({
        mimeType: "video/mp4",
        allowed: expect.arrayContaining(["text/*"]),
      })
      await refusal(me.files.put.mutate({ name: "x", mimeType: "text/plain", contentBase64: "a" }), {
        code: "BAD_REQUEST",
        tag: "InvalidCommand",
        message: "contentBase64: is not valid base64",
      })
      await refusal(
        me.files.put.mutate({ name: "x", mimeType: "text/plain", contentBase64: "not base64!" }),
        {
          code: "BAD_REQUEST",
          tag: "InvalidInput",
          message: "contentBase64: must be base64 (A–Z, a–z, 0–9, +, /)",
        },
      )
      await refusal(me.files.put.mutate({ name: "x", mimeType: "plain text", contentBase64: "" }), {
        code: "BAD_REQUEST",
        message: "mimeType: must be a MIME type such as text/plain",
      })
    })
  })

  describe("jobs, tasks and artifacts", () => {
    it("runs a job through start, progress, pause, resume and completion, with tasks and artifacts", async () => {
      const s = await me.sessions.create.mutate({})
      const job = await me.jobs.create.mutate({
        type: "compile",
        input: { target: "es2024" },
        sessionId: s.id,
      })
      expect(job).toEqual({
        id: uuid,
        ownerId: c.alice,
        sessionId: s.id,
        parentJobId: null,
        type: "compile",
        state: "queued",
        input: { target: "es2024" },
        output: null,
        error: null,
        errorDetails: null,
        progress: null,
        progressMessage: null,
        version: 1,
        createdAt: iso,
        updatedAt: iso,
        startedAt: null,
        finishedAt: null,
      })
      expect(await me.jobs.get.query({ id: job.id })).toEqual(job)
      await refusal(me.jobs.start.mutate({ id: job.id, expectedVersion: 0 }), {
        code: "CONFLICT",
        tag: "VersionConflict",
        message: `Stream job-${job.id} is at version 1, but the append expected version 0`,
      })
      const started = await me.jobs.start.mutate({ id: job.id, worker: "w1", expectedVersion: 1 })
      expect(started).toMatchObject({ state: "running", version: 2, startedAt: iso, finishedAt: null })
      expect(await me.jobs.progress.mutate({ id: job.id, progress: 0.25, message: "parsing" })).toMatchObject(
        { progress: 0.25, progressMessage: "parsing", version: 3 },
      )
      expect((await me.jobs.pause.mutate({ id: job.id, reason: "quota" })).state).toBe("paused")
      await refusal(me.jobs.progress.mutate({ id: job.id, progress: 0.5 }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
        message: `Cannot report progress on job ${job.id} (paused): the job is paused; only a running job can do that`,
      })
      await refusal(me.jobs.progress.mutate({ id: job.id, progress: 2 }), {
        code: "BAD_REQUEST",
        message: /^progress: /,
      })
      expect((await me.jobs.resume.mutate({ id: job.id })).state).toBe("running")

      const task = await me.jobs.addTask.mutate({ id: job.id, name: "lex", input: { files: 2 } })
      expect(task).toEqual({
        id: uuid,
        jobId: job.id,
        name: "lex",
        status: "pending",
        input: { files: 2 },
        output: null,
        error: null,
        progress: null,
        createdAt: iso,
        updatedAt: iso,
      })
      expect(
        await me.jobs.updateTask.mutate({ id: job.id, taskId: task.id, status: "running", progress: 0.5 }),
      ).toMatchObject({ status: "running", progress: 0.5 })
      const done = await me.jobs.updateTask.mutate({
        id: job.id,
        taskId: task.id,
        status: "completed",
        output: { tokens: 10 },
      })
      expect(done).toMatchObject({ status: "completed", output: { tokens: 10 } })
      await refusal(me.jobs.updateTask.mutate({ id: job.id, taskId: task.id, status: "running" }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
        message: `Cannot update task ${task.id} (completed): the task is completed, and a completed task is final`,
      })
      const missingTask = randomUUID()
      await refusal(me.jobs.updateTask.mutate({ id: job.id, taskId: missingTask, status: "running" }), {
        code: "NOT_FOUND",
        message: `task ${missingTask} was not found`,
      })
      expect(await me.jobs.listTasks.query({ id: job.id })).toEqual({ items: [done], nextCursor: null })

      const completed = await me.jobs.complete.mutate({ id: job.id, output: { ok: true } })
      expect(completed).toMatchObject({ state: "completed", output: { ok: true }, finishedAt: iso })
      // Artifacts may still be recorded on a completed job.
      const file = await me.files.put.mutate({
        name: "out.js",
        mimeType: "application/javascript",
        contentBase64: base64("1"),
      })
      const artifact = await me.artifacts.record.mutate({ jobId: job.id, fileId: file.id, kind: "code" })
      expect(artifact).toEqual({
        id: uuid,
        jobId: job.id,
        sessionId: s.id,
        fileId: file.id,
        kind: "code",
        name: "out.js",
        sha256: file.sha256,
        mimeType: "application/javascript",
        size: 1,
        createdAt: iso,
      })
      expect(await me.artifacts.list.query({ jobId: job.id })).toEqual({
        items: [artifact],
        nextCursor: null,
      })
      expect(await me.artifacts.list.query({ sessionId: s.id })).toEqual({
        items: [artifact],
        nextCursor: null,
      })
      await refusal(me.jobs.addTask.mutate({ id: job.id, name: "late" }), {
        code: "CONFLICT",
        message: /the job is completed, and a completed job is final$/,
      })
      const listed = await me.jobs.list.query({ sessionId: s.id, state: "completed" })
      expect(listed.items.map((j) => j.id)).toEqual([job.id])
      await refusal(me.jobs.get.query({ id: missingTask }), {
        code: "NOT_FOUND",
        message: `job ${missingTask} was not found`,
      })
    })

    it("refuses whatever a cancelled or failed job cannot do; child jobs list under their parent", async () => {
      const cancelled = await me.jobs.create.mutate({ type: "deploy" })
      expect(await me.jobs.cancel.mutate({ id: cancelled.id, reason: "not needed" })).toMatchObject({
        state: "cancelled",
        finishedAt: iso,
      })
      const refusedComplete = await refusal(me.jobs.complete.mutate({ id: cancelled.id }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
        message: `Cannot complete job ${cancelled.id} (cancelled): the job is cancelled, and a cancelled job is final`,
      })
      expect(refusedComplete.data?.fields).toMatchObject({
        entity: "job",
        state: "cancelled",
        action: "complete",
      })
      await refusal(me.jobs.start.mutate({ id: cancelled.id }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
      })
      const file = await me.files.put.mutate({
        name: "log.txt",
        mimeType: "text/plain",
        contentBase64: base64("log"),
      })
      await refusal(me.artifacts.record.mutate({ jobId: cancelled.id, fileId: file.id, kind: "log" }), {
        code: "CONFLICT",
        message: /^Cannot record an artifact of job /,
      })

      const failed = await me.jobs.fail.mutate({
        id: (await me.jobs.create.mutate({ type: "deploy", parentJobId: cancelled.id })).id,
        error: "no capacity",
        details: { region: "eu" },
      })
      expect(failed).toMatchObject({
        state: "failed",
        error: "no capacity",
        errorDetails: { region: "eu" },
        parentJobId: cancelled.id,
        finishedAt: iso,
      })
      expect(
        (
          await me.artifacts.record.mutate({
            jobId: failed.id,
            fileId: file.id,
            kind: "log",
            name: "run.log",
          })
        ).name,
      ).toBe("run.log")
      await refusal(me.jobs.resume.mutate({ id: failed.id }), {
        code: "CONFLICT",
        message: /a failed job is final$/,
      })
      expect((await me.jobs.list.query({ parentJobId: cancelled.id })).items.map((j) => j.id)).toEqual([
        failed.id,
      ])
      await refusal(me.jobs.create.mutate({ type: "x", sessionId: randomUUID() }), { code: "NOT_FOUND" })
    })
  })

  describe("sandboxes", () => {
    it("registers sandboxes and moves them starting → running → stopped, after which they are final", async () => {
      const s = await me.sessions.create.mutate({})
      const sandbox = await me.sandboxes.register.mutate({
        sessionId: s.id,
        provider: "e2b",
        externalId: "sbx-1",
        metadata: { template: "node" },
      })
      expect(sandbox).toEqual({
        id: uuid,
        sessionId: s.id,
        ownerId: c.alice,
        provider: "e2b",
        externalId: "sbx-1",
        url: null,
        status: "starting",
        metadata: { template: "node" },
        createdAt: iso,
        updatedAt: iso,
        startedAt: null,
        endedAt: null,
      })
      const running = await me.sandboxes.updateStatus.mutate({
        id: sandbox.id,
        status: "running",
        url: "https://sbx-1.example",
        expectedVersion: 1,
      })
      expect(running).toMatchObject({
        status: "running",
        url: "https://sbx-1.example",
        startedAt: iso,
        endedAt: null,
      })
      await refusal(
        me.sandboxes.updateStatus.mutate({ id: sandbox.id, status: "stopped", expectedVersion: 1 }),
        {
          code: "CONFLICT",
          tag: "VersionConflict",
        },
      )
      expect(
        await me.sandboxes.updateStatus.mutate({ id: sandbox.id, status: "stopped", reason: "idle" }),
      ).toMatchObject({ status: "stopped", endedAt: iso })
      await refusal(me.sandboxes.updateStatus.mutate({ id: sandbox.id, status: "running" }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
        message: `Cannot move to running sandbox ${sandbox.id} (stopped): the sandbox is stopped, and a stopped sandbox is final`,
      })
      const second = await me.sandboxes.register.mutate({
        sessionId: s.id,
        provider: "e2b",
        externalId: "sbx-2",
      })
      expect((await me.sandboxes.list.query({ sessionId: s.id })).items.map((x) => x.id)).toEqual([
        sandbox.id,
        second.id,
      ])
      expect(
        (await me.sandboxes.list.query({ sessionId: s.id, status: "starting" })).items.map((x) => x.id),
      ).toEqual([second.id])
      // A session rollback never reverts a sandbox.
      await me.messages.append.mutate({ sessionId: s.id, role: "user", content: "x" })
      await me.sessions.rollback.mutate({ id: s.id, toVersion: 1 })
      expect((await me.sandboxes.get.query({ id: sandbox.id })).status).toBe("stopped")
      await refusal(me.sandboxes.get.query({ id: s.id }), {
        code: "NOT_FOUND",
        message: `sandbox ${s.id} was not found`,
      })
    })
  })

  describe("imports", () => {
    it("imports a conversation as a new session in one append, keeping the original timestamps", async () => {
      const externalKey = `legacy-${randomUUID()}`
      const imported = await me.imports.conversation.mutate({
        title: "legacy chat",
        externalKey,
        messages: [
          { role: "system", content: "Be kind", createdAt: "2024-01-02T03:04:05Z" },
          { role: "user", content: "Hi", createdAt: "2024-01-02T03:04:06.5+01:00" },
          { role: "assistant", content: "Hello", metadata: { model: "m" } },
        ],
      })
      expect(imported).toMatchObject({
        id: uuid,
        title: "legacy chat",
        externalKey,
        version: 4,
        counts: { messages: 3 },
      })
      const messages = (await me.messages.list.query({ sessionId: imported.id })).items
      expect(messages.map((m) => [m.seq, m.role, m.content, m.version])).toEqual([
        [1, "system", "Be kind", 2],
        [2, "user", "Hi", 3],
        [3, "assistant", "Hello", 4],
      ])
      expect(messages[0]!.createdAt).toBe("2024-01-02T03:04:05.000Z")
      expect(messages[1]!.createdAt).toBe("2024-01-02T02:04:06.500Z")
      expect(messages[2]!.createdAt).toMatch(ISO)
      await refusal(me.imports.conversation.mutate({ externalKey, messages: [] }), {
        code: "CONFLICT",
        tag: "InvalidTransition",
      })
      await refusal(
        me.imports.conversation.mutate({
          messages: [
            { role: "user", content: "fine" },
            { role: "user", content: "x".repeat(SMALL_LIMITS.maxMessageBytes + 1) },
          ],
        }),
        {
          code: "PAYLOAD_TOO_LARGE",
          message: `messages[1].content (message content) is ${SMALL_LIMITS.maxMessageBytes + 1} bytes, over the limit of ${SMALL_LIMITS.maxMessageBytes} bytes`,
        },
      )
      await refusal(
        me.imports.conversation.mutate({
          messages: [{ role: "user", content: "x", createdAt: "yesterday" }],
        }),
        { code: "BAD_REQUEST", message: /^messages\[0\]\.createdAt: must be an ISO-8601 timestamp/ },
      )
    })
  })

  describe("analytics and projections", () => {
    it("summarises a user's sessions, activity, drafts and jobs, and only theirs", async () => {
      const { id, client } = await freshUser()
      const s = await client.sessions.create.mutate({ title: "measured" })
      await client.messages.appendMany.mutate({
        sessionId: s.id,
        messages: [
          { role: "user", content: "q" },
          { role: "assistant", content: "a" },
        ],
      })
      await client.revisions.add.mutate({ sessionId: s.id, ir: {} })
      await client.drafts.add.mutate({ sessionId: s.id, code: "ok", language: "ts", valid: true })
      await client.drafts.add.mutate({ sessionId: s.id, code: "bad", language: "ts", valid: false })
      await client.holes.resolve.mutate({ sessionId: s.id, holeId: "h", value: 1, confidence: 0.6 })
      await client.holes.resolve.mutate({ sessionId: s.id, holeId: "k", value: 2, confidence: 0.8 })
      await client.toolRuns.record.mutate({ sessionId: s.id, tool: "t", input: {}, status: "succeeded" })
      const done = await client.jobs.create.mutate({ type: "build", sessionId: s.id })
      await client.jobs.start.mutate({ id: done.id })
      await client.jobs.complete.mutate({ id: done.id })
      const broken = await client.jobs.create.mutate({ type: "build" })
      await client.jobs.fail.mutate({ id: broken.id, error: "boom" })

      const summary = await client.analytics.sessionSummary.query({ sessionId: s.id })
      expect(summary.nextCursor).toBeNull()
      expect(summary.items).toHaveLength(1)
      expect(summary.items[0]).toMatchObject({
        sessionId: s.id,
        ownerId: id,
        title: "measured",
        status: "active",
        parentId: null,
        counts: { messages: 2, revisions: 1, drafts: 2, holes: 2, files: 0, toolRuns: 1, jobs: 1 },
        validDrafts: 1,
        invalidDrafts: 1,
        draftSuccessRate: 0.5,
        createdAt: iso,
        lastActivityAt: iso,
      })
      expect(summary.items[0]!.avgHoleConfidence).toBeCloseTo(0.7)
      expect(summary.items[0]!.lastMessage).toEqual({ role: "assistant", preview: "a", at: iso })
      expect((await client.analytics.sessionSummary.query()).items.map((x) => x.sessionId)).toEqual([s.id])

      expect(await client.analytics.users.query()).toEqual({
        items: [
          {
            ownerId: id,
            sessions: 1,
            activeSessions: 1,
            archivedSessions: 0,
            messages: 2,
            revisions: 1,
            drafts: 2,
            holes: 2,
            toolRuns: 1,
            jobs: 2,
            completedJobs: 1,
            failedJobs: 1,
            lastActivityAt: iso,
            validDrafts: 1,
            draftValidityRate: 0.5,
            jobsByState: { queued: 0, running: 0, paused: 0, completed: 1, failed: 1, cancelled: 0 },
          },
        ],
        nextCursor: null,
      })
      const other = await freshUser()
      await other.client.sessions.create.mutate({})
      expect((await other.client.analytics.users.query()).items.map((u) => u.ownerId)).toEqual([other.id])
      const everyone = await allPages((cursor) =>
        c.asService.analytics.users.query({ limit: 2, ...(cursor ? { cursor } : {}) }),
      )
      noDuplicates(everyone.items.map((u) => u.ownerId))
      expect(everyone.items.map((u) => u.ownerId)).toEqual(expect.arrayContaining([id, other.id]))

      const activity = await allPages((cursor) =>
        client.analytics.recentActivity.query({ sessionId: s.id, limit: 2, ...(cursor ? { cursor } : {}) }),
      )
      noDuplicates(activity.items.map((a) => a.entityId))
      expect(activity.items.map((a) => a.kind).sort()).toEqual(
        ["draft", "draft", "job", "message", "message", "revision", "tool_run"].sort(),
      )
      expect(activity.items.every((a) => a.sessionId === s.id && ISO.test(a.at))).toBe(true)
      const times = activity.items.map((a) => a.at)
      expect(times).toEqual([...times].sort().reverse())

      expect(await client.analytics.draftValidation.query()).toEqual([
        { language: "ts", drafts: 2, validDrafts: 1, invalidDrafts: 1, successRate: 0.5, lastDraftAt: iso },
      ])
      expect(await client.analytics.jobStats.query()).toEqual([
        {
          jobType: "build",
          jobs: 2,
          byState: { queued: 0, running: 0, paused: 0, completed: 1, failed: 1, cancelled: 0 },
          avgProcessingSeconds: expect.any(Number),
          p95ProcessingSeconds: expect.any(Number),
          lastJobAt: iso,
        },
      ])
      // Activity per day comes from the async projection: the daemon catches up within moments, but
      // in batches — wait for the whole day, not for its first events.
      const today = new Date().toISOString().slice(0, 10)
      await vi.waitFor(
        async () =>
          expect(await client.analytics.daily.query({ from: today, to: today })).toEqual([
            {
              day: today,
              sessionsStarted: 1,
              messages: 2,
              revisions: 1,
              drafts: 2,
              validDrafts: 1,
              toolRuns: 1,
              jobsCreated: 2,
              jobsCompleted: 1,
              jobsFailed: 1,
            },
          ]),
        { timeout: 30_000, interval: 50 },
      )
      expect(await client.analytics.draftValidationByDay.query({ from: today, to: today })).toEqual([
        { day: today, language: "ts", drafts: 2, validDrafts: 1, successRate: 0.5 },
      ])
      expect((await client.analytics.daily.query()).length).toBe(30)
      await refusal(client.analytics.daily.query({ from: "2026-02-30" }), {
        code: "BAD_REQUEST",
        message: "from: must be a date as YYYY-MM-DD",
      })
      await refusal(client.analytics.daily.query({ from: "2020-01-01", to: "2026-01-01" }), {
        code: "BAD_REQUEST",
        message: "from: the range may cover at most 366 days",
      })
    })

    it("pages the activity feed across a fork, whose copies share ids and times with the parent's", async () => {
      const { client } = await freshUser()
      const s = await client.sessions.create.mutate({ title: "parent" })
      await client.messages.appendMany.mutate({
        sessionId: s.id,
        messages: [
          { role: "user", content: "q" },
          { role: "assistant", content: "a" },
        ],
      })
      await client.toolRuns.record.mutate({ sessionId: s.id, tool: "t", input: {}, status: "succeeded" })
      await client.sessions.fork.mutate({ id: s.id, atVersion: 4 })
      const whole = await client.analytics.recentActivity.query({ limit: 500 })
      expect(whole.items).toHaveLength(6)
      const paged = await allPages((cursor) =>
        client.analytics.recentActivity.query({ limit: 1, ...(cursor ? { cursor } : {}) }),
      )
      expect(paged.items).toEqual(whole.items)
      noDuplicates(paged.items.map((a) => `${a.entityId}/${a.sessionId}`))
    })

    it("reports the read models' status and rebuilds them for the service role only, changing no read", async () => {
      const s = await me.sessions.create.mutate({ title: "kept" })
      await me.messages.append.mutate({ sessionId: s.id, role: "user", content: "x" })
      await me.messages.append.mutate({ sessionId: s.id, role: "user", content: "y" })
      await me.sessions.rollback.mutate({ id: s.id, toVersion: 2 })
      const before = await me.sessions.get.query({ id: s.id })

      const status = await c.asService.projections.status.query()
      expect(status.head.cursor).toMatch(/^\d+$/)
      const sessions = status.projections.find((p) => p.name === "sessions")
      expect(sessions).toMatchObject({
        mode: "inline",
        state: "live",
        lagEvents: 0,
        cursor: status.head.cursor,
      })
      expect(sessions?.tables.find((x) => x.name === "sessions")?.rows).toBeGreaterThan(0)
      await refusal(me.projections.status.query(), {
        code: "FORBIDDEN",
        tag: "Forbidden",
        message: "Only the service role may read the projections' status: it covers every owner's data",
      })
      await refusal(me.projections.rebuild.mutate(), {
        code: "FORBIDDEN",
        tag: "Forbidden",
        message: "Only the service role may rebuild the read models: it covers every owner's data",
      })
      const { runId } = await c.asService.projections.rebuild.mutate()
      const run = await runEnded(c.asService, runId)
      expect(run).toMatchObject({ state: "completed", kind: "rebuild" })
      expect(run.eventsDone).toBeGreaterThanOrEqual(4)
      expect(await me.sessions.get.query({ id: s.id })).toEqual(before)
      expect((await me.messages.list.query({ sessionId: s.id })).items.map((m) => m.content)).toEqual(["x"])
    })
  })

  describe("errors and limits", () => {
    it("answers malformed input with BAD_REQUEST naming each offending field", async () => {
      const s = await me.sessions.create.mutate({})
      const badId = await refusal(me.sessions.get.query({ id: "not-a-uuid" }), {
        code: "BAD_REQUEST",
        tag: "InvalidInput",
        message: "id: must be a UUID (8-4-4-4-12 hexadecimal digits)",
      })
      expect(badId.data?.fields).toEqual({
        issues: [{ path: "id", message: "must be a UUID (8-4-4-4-12 hexadecimal digits)" }],
      })
      await refusal(me.messages.append.mutate({ sessionId: s.id, role: "robot" as "user", content: "x" }), {
        code: "BAD_REQUEST",
        message: /^role: /,
      })
      await refusal(me.sessions.create.mutate({ title: "t".repeat(501) }), {
        code: "BAD_REQUEST",
        message: /^title: /,
      })
      await refusal(
        me.messages.appendMany.mutate({
          sessionId: s.id,
          messages: [
            { role: "user", content: "fine" },
            { role: "user", content: 7 as unknown as string },
          ],
        }),
        { code: "BAD_REQUEST", message: "messages[1].content: Expected string" },
      )
      await refusal(me.sessions.list.query({ parentId: "P" }), {
        code: "BAD_REQUEST",
        message: /^parentId: /,
      })
      await refusal(
        me.messages.append.mutate({ sessionId: s.id, role: "user", content: "x", idempotencyKey: "" }),
        {
          code: "BAD_REQUEST",
          message: /^idempotencyKey: /,
        },
      )
    })

    it("refuses a cursor it did not hand out, on every list, with BAD_REQUEST", async () => {
      const s = await me.sessions.create.mutate({})
      const job = await me.jobs.create.mutate({ type: "x", sessionId: s.id })
      const lists: ReadonlyArray<[string, (cursor: string) => Promise<unknown>]> = [
        ["sessions.list", (cursor) => me.sessions.list.query({ cursor })],
        ["sessions.timeline", (cursor) => me.sessions.timeline.query({ id: s.id, cursor })],
        ["messages.list", (cursor) => me.messages.list.query({ sessionId: s.id, cursor })],
        ["revisions.list", (cursor) => me.revisions.list.query({ sessionId: s.id, cursor })],
        ["drafts.list", (cursor) => me.drafts.list.query({ sessionId: s.id, cursor })],
        ["holes.list", (cursor) => me.holes.list.query({ sessionId: s.id, cursor })],
        ["toolRuns.list", (cursor) => me.toolRuns.list.query({ sessionId: s.id, cursor })],
        ["files.list", (cursor) => me.files.list.query({ cursor })],
        ["files.listAttached", (cursor) => me.files.listAttached.query({ sessionId: s.id, cursor })],
        ["checkpoints.list", (cursor) => me.checkpoints.list.query({ sessionId: s.id, cursor })],
        ["jobs.list", (cursor) => me.jobs.list.query({ cursor })],
        ["jobs.listTasks", (cursor) => me.jobs.listTasks.query({ id: job.id, cursor })],
        ["artifacts.list", (cursor) => me.artifacts.list.query({ jobId: job.id, cursor })],
        ["sandboxes.list", (cursor) => me.sandboxes.list.query({ sessionId: s.id, cursor })],
        ["analytics.sessionSummary", (cursor) => me.analytics.sessionSummary.query({ cursor })],
        ["analytics.users", (cursor) => me.analytics.users.query({ cursor })],
        ["analytics.recentActivity", (cursor) => me.analytics.recentActivity.query({ cursor })],
      ]
      const tampered = [
        "garbage",
        cursorOf(["not-a-time", "not-a-uuid"]),
        cursorOf(["2026-13-45T00:00:00Z", randomUUID()]),
        cursorOf([1.5]),
        cursorOf([1e20]),
        cursorOf([-1]),
        cursorOf([1, "not-a-uuid"]),
        cursorOf(["not-a-uuid"]),
      ]
      for (const [name, list] of lists) {
        for (const cursor of tampered) {
          const error = await refusal(list(cursor), { code: "BAD_REQUEST", tag: "InvalidCommand" })
          expect(error.message, `${name} with cursor ${cursor}`).toBe(
            "cursor: is not a cursor this list handed out",
          )
        }
      }
    })

    it("refuses message content over the limit, counting UTF-8 bytes, in every procedure that carries it", async () => {
      const limit = SMALL_LIMITS.maxMessageBytes
      const s = await me.sessions.create.mutate({})
      expect(
        (await me.messages.append.mutate({ sessionId: s.id, role: "user", content: "x".repeat(limit) }))
          .content,
      ).toHaveLength(limit)
      const over = await refusal(
        me.messages.append.mutate({ sessionId: s.id, role: "user", content: "x".repeat(limit + 1) }),
        {
          code: "PAYLOAD_TOO_LARGE",
          tag: "PayloadTooLarge",
          message: `content (message content) is ${limit + 1} bytes, over the limit of ${limit} bytes`,
        },
      )
      expect(over.data?.fields).toEqual({ what: "content (message content)", size: limit + 1, limit })
      // Fewer characters than the limit, more bytes.
      await refusal(
        me.messages.append.mutate({ sessionId: s.id, role: "user", content: "é".repeat(limit / 2 + 1) }),
        {
          code: "PAYLOAD_TOO_LARGE",
          message: `content (message content) is ${limit + 2} bytes, over the limit of ${limit} bytes`,
        },
      )
      await refusal(
        me.messages.appendMany.mutate({
          sessionId: s.id,
          messages: [
            { role: "user", content: "short" },
            { role: "user", content: "y".repeat(limit + 5) },
          ],
        }),
        {
          code: "PAYLOAD_TOO_LARGE",
          message: `messages[1].content (message content) is ${limit + 5} bytes, over the limit of ${limit} bytes`,
        },
      )
      await refusal(
        me.drafts.add.mutate({ sessionId: s.id, code: "z".repeat(limit + 1), language: "ts", valid: true }),
        {
          code: "PAYLOAD_TOO_LARGE",
          message: /^code \(message content\) is \d+ bytes, over the limit of 2048 bytes$/,
        },
      )
      // Nothing of the refused requests was recorded.
      expect(await me.sessions.get.query({ id: s.id })).toMatchObject({
        version: 2,
        counts: { messages: 1, drafts: 0 },
      })
    })

    it("refuses a request body over the limit with PAYLOAD_TOO_LARGE naming the limit, through the client", async () => {
      const s = await me.sessions.create.mutate({})
      const content = "x".repeat(SMALL_LIMITS.maxBodyBytes + 10)
      const error = await refusal(me.messages.append.mutate({ sessionId: s.id, role: "user", content }), {
        code: "PAYLOAD_TOO_LARGE",
        tag: "PayloadTooLarge",
        message: /^The request body is \d+ bytes, over the limit of 262144 bytes$/,
      })
      expect(error.data?.fields).toMatchObject({ what: "The request body", limit: SMALL_LIMITS.maxBodyBytes })
      expect((await me.sessions.get.query({ id: s.id })).version).toBe(1)
    })
  })
})
