/**
 * `chronicle export` → `chronicle import` round-trips everything, on Postgres: a log holding
 * every event type, files with their bytes, and hostile text (U+2028/U+2029, control
 * characters, emoji, right-to-left marks, very long lines) comes back byte for byte (the
 * export of the copy equals the export of the original), the read models answer the same,
 * and `--map-owner` gives one owner's data to another, keys and LangGraph threads included.
 */
import { execFile } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import type { ChronicleClient } from "@chronicle/client"
import { Purge, Retention, serviceActor } from "@chronicle/domain"
import { createPostgresDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { clientFor, startTestServer, type TestDatabase, type TestServer, testDatabases } from "./support.ts"

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url))
const NO_AUTH = { SUPABASE_URL: "", SUPABASE_JWT_SECRET: "", CHRONICLE_SERVICE_KEY: "" }
const exec = promisify(execFile)
const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const cli = async (args: ReadonlyArray<string>, databaseUrl: string) => {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...NO_AUTH, DATABASE_URL: databaseUrl, CHRONICLE_LOG_LEVEL: "none" },
      maxBuffer: 256 * 1024 * 1024,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/** Text no line-splitting, escaping or encoding step may change. */
const HOSTILE = [
  "line\u2028separator and paragraph\u2029separator",
  "tab\tcr\rlf\nvt\u000bbell\u0007escape\u001b del\u007f c1\u0085",
  "emoji 😀👩‍👩‍👧‍👦 and flags 🇫🇷",
  "right-to-left \u202eevil\u202c and arabic مرحبا",
  "quotes \" ' ` and backslashes \\ \\\\ and slashes / //",
  "a\uFEFFb (a byte-order mark inside)",
  `long ${"line ".repeat(100_000)}end`,
]

/** A database that already exists (the server migrates it if needed). */
const existing = (url: string): TestDatabase => ({
  name: "postgres",
  prepare: async () => ({
    database: { kind: "postgres", url, prepare: true, listen: true, pooler: "none" },
    drop: async () => {},
  }),
})

const base64 = (bytes: Buffer) => bytes.toString("base64")

