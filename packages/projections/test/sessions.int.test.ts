import { randomUUID } from "node:crypto"
import { toStored } from "@chronicle/events"
import { Database, EventStore } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { countRows, currentState, env, ev, harnessFor, type SessionState, sessionStream } from "./support.ts"

describe.each(testDatabases(env))("session projections on $name", (database) => {
  const h = harnessFor(database)

  const newSession = async (options: Parameters<typeof ev.started>[2] = {}) => {
    const id = randomUUID()
    const owner = randomUUID()
    const result = await h.append(sessionStream(id), [ev.started(id, owner, options)], {
      expectedVersion: "no_stream",
      ownerId: owner,
    })
    return { id, owner, stream: sessionStream(id), result }
  }

  /** Whether `column` of the row equals the recorded_at of the session's event at `version`. */
  const stampedAt = (table: string, column: string, where: string, params: ReadonlyArray<unknown>) =>
    h
      .one<{ ok: boolean }>(
        `select bool_and(t.${column} = e.recorded_at) as ok
           from chronicle.${table} t
           join chronicle.events e on e.stream_id = 'session-' || t.session_id and e.stream_version = t.version
          where ${where}`,
        params,
      )
      .then((r) => r.ok)

  it("SessionStarted creates the session at version 1 with no content and records its title and metadata", async () => {
    const { id, owner, result } = await newSession({
      title: "Plan the trip",
      metadata: { topic: "travel" },
      externalKey: "thread-1",
    })
    const row = await h.one(
      `select s.owner_id::text, s.title, s.metadata, s.status, s.version, s.parent_id, s.parent_version,
              s.external_key, s.effective::text, s.message_count, s.revision_count, s.draft_count,
              s.hole_count, s.file_count, s.tool_run_count, s.head_cursor,
              s.created_at = e.recorded_at and s.updated_at = e.recorded_at
                and s.last_activity_at = e.recorded_at as stamped,
              s.archived_at, s.deleted_at, s.expired_at
         from chronicle.sessions s join chronicle.events e on e.stream_id = 'session-' || s.id
        where s.id = $1::uuid`,
      [id],
    )
    expect(row).toEqual({
      owner_id: owner,
      title: "Plan the trip",
      metadata: { topic: "travel" },
      status: "active",
      version: 1,
      parent_id: null,
      parent_version: null,
      external_key: "thread-1",
      effective: "{[1,2)}",
      message_count: 0,
      revision_count: 0,
      draft_count: 0,
      hole_count: 0,
      file_count: 0,
      tool_run_count: 0,
      head_cursor: String(result.events[0]!.globalPosition),
      stamped: true,
      archived_at: null,
      deleted_at: null,
      expired_at: null,
    })
    expect(
      await h.query(
        "select version, title_set, title, metadata_set, metadata from chronicle.session_updates where session_id = $1::uuid",
        [id],
      ),
    ).toEqual([
      {
        version: 1,
        title_set: true,
        title: "Plan the trip",
        metadata_set: true,
        metadata: { topic: "travel" },
      },
    ])
  })

  it("SessionUpdated changes only the keys it carries, a null title clears it, and each update is recorded", async () => {
    const { id, stream } = await newSession({ title: "A", metadata: { a: 1 } })
    const read = () =>
      h.one<{ title: string | null; metadata: unknown; version: number }>(
        "select title, metadata, version from chronicle.sessions where id = $1::uuid",
        [id],
      )
    await h.append(stream, [ev.updated({ title: "B" })])
    expect(await read()).toEqual({ title: "B", metadata: { a: 1 }, version: 2 })
    await h.append(stream, [ev.updated({ metadata: { b: 2 } })])
    expect(await read()).toEqual({ title: "B", metadata: { b: 2 }, version: 3 })
    await h.append(stream, [ev.updated({ title: null })])
    expect(await read()).toEqual({ title: null, metadata: { b: 2 }, version: 4 })
    await h.append(stream, [ev.updated({ title: "C", metadata: {} })])
    expect(await read()).toEqual({ title: "C", metadata: {}, version: 5 })
    expect(
      await h.query(
        `select version, title_set, title, metadata_set, metadata from chronicle.session_updates
          where session_id = $1::uuid order by version`,
        [id],
      ),
    ).toEqual([
      { version: 1, title_set: true, title: "A", metadata_set: true, metadata: { a: 1 } },
      { version: 2, title_set: true, title: "B", metadata_set: false, metadata: null },
      { version: 3, title_set: false, title: null, metadata_set: true, metadata: { b: 2 } },
      { version: 4, title_set: true, title: null, metadata_set: false, metadata: null },
      { version: 5, title_set: true, title: "C", metadata_set: true, metadata: {} },
    ])
  })

  it("MessageAppended inserts the message at its stream version and counts it; created_at is the event's or the recording time", async () => {
    const { id, stream } = await newSession()
    const first = ev.message(1, "hello", { role: "user", metadata: { lang: "en" } })
    const imported = ev.message(2, "hi there", { role: "assistant", createdAt: "2024-02-03T04:05:06.789Z" })
    await h.append(stream, [first])
    await h.append(stream, [imported])
    const rows = await h.query(
      `select message_id::text, version, seq, role, content, metadata, created_at
         from chronicle.messages where session_id = $1::uuid order by seq`,
      [id],
    )
    expect(rows.map(({ created_at: _, ...r }) => r)).toEqual([
      {
        message_id: first.messageId,
        version: 2,
        seq: 1,
        role: "user",
        content: "hello",
        metadata: { lang: "en" },
      },
      {
        message_id: imported.messageId,
        version: 3,
        seq: 2,
        role: "assistant",
        content: "hi there",
        metadata: {},
      },
    ])
    expect((rows[1]!.created_at as Date).toISOString()).toBe("2024-02-03T04:05:06.789Z")
    expect(await stampedAt("messages", "created_at", "t.session_id = $1::uuid and t.seq = 1", [id])).toBe(
      true,
    )
    const state = await currentState(h, id)
    expect(state.counts.messages).toBe(2)
    expect(state.version).toBe(3)
  })

  it("RevisionAdded, DraftRecorded and HoleResolved insert their rows and bump their counters", async () => {
    const { id, stream } = await newSession()
    const revision = ev.revision(1, { ir: { kind: "module", body: [] }, note: "first cut" })
    const draft = ev.draft({
      code: "f()",
      language: "python",
      valid: false,
      metrics: { passed: 1 },
      revisionNumber: 1,
    })
    const hole = ev.hole("h1", 0.75, { value: [1, 2, 3] })
    await h.append(stream, [revision, draft, hole])
    expect(
      await h.query("select version, number, ir, note from chronicle.revisions where session_id = $1::uuid", [
        id,
      ]),
    ).toEqual([{ version: 2, number: 1, ir: { kind: "module", body: [] }, note: "first cut" }])
    expect(
      await h.query(
        "select version, code, language, valid, metrics, revision_number from chronicle.drafts where session_id = $1::uuid",
        [id],
      ),
    ).toEqual([
      {
        version: 3,
        code: "f()",
        language: "python",
        valid: false,
        metrics: { passed: 1 },
        revision_number: 1,
      },
    ])
    expect(
      await h.query(
        "select version, hole_id, value, confidence from chronicle.hole_resolutions where session_id = $1::uuid",
        [id],
      ),
    ).toEqual([{ version: 4, hole_id: "h1", value: [1, 2, 3], confidence: 0.75 }])
    for (const table of ["revisions", "drafts", "hole_resolutions"]) {
      expect(await stampedAt(table, "created_at", "t.session_id = $1::uuid", [id])).toBe(true)
    }
    const state = await currentState(h, id)
    expect(state.counts).toEqual({ messages: 0, revisions: 1, drafts: 1, holes: 1, files: 0, toolRuns: 0 })
  })

  it("FileAttached and FileDetached keep attachment and detachment rows; file_count follows the attached files", async () => {
    const { id, stream } = await newSession()
    const a = randomUUID()
    const b = randomUUID()
    const fileCount = async () =>
      (await h.one<{ n: number }>("select file_count as n from chronicle.sessions where id = $1::uuid", [id]))
        .n
    await h.append(stream, [ev.attach(a, { name: "a.txt", size: 10 })])
    expect(await fileCount()).toBe(1)
    await h.append(stream, [ev.attach(b, { name: "b.png", mimeType: "image/png", size: 2_000_000 })])
    expect(await fileCount()).toBe(2)
    await h.append(stream, [ev.detach(a)])
    expect(await fileCount()).toBe(1)
    await h.append(stream, [ev.attach(a, { name: "a2.txt", size: 11 })])
    expect(await fileCount()).toBe(2)

    expect(
      await h.query(
        `select file_id::text, version, name, mime_type, size::text from chronicle.session_files
          where session_id = $1::uuid order by version`,
        [id],
      ),
    ).toEqual([
      { file_id: a, version: 2, name: "a.txt", mime_type: "text/plain", size: "10" },
      { file_id: b, version: 3, name: "b.png", mime_type: "image/png", size: "2000000" },
      { file_id: a, version: 5, name: "a2.txt", mime_type: "text/plain", size: "11" },
    ])
    expect(
      await h.query(
        "select file_id::text, version from chronicle.session_file_detachments where session_id = $1::uuid",
        [id],
      ),
    ).toEqual([{ file_id: a, version: 4 }])
    expect(await stampedAt("session_files", "attached_at", "t.session_id = $1::uuid", [id])).toBe(true)
    expect(await stampedAt("session_file_detachments", "detached_at", "t.session_id = $1::uuid", [id])).toBe(
      true,
    )
    const attached = await h.query<{ file_id: string; version: number }>(
      `select f.file_id::text, f.version from chronicle.sessions s, chronicle.attached_files(s.id, s.effective) f
        where s.id = $1::uuid order by f.version`,
      [id],
    )
    expect(attached).toEqual([
      { file_id: b, version: 3 },
      { file_id: a, version: 5 },
    ])
  })

  it("ToolRunRecorded and CheckpointCreated insert their rows; a checkpoint keeps the version it marks and its own", async () => {
    const { id, stream } = await newSession()
    const run = ev.toolRun({
      tool: "pytest",
      status: "failed",
      durationMs: 1500,
      error: "2 failed",
      output: { failed: 2 },
    })
    const appended = await h.append(stream, [ev.message(1, "go"), run])
    const checkpoint = ev.checkpoint(3, String(appended.events[1]!.globalPosition), {
      label: "before refactor",
    })
    await h.append(stream, [checkpoint])
    expect(
      await h.query(
        `select tool_run_id::text, version, tool, input, output, status, duration_ms::int, error
           from chronicle.tool_runs where session_id = $1::uuid`,
        [id],
      ),
    ).toEqual([
      {
        tool_run_id: run.toolRunId,
        version: 3,
        tool: "pytest",
        input: { file: "a.ts" },
        output: { failed: 2 },
        status: "failed",
        duration_ms: 1500,
        error: "2 failed",
      },
    ])
    expect(
      await h.query(
        `select c.id::text, c.session_id::text, c.version, c.event_version, c.label, c.cursor,
                c.created_at = e.recorded_at as stamped
           from chronicle.checkpoints c join chronicle.events e on e.stream_id = $2 and e.stream_version = c.event_version
          where c.session_id = $1::uuid`,
        [id, stream],
      ),
    ).toEqual([
      {
        id: checkpoint.checkpointId,
        session_id: id,
        version: 3,
        event_version: 4,
        label: "before refactor",
        cursor: String(appended.events[1]!.globalPosition),
        stamped: true,
      },
    ])
    const state = await currentState(h, id)
    expect(state.counts.toolRuns).toBe(1)
    expect(state.version).toBe(4)
    expect(await stampedAt("tool_runs", "created_at", "t.session_id = $1::uuid", [id])).toBe(true)
  })

  it("every event advances version, head cursor, activity time and the effective set", async () => {
    const { id, stream } = await newSession()
    const batches = [
      [ev.message(1, "a"), ev.message(2, "b")],
      [ev.revision(1)],
      [ev.toolRun(), ev.updated({ title: "t" }), ev.draft()],
      [ev.archived()],
    ]
    for (const batch of batches) {
      const result = await h.append(stream, batch)
      const row = await h.one<{ version: number; head_cursor: string; effective: string; stamped: boolean }>(
        `select s.version, s.head_cursor, s.effective::text,
                s.updated_at = e.recorded_at and s.last_activity_at = e.recorded_at as stamped
           from chronicle.sessions s join chronicle.events e on e.stream_id = $2 and e.stream_version = s.version
          where s.id = $1::uuid`,
        [id, stream],
      )
      expect(row).toEqual({
        version: result.version,
        head_cursor: String(result.events.at(-1)!.globalPosition),
        effective: `{[1,${result.version + 1})}`,
        stamped: true,
      })
    }
  })

  it("lifecycle events set the status and its time and nothing else", async () => {
    const lifecycle = async (events: ReturnType<typeof ev.archived>[]) => {
      const { id, stream } = await newSession({ title: "kept" })
      await h.append(stream, [ev.message(1, "m")])
      for (const event of events) await h.append(stream, [event])
      return h.one<Record<string, unknown>>(
        `select s.status, s.version, s.title, s.message_count,
                s.archived_at = (select recorded_at from chronicle.events where stream_id = $2 and type = 'SessionArchived') as archived,
                s.deleted_at = (select recorded_at from chronicle.events where stream_id = $2 and type = 'SessionDeleted') as deleted,
                s.expired_at = (select recorded_at from chronicle.events where stream_id = $2 and type = 'SessionExpired') as expired
           from chronicle.sessions s where s.id = $1::uuid`,
        [id, stream],
      )
    }
    expect(await lifecycle([ev.archived()])).toEqual({
      status: "archived",
      version: 3,
      title: "kept",
      message_count: 1,
      archived: true,
      deleted: null,
      expired: null,
    })
    expect(await lifecycle([ev.expired(), ev.archived()])).toEqual({
      status: "archived",
      version: 4,
      title: "kept",
      message_count: 1,
      archived: true,
      deleted: null,
      expired: true,
    })
    // A write reopens an expired session: active again, its expiry time cleared.
    expect(await lifecycle([ev.expired(), ev.reopened()])).toEqual({
      status: "active",
      version: 4,
      title: "kept",
      message_count: 1,
      archived: null,
      deleted: null,
      expired: null,
    })
    const again = await newSession()
    await h.append(again.stream, [ev.expired(), ev.reopened(), ev.message(1, "m")])
    await h.append(again.stream, [ev.expired()])
    expect(
      await h.one(
        `select s.status, s.version,
                s.expired_at = (select max(recorded_at) from chronicle.events where stream_id = $2) as expired
           from chronicle.sessions s where s.id = $1::uuid`,
        [again.id, again.stream],
      ),
    ).toEqual({ status: "expired", version: 5, expired: true })
    expect(await lifecycle([ev.archived(), ev.deleted()])).toEqual({
      status: "deleted",
      version: 4,
      title: "kept",
      message_count: 1,
      archived: true,
      deleted: true,
      expired: null,
    })
  })

  it("keeps every counter equal to the number of effective rows", async () => {
    const { id, stream } = await newSession()
    const f1 = randomUUID()
    const f2 = randomUUID()
    await h.append(stream, [
      ev.message(1, "a"),
      ev.message(2, "b"),
      ev.revision(1),
      ev.attach(f1),
      ev.attach(f2),
    ])
    await h.append(stream, [ev.detach(f1), ev.hole("x", 0.5), ev.hole("x", 0.9), ev.draft(), ev.toolRun()])
    await h.append(stream, [ev.rolledBack(4), ev.message(3, "c"), ev.toolRun()])
    const state: SessionState = await currentState(h, id)
    expect(state.counts).toEqual({
      messages: state.messages.length,
      revisions: state.revisions.length,
      drafts: state.drafts.length,
      holes: state.holes.length,
      files: state.files.length,
      toolRuns: state.toolRuns.length,
    })
    expect(state.counts).toEqual({ messages: 3, revisions: 1, drafts: 0, holes: 0, files: 0, toolRuns: 2 })
  })

  it("refuses a second session with the same external key for one owner, writing nothing", async () => {
    const { owner } = await newSession({ externalKey: "k-1" })
    const id = randomUUID()
    const failure = await h.failure(
      Effect.flatMap(EventStore, (s) =>
        s.append(sessionStream(id), [toStored(ev.started(id, owner, { externalKey: "k-1" }))], {
          ownerId: owner,
        }),
      ),
    )
    expect(String((failure as { message?: string }).message ?? failure)).toContain(
      "sessions_owner_external_key_idx",
    )
    expect(await countRows(h, "sessions", "id", id)).toBe(0)
    expect(
      (
        await h.one<{ n: number }>("select count(*)::int as n from chronicle.events where stream_id = $1", [
          sessionStream(id),
        ])
      ).n,
    ).toBe(0)
    // Another owner may use the same key.
    const other = randomUUID()
    const otherOwner = randomUUID()
    await h.append(sessionStream(other), [ev.started(other, otherOwner, { externalKey: "k-1" })])
    expect(await countRows(h, "sessions", "id", other)).toBe(1)
  })

  describe("runs inside the append's transaction", () => {
    it("a batch whose projection fails is not appended and leaves no rows", async () => {
      const id = randomUUID()
      const message = ev.message(1, "once")
      const twice = { ...message, seq: 2 }
      const failure = await h.failure(
        Effect.flatMap(EventStore, (s) =>
          s.append(sessionStream(id), [ev.started(id, randomUUID()), message, twice].map(toStored)),
        ),
      )
      expect(String((failure as { message?: string }).message ?? failure)).toContain("messages_pkey")
      expect(
        (
          await h.one<{ n: number }>("select count(*)::int as n from chronicle.events where stream_id = $1", [
            sessionStream(id),
          ])
        ).n,
      ).toBe(0)
      expect(await countRows(h, "sessions", "id", id)).toBe(0)
      expect(await countRows(h, "messages", "session_id", id)).toBe(0)
      expect(await countRows(h, "session_updates", "session_id", id)).toBe(0)
    })

    it("rows are visible to the appending transaction at once and vanish when it rolls back", async () => {
      const id = randomUUID()
      const seenInside = await h.failure(
        Effect.gen(function* () {
          const db = yield* Database
          const store = yield* EventStore
          return yield* db.transaction(
            Effect.gen(function* () {
              yield* store.append(
                sessionStream(id),
                [ev.started(id, randomUUID()), ev.message(1, "m")].map(toStored),
              )
              const [row] = yield* db.query<{ message_count: number }>(
                "select message_count from chronicle.sessions where id = $1::uuid",
                [id],
              )
              return yield* Effect.fail({ seenInside: row?.message_count })
            }),
          )
        }),
      )
      expect(seenInside).toEqual({ seenInside: 1 })
      expect(await countRows(h, "sessions", "id", id)).toBe(0)
      expect(await countRows(h, "messages", "session_id", id)).toBe(0)
    })
  })

  describe("ignores what is not a projected session event", () => {
    it("events on a session stream that no SessionStarted or SessionForked began", async () => {
      const id = randomUUID()
      await h.run(
        Effect.flatMap(EventStore, (s) =>
          s.append(sessionStream(id), [
            { type: "MessageAppended", data: { n: 1, text: "not a message" } },
            { type: "SessionUpdated", data: { title: "x" } },
            { type: "SessionRolledBack", data: {} },
          ]),
        ),
      )
      expect(await countRows(h, "sessions", "id", id)).toBe(0)
      expect(await countRows(h, "messages", "session_id", id)).toBe(0)
      expect(await countRows(h, "session_rollbacks", "session_id", id)).toBe(0)
    })

    it("events on streams of other kinds", async () => {
      const id = randomUUID()
      await h.append(`thread-${id}`, [ev.started(id, randomUUID()), ev.message(1, "m")])
      expect(await countRows(h, "sessions", "id", id)).toBe(0)
      expect(await countRows(h, "messages", "session_id", id)).toBe(0)
    })

    it("an event of an unknown type, or a SessionStarted after the first event, only advances the version", async () => {
      const { id, stream } = await newSession({ title: "first" })
      await h.append(stream, [ev.message(1, "m")])
      const before = await currentState(h, id)
      const unknown = await h.run(
        Effect.flatMap(EventStore, (s) => s.append(stream, [{ type: "SomethingElse", data: { x: 1 } }])),
      )
      await h.append(stream, [ev.started(id, randomUUID(), { title: "second" })])
      const after = await currentState(h, id)
      expect(after).toEqual({ ...before, version: 4, effective: "{[1,5)}" })
      expect(unknown.version).toBe(3)
      expect(await countRows(h, "session_updates", "session_id", id)).toBe(1)
    })
  })
})
