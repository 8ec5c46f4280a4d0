import { Database } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { serviceActor } from "../src/actor.ts"
import { Content } from "../src/content.ts"
import { Sessions } from "../src/sessions.ts"
import { domainRuntimeFor, env, failureOf, newUser } from "./support.ts"

describe.each(testDatabases(env))("sessions on $name", (database) => {
  const domain = domainRuntimeFor(database)
  const { run, sessions, content } = domain

  it("creates a session and reads it back with zero counts", async () => {
    const alice = newUser()
    const created = await sessions((s) =>
      s.create(alice, { title: "Plan a trip", metadata: { model: "m1" } }),
    )
    expect(created).toMatchObject({
      title: "Plan a trip",
      status: "active",
      metadata: { model: "m1" },
      version: 1,
      ownerId: alice.kind === "user" ? alice.userId : "",
      parentId: null,
      counts: { messages: 0, revisions: 0, drafts: 0, holes: 0, files: 0, toolRuns: 0 },
    })
    expect(await sessions((s) => s.get(alice, created.id))).toEqual(created)
  })

  it("hides one owner's session from another and lets the service role see it", async () => {
    const alice = newUser()
    const bob = newUser()
    const created = await sessions((s) => s.create(alice, {}))
    expect(
      (
        await failureOf(
          domain.runtime,
          Effect.flatMap(Sessions, (s) => s.get(bob, created.id)),
        )
      )._tag,
    ).toBe("NotFound")
    expect((await sessions((s) => s.get(serviceActor(), created.id))).id).toBe(created.id)
    const bobs = await sessions((s) => s.list(bob, {}))
    expect(bobs.items.map((x) => x.id)).not.toContain(created.id)
    // The service role must say whom it creates for.
    expect(
      (
        await failureOf(
          domain.runtime,
          Effect.flatMap(Sessions, (s) => s.create(serviceActor(), {})),
        )
      )._tag,
    ).toBe("Forbidden")
  })

  it("records the actor the same way on every command: a user, the service role, the service acting for an owner", async () => {
    const alice = newUser()
    const aliceId = alice.kind === "user" ? alice.userId : ""
    const forAlice = serviceActor(aliceId)
    const made = await sessions((s) => s.create(forAlice, { title: "for alice" }))
    await content((c) => c.appendMessages(forAlice, made.id, [{ role: "user", content: "hi" }]))
    await content((c) => c.appendMessages(alice, made.id, [{ role: "user", content: "me" }]))
    await sessions((s) => s.update(serviceActor(), made.id, { title: "renamed" }))
    const actors = await run(
      Effect.flatMap(Database, (db) =>
        db.query<{ type: string; actor: string }>(
          `select type, metadata ->> 'actor' as actor from chronicle.events
            where stream_id = $1 order by stream_version`,
          [`session-${made.id}`],
        ),
      ),
    )
    expect(actors).toEqual([
      { type: "SessionStarted", actor: `service:${aliceId}` },
      { type: "MessageAppended", actor: `service:${aliceId}` },
      { type: "MessageAppended", actor: `user:${aliceId}` },
      { type: "SessionUpdated", actor: "service" },
    ])
  })

  it("appends messages with seq 1..n, pages through them to the end, and keeps counters exact", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, {}))
    const first = await content((c) =>
      c.appendMessages(alice, id, [
        { role: "user", content: "hello" },
        { role: "assistant", content: "hi", metadata: { tokens: 3 } },
      ]),
    )
    expect(first.map((m) => [m.seq, m.role, m.content, m.version])).toEqual([
      [1, "user", "hello", 2],
      [2, "assistant", "hi", 3],
    ])
    for (let i = 0; i < 5; i++)
      await content((c) => c.appendMessages(alice, id, [{ role: "user", content: `m${i}` }]))
    const seen: Array<number> = []
    let cursor: string | null = null
    for (let pages = 0; pages < 10; pages++) {
      const page: Awaited<ReturnType<typeof listPage>> = await listPage(cursor)
      seen.push(...page.items.map((m) => m.seq))
      cursor = page.nextCursor
      if (cursor === null) break
    }
    function listPage(after: string | null) {
      return content((c) => c.listMessages(alice, id, { limit: 3, cursor: after }))
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect((await sessions((s) => s.get(alice, id))).counts.messages).toBe(7)
  })

  it("makes a retried append with the same idempotency key a no-op returning the original messages", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, {}))
    const original = await content((c) =>
      c.appendMessages(alice, id, [{ role: "user", content: "once" }], { idempotencyKey: "req-1" }),
    )
    await content((c) => c.appendMessages(alice, id, [{ role: "user", content: "other" }]))
    const retry = await content((c) =>
      c.appendMessages(alice, id, [{ role: "user", content: "once" }], { idempotencyKey: "req-1" }),
    )
    expect(retry).toEqual(original)
    expect((await sessions((s) => s.get(alice, id))).counts.messages).toBe(2)
  })

  it("re-decides concurrent appends so each gets its own seq; a pinned stale version conflicts", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, {}))
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        content((c) => c.appendMessages(alice, id, [{ role: "user", content: `c${i}` }])),
      ),
    )
    const list = await content((c) => c.listMessages(alice, id, {}))
    expect(list.items.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6])
    const conflict = await failureOf(
      domain.runtime,
      Effect.flatMap(Content, (c) =>
        c.appendMessages(alice, id, [{ role: "user", content: "late" }], { expectedVersion: 2 }),
      ),
    )
    expect(conflict).toMatchObject({ _tag: "VersionConflict", expected: 2, actual: 7 })
  })

  it("updates, archives (then refuses appends) and soft-deletes", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, { title: "a" }))
    const updated = await sessions((s) => s.update(alice, id, { title: "b", metadata: { x: 1 } }))
    expect(updated).toMatchObject({ title: "b", metadata: { x: 1 }, version: 2 })
    const archived = await sessions((s) => s.archive(alice, id, "done"))
    expect(archived.status).toBe("archived")
    const refused = await failureOf(
      domain.runtime,
      Effect.flatMap(Content, (c) => c.appendMessages(alice, id, [{ role: "user", content: "x" }])),
    )
    expect(refused._tag).toBe("InvalidTransition")
    expect(refused.message).toMatch(/archived/)
    const deleted = await sessions((s) => s.delete(alice, id, null))
    expect(deleted.status).toBe("deleted")
    expect((await sessions((s) => s.list(alice, {}))).items.map((x) => x.id)).not.toContain(id)
    expect((await sessions((s) => s.list(alice, { status: "deleted" }))).items.map((x) => x.id)).toEqual([id])
  })

  it("reads as of a checkpoint, rolls back (nested) and marks reverted events in the timeline", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, { title: "t0" }))
    const say = (text: string) =>
      content((c) => c.appendMessages(alice, id, [{ role: "user", content: text }]))
    const texts = async (asOf?: { checkpointId: string } | { version: number }) =>
      (await content((c) => c.listMessages(alice, id, asOf ? { asOf } : {}))).items.map((m) => m.content)

    await say("a") // v2
    const c1 = await sessions((s) => s.createCheckpoint(alice, id, "after a")) // v3, marks v2
    expect(c1.version).toBe(2)
    await say("b") // v4
    await sessions((s) => s.update(alice, id, { title: "t1" })) // v5
    const c2 = await sessions((s) => s.createCheckpoint(alice, id, "after b")) // v6, marks v5
    const atC2 = await sessions((s) => s.get(alice, id, { checkpointId: c2.id }))
    await say("c") // v7

    expect(await texts({ checkpointId: c1.id })).toEqual(["a"])
    expect(await texts({ checkpointId: c2.id })).toEqual(["a", "b"])

    const rolled = await sessions((s) => s.rollback(alice, id, { checkpointId: c1.id })) // v8 -> E = [1,2] + [8]
    expect(rolled).toMatchObject({ title: "t0", counts: { messages: 1 }, version: 8 })
    expect(await texts()).toEqual(["a"])
    await say("d") // v9, seq 2 again
    expect(
      (await content((c) => c.listMessages(alice, id, {}))).items.map((m) => [m.seq, m.content]),
    ).toEqual([
      [1, "a"],
      [2, "d"],
    ])

    // Back to c2, a point on the branch abandoned above: exactly what was read at c2.
    const nested = await sessions((s) => s.rollback(alice, id, { checkpointId: c2.id }))
    expect(nested.title).toBe(atC2.title)
    expect(nested.counts).toEqual(atC2.counts)
    expect(await texts()).toEqual(["a", "b"])
    expect(await texts({ checkpointId: c2.id })).toEqual(["a", "b"])

    const timeline = await sessions((s) => s.timeline(alice, id, { limit: 500 }))
    const reverted = timeline.items.filter((e) => e.reverted).map((e) => [e.version, e.type])
    expect(reverted).toEqual([
      [7, "MessageAppended"],
      [9, "MessageAppended"],
    ])
    // Checkpoints and rollbacks are never reverted.
    expect(timeline.items.filter((e) => e.type === "CheckpointCreated").every((e) => !e.reverted)).toBe(true)
  })

  it("refuses a rollback outside the session's history with a clear message", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, {}))
    const error = await failureOf(
      domain.runtime,
      Effect.flatMap(Sessions, (s) => s.rollback(alice, id, { toVersion: 5 })),
    )
    expect(error._tag).toBe("InvalidCommand")
    expect(error.message).toMatch(/toVersion/)
  })

  it("forks at a checkpoint: the child starts with the parent's content as of then", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, { title: "parent" }))
    await content((c) =>
      c.appendMessages(alice, id, [
        { role: "user", content: "p1" },
        { role: "assistant", content: "p2" },
      ]),
    )
    await content((c) => c.addRevision(alice, id, { ir: { step: 1 }, note: "first" }))
    const cp = await sessions((s) => s.createCheckpoint(alice, id, null))
    await content((c) => c.appendMessages(alice, id, [{ role: "user", content: "p3" }]))

    const child = await sessions((s) => s.fork(alice, id, { checkpointId: cp.id }, { title: "child" }))
    expect(child).toMatchObject({ parentId: id, parentVersion: cp.version, title: "child", version: 1 })
    const parentAsOf = await sessions((s) => s.get(alice, id, { checkpointId: cp.id }))
    expect(child.counts).toEqual(parentAsOf.counts)
    const childMessages = await content((c) => c.listMessages(alice, child.id, {}))
    expect(childMessages.items.map((m) => [m.seq, m.content])).toEqual([
      [1, "p1"],
      [2, "p2"],
    ])
    await content((c) => c.appendMessages(alice, child.id, [{ role: "user", content: "c3" }]))
    expect((await content((c) => c.listMessages(alice, id, {}))).items.map((m) => m.content)).toEqual([
      "p1",
      "p2",
      "p3",
    ])
    expect((await sessions((s) => s.list(alice, { parentId: id }))).items.map((x) => x.id)).toEqual([
      child.id,
    ])
  })

  it("refuses to resolve a hole with a lower confidence than its current resolution", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, {}))
    await content((c) => c.resolveHole(alice, id, { holeId: "h1", value: 1, confidence: 0.8 }))
    const lower = await failureOf(
      domain.runtime,
      Effect.flatMap(Content, (c) => c.resolveHole(alice, id, { holeId: "h1", value: 2, confidence: 0.5 })),
    )
    expect(lower._tag).toBe("InvalidTransition")
    const higher = await content((c) => c.resolveHole(alice, id, { holeId: "h1", value: 3, confidence: 0.9 }))
    expect(higher).toMatchObject({ holeId: "h1", value: 3, confidence: 0.9 })
    expect(
      (await content((c) => c.listHoles(alice, id, { holeId: "h1" }))).items.map((h) => h.value),
    ).toEqual([1, 3])
  })

  it("records drafts against an existing revision only, and tool runs that a rollback never reverts", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, {}))
    const missing = await failureOf(
      domain.runtime,
      Effect.flatMap(Content, (c) =>
        c.recordDraft(alice, id, { code: "x", language: "ts", valid: true, revisionNumber: 1 }),
      ),
    )
    expect(missing._tag).toBe("InvalidTransition")
    expect(missing.message).toMatch(/revision/)
    await content((c) => c.addRevision(alice, id, { ir: { a: 1 } }))
    const draft = await content((c) =>
      c.recordDraft(alice, id, {
        code: "let x = 1",
        language: "ts",
        valid: true,
        metrics: { tests: 3 },
        revisionNumber: 1,
      }),
    )
    expect(draft).toMatchObject({ revisionNumber: 1, valid: true, metrics: { tests: 3 } })
    const run = await content((c) =>
      c.recordToolRun(alice, id, {
        tool: "search",
        input: { q: "x" },
        output: { hits: 2 },
        status: "succeeded",
        durationMs: 12,
      }),
    )
    await sessions((s) => s.rollback(alice, id, { toVersion: 1 }))
    const after = await sessions((s) => s.get(alice, id))
    expect(after.counts).toMatchObject({ revisions: 0, drafts: 0, toolRuns: 1 })
    expect((await content((c) => c.listToolRuns(alice, id, {}))).items.map((t) => t.id)).toEqual([run.id])
  })

  it("ensures a session by external key atomically, once per owner", async () => {
    const alice = newUser()
    const bob = newUser()
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        sessions((s) => s.ensure(alice, { externalKey: "thread-42", title: "T" })),
      ),
    )
    expect(results.filter((r) => r.created)).toHaveLength(1)
    expect(new Set(results.map((r) => r.session.id)).size).toBe(1)
    expect((await sessions((s) => s.getByKey(alice, "thread-42"))).id).toBe(results[0]!.session.id)
    const bobs = await sessions((s) => s.ensure(bob, { externalKey: "thread-42" }))
    expect(bobs.created).toBe(true)
    expect(bobs.session.id).not.toBe(results[0]!.session.id)
    const dup = await failureOf(
      domain.runtime,
      Effect.flatMap(Sessions, (s) => s.create(alice, { externalKey: "thread-42" })),
    )
    expect(dup._tag).toBe("InvalidTransition")
    expect(
      (
        await failureOf(
          domain.runtime,
          Effect.flatMap(Sessions, (s) => s.getByKey(alice, "nope")),
        )
      )._tag,
    ).toBe("NotFound")
  })

  it("imports a legacy conversation in one append and exports the session as its events", async () => {
    const alice = newUser()
    const imported = await sessions((s) =>
      s.importConversation(alice, {
        title: "legacy",
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "hi", createdAt: "2025-10-13T17:55:00Z", metadata: { from: "memory" } },
          { role: "assistant", content: "hello" },
        ],
      }),
    )
    expect(imported).toMatchObject({ title: "legacy", version: 4, counts: { messages: 3 } })
    const messages = await content((c) => c.listMessages(alice, imported.id, {}))
    expect(messages.items[1]).toMatchObject({
      content: "hi",
      createdAt: "2025-10-13T17:55:00.000Z",
      metadata: { from: "memory" },
    })
    const exported = await sessions((s) => s.export(alice, imported.id, {}))
    expect(exported.format).toBe("chronicle.session.v1")
    expect(exported.events.map((e) => e.type)).toEqual([
      "SessionStarted",
      "MessageAppended",
      "MessageAppended",
      "MessageAppended",
    ])
  })

  it("keeps every session's counters equal to the counts of its effective rows", async () => {
    const alice = newUser()
    const { id } = await sessions((s) => s.create(alice, {}))
    await content((c) =>
      c.appendMessages(alice, id, [
        { role: "user", content: "1" },
        { role: "user", content: "2" },
      ]),
    )
    const cp = await sessions((s) => s.createCheckpoint(alice, id, null))
    await content((c) => c.addRevision(alice, id, { ir: null }))
    await content((c) => c.resolveHole(alice, id, { holeId: "h", value: true, confidence: 1 }))
    await sessions((s) => s.rollback(alice, id, { checkpointId: cp.id }))
    await content((c) => c.appendMessages(alice, id, [{ role: "user", content: "3" }]))
    const rows = await run(
      Effect.flatMap(Database, (db) =>
        db.query<Record<string, number>>(
          `select s.message_count, s.revision_count, s.hole_count,
                  (select count(*)::int from chronicle.messages m where m.session_id = s.id and s.effective @> m.version) as messages,
                  (select count(*)::int from chronicle.revisions r where r.session_id = s.id and s.effective @> r.version) as revisions,
                  (select count(*)::int from chronicle.hole_resolutions h where h.session_id = s.id and s.effective @> h.version) as holes
             from chronicle.sessions s where s.id = $1::uuid`,
          [id],
        ),
      ),
    )
    expect(rows[0]).toEqual({
      message_count: 3,
      revision_count: 0,
      hole_count: 0,
      messages: 3,
      revisions: 0,
      holes: 0,
    })
  })

  it("rejects a session id that is not a UUID as not found", async () => {
    const error = await failureOf(
      domain.runtime,
      Effect.flatMap(Sessions, (s) => s.get(newUser(), "nope")),
    )
    expect(error).toMatchObject({ _tag: "NotFound", entity: "session", id: "nope" })
  })
})