/** Creates something of everything through the API, as `owner`; returns what to look for. */
const seedEverything = async (t: TestServer, owner: string) => {
  const me = clientFor(t.server.url, await t.authority.es256Token({ sub: owner }))
  const s = await me.sessions.create.mutate({
    title: HOSTILE[0]!,
    metadata: { hostile: HOSTILE, "key\u2028with separator": true },
    externalKey: "thread-\u2028-key",
  })
  for (const text of HOSTILE)
    await me.messages.append.mutate({ sessionId: s.id, role: "user", content: text })
  await me.sessions.update.mutate({ id: s.id, title: HOSTILE[3]!, metadata: { v: 2 } })
  await me.revisions.add.mutate({ sessionId: s.id, ir: { steps: HOSTILE }, note: HOSTILE[1]! })
  await me.drafts.add.mutate({ sessionId: s.id, code: HOSTILE[4]!, language: "ts", valid: true })
  await me.holes.resolve.mutate({ sessionId: s.id, holeId: "h\u2029", value: HOSTILE[2]!, confidence: 0.5 })
  await me.toolRuns.record.mutate({
    sessionId: s.id,
    tool: "search",
    input: { q: HOSTILE[0]! },
    output: { r: HOSTILE[2]! },
    status: "succeeded",
  })
  const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) % 256))
  const file = await me.files.put.mutate({
    name: "data\u2028.bin",
    mimeType: "application/pdf",
    contentBase64: base64(bytes),
  })
  const other = await me.files.put.mutate({
    name: "note.txt",
    mimeType: "text/plain",
    contentBase64: base64(Buffer.from(HOSTILE[0]!)),
  })
  await me.files.attach.mutate({ sessionId: s.id, fileId: file.id })
  await me.files.attach.mutate({ sessionId: s.id, fileId: other.id })
  await me.files.detach.mutate({ sessionId: s.id, fileId: other.id })
  const checkpoint = await me.checkpoints.create.mutate({ sessionId: s.id, label: "cp\u2028" })
  await me.messages.append.mutate({ sessionId: s.id, role: "assistant", content: "abandoned" })
  await me.sessions.rollback.mutate({ id: s.id, checkpointId: checkpoint.id })
  const child = await me.sessions.fork.mutate({ id: s.id, checkpointId: checkpoint.id, title: "fork\u2029" })
  await me.messages.append.mutate({ sessionId: child.id, role: "user", content: HOSTILE[5]! })
  const archived = await me.sessions.create.mutate({ title: "to archive" })
  await me.sessions.archive.mutate({ id: archived.id, reason: "done\u2028" })
  const resumed = await me.sessions.create.mutate({ title: "to resume" })
  const deleted = await me.sessions.create.mutate({ title: "to delete" })
  await me.sessions.delete.mutate({ id: deleted.id })

  const job = await me.jobs.create.mutate({ type: "work", sessionId: s.id, input: { h: HOSTILE[1]! } })
  await me.jobs.start.mutate({ id: job.id, worker: "w\u2028" })
  await me.jobs.progress.mutate({ id: job.id, progress: 0.5, message: HOSTILE[0]! })
  await me.jobs.pause.mutate({ id: job.id, reason: "quota" })
  await me.jobs.resume.mutate({ id: job.id })
  const task = await me.jobs.addTask.mutate({ id: job.id, name: "task\u2029", input: { h: HOSTILE[2]! } })
  await me.jobs.updateTask.mutate({
    id: job.id,
    taskId: task.id,
    status: "completed",
    output: { ok: true },
  })
  await me.artifacts.record.mutate({ jobId: job.id, fileId: file.id, kind: "output" })
  await me.jobs.complete.mutate({ id: job.id, output: { h: HOSTILE[3]! } })
  const failed = await me.jobs.create.mutate({ type: "work", input: {} })
  await me.jobs.start.mutate({ id: failed.id })
  await me.jobs.fail.mutate({ id: failed.id, error: HOSTILE[1]!, details: { h: HOSTILE[0]! } })
  const cancelled = await me.jobs.create.mutate({ type: "work", input: {} })
  await me.jobs.cancel.mutate({ id: cancelled.id, reason: "no" })

  const sandbox = await me.sandboxes.register.mutate({
    sessionId: s.id,
    provider: "e2b",
    externalId: "x\u2028",
  })
  await me.sandboxes.updateStatus.mutate({ id: sandbox.id, status: "running" })

  const blob = (text: string) => ({ type: "json", data: base64(Buffer.from(text)) })
  await me.graphs.putCheckpoint.mutate({
    threadId: "graph-thread\u2028",
    checkpointNs: "",
    checkpointId: "cp-1",
    parentCheckpointId: null,
    checkpoint: blob(HOSTILE[2]!),
    metadata: { step: 1, note: HOSTILE[0]! },
    channelVersions: { messages: "1" },
    blobs: [{ channel: "messages", version: "1", value: blob(HOSTILE[3]!) }],
  })
  await me.graphs.putWrites.mutate({
    threadId: "graph-thread\u2028",
    checkpointNs: "",
    checkpointId: "cp-1",
    taskId: "t1",
    taskPath: "p",
    writes: [{ idx: 0, channel: "messages", value: blob(HOSTILE[4]!) }],
  })
  // A list channel stored as what it added, and values large enough for the blob store.
  const large = blob(`${"x".repeat(100_000)}${HOSTILE[1]!}`)
  for (const [id, version, list] of [
    ["cp-2", "2", { base: null, keep: 0, items: [blob(HOSTILE[0]!), large] }],
    ["cp-3", "3", { base: "2", keep: 2, items: [blob(HOSTILE[2]!)] }],
  ] as const) {
    await me.graphs.putCheckpoint.mutate({
      threadId: "graph-thread\u2028",
      checkpointNs: "",
      checkpointId: id,
      parentCheckpointId: "cp-1",
      checkpoint: blob(id),
      metadata: { step: Number(version) },
      channelVersions: { messages: "1", history: version },
      blobs: [{ channel: "history", version, list: { ...list, items: [...list.items] } }],
    })
  }
  await me.graphs.putWrites.mutate({
    threadId: "graph-thread\u2028",
    checkpointNs: "",
    checkpointId: "cp-3",
    taskId: "t2",
    taskPath: "p",
    writes: [{ idx: 0, channel: "history", value: large }],
  })
  await me.graphs.putCheckpoint.mutate({
    threadId: "gone",
    checkpointNs: "",
    checkpointId: "cp-1",
    parentCheckpointId: null,
    checkpoint: blob("x"),
    metadata: {},
    channelVersions: {},
    blobs: [],
  })
  await me.graphs.deleteThread.mutate({ threadId: "gone" })

  // Expire whatever has been idle: a TTL of a few milliseconds, and a sweep.
  await new Promise((resolve) => setTimeout(resolve, 50))
  await t.server.runtime.runPromise(Effect.flatMap(Retention, (r) => r.sweep()))
  // … and a conversation resumed after that: its session reopened by the next write.
  await me.messages.append.mutate({ sessionId: resumed.id, role: "user", content: "back\u2029" })
  // An erased session: its events redacted, the purge recorded.
  const erased = await me.sessions.create.mutate({ title: "to erase" })
  await me.messages.append.mutate({ sessionId: erased.id, role: "user", content: "erase me" })
  await t.server.runtime.runPromise(
    Effect.flatMap(Purge, (p) => p.purge(serviceActor(), { sessionId: erased.id }, { reason: "asked" })),
  )
  return { sessionId: s.id, childId: child.id, fileId: file.id, bytes, key: "thread-\u2028-key" }
}

const typesIn = (ndjson: string) =>
  new Set(
    ndjson
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as { type?: string })
      .flatMap((line) => (line.type === undefined ? [] : [line.type])),
  )

describe.runIf(env.postgresUrl !== null)("export and import, on postgres", () => {
  let dir: string
  let source: TestServer
  const owner = randomUUID()
  let seeded: Awaited<ReturnType<typeof seedEverything>>
  const drops: Array<() => Promise<void>> = []

  const freshDatabase = async () => {
    const created = await createPostgresDatabase(env.postgresUrl!)
    drops.push(created.drop)
    return created.url
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "chronicle-roundtrip-"))
    const database = testDatabases(env).find((d) => d.name === "postgres")!
    source = await startTestServer(database, { CHRONICLE_SESSION_TTL_HOURS: "0.000001" })
    seeded = await seedEverything(source, owner)
  })
  afterAll(async () => {
    await source?.close()
    for (const drop of drops) await drop()
    await rm(dir, { recursive: true, force: true })
  })

  it("round-trips a log of every event type, files and hostile text byte for byte", async () => {
    const original = join(dir, "original.ndjson")
    const exported = await cli(["export", "--out", original], source.databaseUrl!)
    expect(exported.stderr.trim()).toMatch(/^Exported \d+ event\(s\) of the whole log and 2 file\(s\)$/)
    const text = await readFile(original, "utf8")
    // Every event type of the catalog is in it.
    expect([...typesIn(text)].sort()).toEqual(
      [
        "ArtifactRecorded",
        "CheckpointCreated",
        "DraftRecorded",
        "FileAttached",
        "FileDetached",
        "FileUploaded",
        "GraphCheckpointSaved",
        "GraphThreadDeleted",
        "GraphThreadStarted",
        "GraphWritesSaved",
        "HoleResolved",
        "JobCancelled",
        "JobCompleted",
        "JobCreated",
        "JobFailed",
        "JobPaused",
        "JobProgressed",
        "JobResumed",
        "JobStarted",
        "MessageAppended",
        "RevisionAdded",
        "SandboxRegistered",
        "SandboxStatusChanged",
        "SessionArchived",
        "SessionDeleted",
        "SessionExpired",
        "SessionForked",
        "SessionPurged",
        "SessionReopened",
        "SessionRolledBack",
        "SessionStarted",
        "SessionUpdated",
        "TaskAdded",
        "TaskUpdated",
        "ToolRunRecorded",
      ].sort(),
    )
    // U+2028 and U+2029 travel unescaped, inside their lines.
    expect(text).toContain("\u2028")
    expect(text).toContain("\u2029")

    const target = await freshDatabase()
    const imported = await cli(["import", "--in", original], target)
    expect(imported.code, imported.stderr).toBe(0)
    const events = text.split("\n").filter((l) => l.startsWith('{"streamId"')).length
    // Blobs stored: the bytes of the two files, and the large values (a tool output, a graph value).
    expect(imported.stderr.trim()).toMatch(
      new RegExp(
        `Imported \\d+ stream\\(s\\): ${events} event\\(s\\) written, 0 already present; 2 file\\(s\\) stored; 2 large value\\(s\\) stored$`,
      ),
    )
    // The copy exports to the same bytes: ids, versions, data, metadata, times to the
    // microsecond, owners, and every file's content.
    const copy = join(dir, "copy.ndjson")
    expect((await cli(["export", "--out", copy], target)).code).toBe(0)
    expect(await readFile(copy, "utf8")).toBe(text)
    // Importing it again writes nothing.
    const again = await cli(["import", "--in", original], target)
    expect(again.stderr).toContain(`0 event(s) written, ${events} already present`)

    // The read models of the copy answer as the original's do.
    const copyServer = await startTestServer(existing(target))
    try {
      const token = await copyServer.authority.es256Token({ sub: owner })
      const there = clientFor(copyServer.server.url, token)
      const here = clientFor(source.server.url, await source.authority.es256Token({ sub: owner }))
      const file = await there.files.get.query({ id: seeded.fileId, includeContent: true })
      expect(Buffer.from(file.contentBase64!, "base64").equals(seeded.bytes)).toBe(true)
      const same = async (f: (c: ChronicleClient) => Promise<unknown>) =>
        expect(await f(there)).toEqual(await f(here))
      await same((c) => c.sessions.get.query({ id: seeded.sessionId }))
      await same((c) => c.messages.list.query({ sessionId: seeded.sessionId, limit: 500 }))
      await same((c) => c.messages.list.query({ sessionId: seeded.childId, limit: 500 }))
      await same((c) => c.sessions.timeline.query({ id: seeded.sessionId, limit: 500 }))
      await same((c) => c.sessions.list.query({ limit: 500, status: "expired" }))
      await same((c) => c.jobs.list.query({ limit: 500 }))
      await same((c) => c.files.list.query({ limit: 500 }))
      await same((c) => c.graphs.list.query({ limit: 500 }))
      await same((c) => c.sessions.getByKey.query({ externalKey: seeded.key }))
    } finally {
      await copyServer.close()
    }
  })

  it("exports one session with its fork ancestors and its files' bytes", async () => {
    const file = join(dir, "session.ndjson")
    const exported = await cli(["export", seeded.childId, "--out", file], source.databaseUrl!)
    expect(exported.stderr.trim()).toMatch(
      /^Exported \d+ event\(s\) of 2 session stream\(s\) and 2 file\(s\)$/,
    )
    const target = await freshDatabase()
    expect((await cli(["import", "--in", file], target)).code).toBe(0)
    const copyServer = await startTestServer(existing(target))
    try {
      const there = clientFor(copyServer.server.url, await copyServer.authority.es256Token({ sub: owner }))
      const content = await there.files.get.query({ id: seeded.fileId, includeContent: true })
      expect(Buffer.from(content.contentBase64!, "base64").equals(seeded.bytes)).toBe(true)
      expect(
        (await there.files.listAttached.query({ sessionId: seeded.childId })).items.map((f) => f.fileId),
      ).toEqual([seeded.fileId])
    } finally {
      await copyServer.close()
    }
  })

  it("gives one owner's data to another with --map-owner, keys and threads included", async () => {
    const original = join(dir, "map.ndjson")
    expect((await cli(["export", "--out", original], source.databaseUrl!)).code).toBe(0)
    const target = await freshDatabase()
    const carol = randomUUID()
    const bad = await cli(["import", "--in", original, "--map-owner", "someone=else"], target)
    expect(bad.code).toBe(1)
    expect(bad.stderr.trim()).toBe(
      'chronicle: --map-owner takes old=new, two owner ids (UUIDs), such as --map-owner 0b6f…=7d1c…; got "someone=else"',
    )
    const mapped = await cli(["import", "--in", original, "--map-owner", `${owner}=${carol}`], target)
    expect(mapped.code, mapped.stderr).toBe(0)
    const copyServer = await startTestServer(existing(target))
    try {
      const asCarol = clientFor(copyServer.server.url, await copyServer.authority.es256Token({ sub: carol }))
      const asOwner = clientFor(copyServer.server.url, await copyServer.authority.es256Token({ sub: owner }))
      // Carol finds her session by its key, its messages, her files and her LangGraph thread.
      const keyed = await asCarol.sessions.getByKey.query({ externalKey: seeded.key })
      expect(keyed).toMatchObject({ ownerId: carol, title: HOSTILE[3] })
      expect(
        (await asCarol.messages.list.query({ sessionId: keyed.id, limit: 500 })).items.map((m) => m.content),
      ).toEqual(HOSTILE)
      const file = await asCarol.files.get.query({ id: seeded.fileId, includeContent: true })
      expect(Buffer.from(file.contentBase64!, "base64").equals(seeded.bytes)).toBe(true)
      const thread = await asCarol.graphs.getTuple.query({
        threadId: "graph-thread\u2028",
        checkpointNs: "",
        checkpointId: "cp-1",
      })
      expect(thread?.metadata).toEqual({ step: 1, note: HOSTILE[0] })
      // The list and the value in the blob store came along.
      const latest = await asCarol.graphs.getTuple.query({ threadId: "graph-thread\u2028", checkpointNs: "" })
      const history = latest?.blobs.find((b) => b.channel === "history")
      expect(history !== undefined && "items" in history ? history.items.length : 0).toBe(3)
      expect((await asCarol.jobs.list.query({ limit: 500 })).items).toHaveLength(3)
      // The old owner has nothing there.
      expect((await asOwner.sessions.list.query({ limit: 500 })).items).toEqual([])
      expect((await asOwner.files.list.query({ limit: 500 })).items).toEqual([])
    } finally {
      await copyServer.close()
    }
  })

  it("refuses a file whose bytes do not match their SHA-256", async () => {
    const text = await readFile(join(dir, "original.ndjson"), "utf8")
    const tampered = text.replace(
      /"contentBase64":"([A-Za-z0-9+/])/,
      (_, c: string) => `"contentBase64":"${c === "A" ? "B" : "A"}`,
    )
    const file = join(dir, "tampered.ndjson")
    await writeFile(file, tampered)
    const target = await freshDatabase()
    const refused = await cli(["import", "--in", file], target)
    expect(refused.code).toBe(1)
    expect(refused.stderr.trim()).toMatch(
      /^chronicle: line \d+: the blob's content does not match its sha256 and size/,
    )
  })
})
