import { describe, expect, it } from "vitest"
import {
  effectiveVersions,
  foldSession,
  forkSession,
  indexSession,
  type ResolveParent,
  type SessionEvent,
  type SessionEventRecord,
  type SessionView,
  timeline,
} from "../src/index.ts"
import { at, OWNER, ok, parents, record, revertible, SHA, snapshotOf, uuid } from "./support.ts"

const PARENT = uuid(1)
const CHILD = uuid(2)

const start = (title: string | null = "T0", metadata: Record<string, number> = {}): SessionEvent => ({
  type: "SessionStarted",
  sessionId: PARENT,
  ownerId: OWNER,
  title,
  metadata,
  externalKey: null,
})
const msg = (name: string, seq: number): SessionEvent => ({
  type: "MessageAppended",
  messageId: uuid(0x100 + name.charCodeAt(0)),
  seq,
  role: "user",
  content: name,
  metadata: {},
  createdAt: null,
})
const rollback = (toVersion: number): SessionEvent => ({
  type: "SessionRolledBack",
  toVersion,
  checkpointId: null,
})
const toolRun = (name: string): SessionEvent => ({
  type: "ToolRunRecorded",
  toolRunId: uuid(0x200 + name.charCodeAt(0)),
  tool: name,
  input: {},
  output: {},
  status: "succeeded",
  durationMs: 1,
  error: null,
})
const checkpoint = (version: number): SessionEvent => ({
  type: "CheckpointCreated",
  checkpointId: uuid(0x300 + version),
  version,
  cursor: `c${version}`,
  label: null,
})
const attach = (name: string): SessionEvent => ({
  type: "FileAttached",
  fileId: uuid(0x400 + name.charCodeAt(0)),
  sha256: SHA,
  name,
  mimeType: "text/plain",
  size: 1,
})
const detach = (name: string): SessionEvent => ({
  type: "FileDetached",
  fileId: uuid(0x400 + name.charCodeAt(0)),
})

const contents = (view: SessionView) => view.messages.map((m) => m.content)
const fileNames = (view: SessionView) => view.files.map((f) => `${f.name}@${f.version}`)

/** The fold as of x, checked against the index. */
const view = (log: ReadonlyArray<SessionEventRecord>, x: number, parent?: ResolveParent): SessionView => {
  const folded = foldSession(log, parent === undefined ? { asOf: x } : { asOf: x, parent })
  expect(indexSession(log, parent).asOf(x)).toEqual(folded)
  return folded
}

describe("folding a session without rollbacks", () => {
  const log = record([start("T0", { a: 1 }), msg("a", 1), msg("b", 2), toolRun("t"), checkpoint(4)])

  it("lists the content with versions, creation times and counts", () => {
    const current = view(log, 5)
    expect(current).toMatchObject({
      id: PARENT,
      ownerId: OWNER,
      title: "T0",
      metadata: { a: 1 },
      status: "active",
      version: 5,
      asOf: 5,
      createdAt: at(1),
      parentId: null,
      parentVersion: null,
      externalKey: null,
      counts: { messages: 2, revisions: 0, drafts: 0, holes: 0, files: 0, toolRuns: 1 },
    })
    expect(current.messages).toEqual([
      {
        messageId: uuid(0x161),
        seq: 1,
        role: "user",
        content: "a",
        metadata: {},
        version: 2,
        createdAt: at(2),
      },
      {
        messageId: uuid(0x162),
        seq: 2,
        role: "user",
        content: "b",
        metadata: {},
        version: 3,
        createdAt: at(3),
      },
    ])
    expect(current.checkpoints).toEqual([
      { checkpointId: uuid(0x304), version: 4, eventVersion: 5, label: null, cursor: "c4", createdAt: at(5) },
    ])
  })

  it("reads as of an earlier version: tool runs by version, checkpoints all, version current", () => {
    const early = view(log, 3)
    expect(contents(early)).toEqual(["a", "b"])
    expect(early.toolRuns).toEqual([])
    expect(early.checkpoints).toHaveLength(1)
    expect(early.version).toBe(5)
    expect(early.asOf).toBe(3)
  })

  it("keeps a message's own creation time when it has one", () => {
    const imported = record([start(), { ...msg("a", 1), createdAt: "2020-01-01T00:00:00Z" } as SessionEvent])
    expect(view(imported, 2).messages[0]?.createdAt).toBe("2020-01-01T00:00:00Z")
  })
})

describe("nested rollback", () => {
  // 1 start · 2 a · 3 b · 4 ⟲2 · 5 c · 6 checkpoint(5) · 7 ⟲3 · 8 d · 9 tool t · 10 ⟲5 · 11 e
  // The rollback at 10 returns to version 5, which lay on the branch abandoned at 7.
  const log = record([
    start(),
    msg("a", 1),
    msg("b", 2),
    rollback(2),
    msg("c", 2),
    checkpoint(5),
    rollback(3),
    msg("d", 3),
    toolRun("t"),
    rollback(5),
    msg("e", 3),
  ])

  it("computes E(X) by walking the rollback chain", () => {
    const expected: Record<number, ReadonlyArray<readonly [number, number]>> = {
      0: [],
      1: [[1, 1]],
      3: [[1, 3]],
      4: [
        [1, 2],
        [4, 4],
      ],
      6: [
        [1, 2],
        [4, 6],
      ],
      7: [
        [1, 3],
        [7, 7],
      ],
      9: [
        [1, 3],
        [7, 9],
      ],
      10: [
        [1, 2],
        [4, 5],
        [10, 10],
      ],
      11: [
        [1, 2],
        [4, 5],
        [10, 11],
      ],
    }
    const index = indexSession(log)
    for (const [x, ranges] of Object.entries(expected)) {
      expect(effectiveVersions(log, Number(x))).toEqual(ranges)
      expect(index.effectiveVersions(Number(x))).toEqual(ranges)
    }
  })

  it("reads each version as a reader saw it then", () => {
    const read = (x: number) => ({ messages: contents(view(log, x)), toolRuns: view(log, x).toolRuns.length })
    expect(read(3)).toEqual({ messages: ["a", "b"], toolRuns: 0 })
    expect(read(4)).toEqual({ messages: ["a"], toolRuns: 0 })
    expect(read(5)).toEqual({ messages: ["a", "c"], toolRuns: 0 })
    expect(read(8)).toEqual({ messages: ["a", "b", "d"], toolRuns: 0 })
    expect(read(9)).toEqual({ messages: ["a", "b", "d"], toolRuns: 1 })
    // Back on the abandoned branch: exactly what a reader saw at 5, plus the tool run, which is never reverted.
    expect(read(10)).toEqual({ messages: ["a", "c"], toolRuns: 1 })
    expect(read(11)).toEqual({ messages: ["a", "c", "e"], toolRuns: 1 })
    expect(view(log, 11).messages.map((m) => m.seq)).toEqual([1, 2, 3])
    expect(revertible(view(log, 10))).toEqual(revertible(view(log, 5)))
  })

  it("marks the content of abandoned branches as reverted in the timeline, and nothing else", () => {
    const entries = timeline(log)
    expect(entries.filter((e) => e.reverted).map((e) => e.version)).toEqual([3, 8])
    expect(entries.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    expect(entries[8]).toEqual({ ...log[8], reverted: false })
    expect(indexSession(log).timeline()).toEqual(entries)
  })

  it("joins touching ranges, so a rollback to the version just before it changes nothing", () => {
    const noop = record([start(), msg("a", 1), msg("b", 2), rollback(3), rollback(4)])
    expect(effectiveVersions(noop, 4)).toEqual([[1, 4]])
    expect(effectiveVersions(noop, 5)).toEqual([[1, 5]])
    expect(contents(view(noop, 5))).toEqual(["a", "b"])
  })
})

describe("attachments", () => {
  it("are effective iff attached at an effective version and not detached later in E(X)", () => {
    // 1 start · 2 +f · 3 −f · 4 ⟲2 · 5 +g · 6 −f · 7 +f
    const log = record([
      start(),
      attach("f"),
      detach("f"),
      rollback(2),
      attach("g"),
      detach("f"),
      attach("f"),
    ])
    expect(fileNames(view(log, 2))).toEqual(["f@2"])
    expect(fileNames(view(log, 3))).toEqual([])
    expect(fileNames(view(log, 4))).toEqual(["f@2"]) // the detachment at 3 was rolled back
    expect(fileNames(view(log, 5))).toEqual(["f@2", "g@5"])
    expect(fileNames(view(log, 6))).toEqual(["g@5"])
    expect(fileNames(view(log, 7))).toEqual(["g@5", "f@7"])
    expect(view(log, 7).files[1]).toEqual({
      fileId: uuid(0x466),
      sha256: SHA,
      name: "f",
      mimeType: "text/plain",
      size: 1,
      version: 7,
      attachedAt: at(7),
    })
    expect(view(log, 7).counts.files).toBe(2)
  })
})

describe("title and metadata", () => {
  it("come from the latest effective event that set each of them", () => {
    const log = record([
      start("A", { a: 1 }),
      { type: "SessionUpdated", title: "B" },
      { type: "SessionUpdated", metadata: { b: 2 } },
      { type: "SessionUpdated", title: null },
      rollback(2),
      { type: "SessionUpdated", metadata: { c: 3 } },
    ])
    const titled = (x: number) => ({ title: view(log, x).title, metadata: view(log, x).metadata })
    expect(titled(1)).toEqual({ title: "A", metadata: { a: 1 } })
    expect(titled(2)).toEqual({ title: "B", metadata: { a: 1 } })
    expect(titled(3)).toEqual({ title: "B", metadata: { b: 2 } })
    expect(titled(4)).toEqual({ title: null, metadata: { b: 2 } })
    expect(titled(5)).toEqual({ title: "B", metadata: { a: 1 } })
    expect(titled(6)).toEqual({ title: "B", metadata: { c: 3 } })
  })
})

describe("status", () => {
  it("is the current one whatever the as-of version", () => {
    const log = record([start(), msg("a", 1), { type: "SessionArchived", reason: null }])
    expect(view(log, 2)).toMatchObject({ status: "archived", version: 3, asOf: 2 })
    expect(view(log, 1).status).toBe("archived")
    expect(view(log, 3).messages).toHaveLength(1)
    const deleted = record([
      start(),
      { type: "SessionExpired", idleSince: at(1), ttlHours: 1 },
      { type: "SessionDeleted", reason: null },
    ])
    expect(view(deleted, 1).status).toBe("deleted")
  })

  it("is active again once an expired session is reopened, as of any version, and a rollback keeps it so", () => {
    const expired: SessionEvent = { type: "SessionExpired", idleSince: at(2), ttlHours: 24 }
    const reopened: SessionEvent = { type: "SessionReopened", command: "AppendMessages" }
    const log = record([start(), msg("a", 1), expired, reopened, msg("b", 2)])
    expect(view(log, 3)).toMatchObject({ status: "active", version: 5 })
    expect(view(log, 5).messages.map((m) => m.content)).toEqual(["a", "b"])
    // Reopened again by a rollback, to before the expiry: the status is the current one, never reverted.
    const rolled = record([
      start(),
      msg("a", 1),
      expired,
      reopened,
      msg("b", 2),
      expired,
      reopened,
      rollback(2),
    ])
    expect(view(rolled, 8)).toMatchObject({ status: "active", version: 8 })
    expect(view(rolled, 8).messages.map((m) => m.content)).toEqual(["a"])
    expect(view(rolled, 6).status).toBe("active")
    // The reopening is a lifecycle event: never marked reverted on the timeline.
    expect(
      timeline(rolled)
        .filter((e) => e.reverted)
        .map((e) => e.version),
    ).toEqual([5])
  })

  it("is deleted once purged, whatever the as-of version", () => {
    const purged: SessionEvent = { type: "SessionPurged", reason: null, throughVersion: 2 }
    const log = record([start(), msg("", 1), purged])
    expect(view(log, 2)).toMatchObject({ status: "deleted", version: 3 })
    expect(view(log, 3).messages.map((m) => m.content)).toEqual([""])
  })
})

describe("fork", () => {
  // Parent: 1 start · 2 a · 3 revision · 4 tool t · 5 +f · 6 hole · 7 draft · 8 checkpoint(7) · 9 b · 10 tool u · 11 ⟲7
  const parentLog = record([
    start("P", { p: 1 }),
    msg("a", 1),
    { type: "RevisionAdded", revisionId: uuid(0x501), number: 1, ir: { n: 1 }, note: null },
    toolRun("t"),
    attach("f"),
    { type: "HoleResolved", resolutionId: uuid(0x601), holeId: "h", value: 42, confidence: 0.5 },
    {
      type: "DraftRecorded",
      draftId: uuid(0x701),
      code: "x",
      language: "ts",
      valid: true,
      metrics: {},
      revisionNumber: 1,
    },
    checkpoint(7),
    msg("b", 2),
    toolRun("u"),
    rollback(7),
  ])
  const resolve = parents({ [PARENT]: parentLog }, (log, x) => foldSession(log, { asOf: x }))

  const forkAt = (atVersion: number, more: ReadonlyArray<SessionEvent> = []) => {
    const asOf = foldSession(parentLog, { asOf: atVersion })
    const forked = ok(
      forkSession(snapshotOf(foldSession(parentLog)), {
        sessionId: CHILD,
        ownerId: OWNER,
        atVersion,
        checkpointId: null,
        parentAsOf: { title: asOf.title, metadata: asOf.metadata },
      }),
    )
    return record([forked, ...more], 1)
  }

  it("starts the child with the parent's as-of content, copied at version 1 with the parent's times", () => {
    const child = view(forkAt(9), 1, resolve)
    const parent9 = foldSession(parentLog, { asOf: 9 })
    expect(child).toMatchObject({
      id: CHILD,
      parentId: PARENT,
      parentVersion: 9,
      title: "P",
      metadata: { p: 1 },
      status: "active",
      version: 1,
      createdAt: at(1, 1),
      checkpoints: [],
      counts: { messages: 2, revisions: 1, drafts: 1, holes: 1, files: 1, toolRuns: 1 },
    })
    expect(contents(child)).toEqual(["a", "b"])
    expect(child.messages[1]).toEqual({ ...parent9.messages[1], version: 1 })
    expect(child.messages[1]?.createdAt).toBe(at(9))
    expect(child.files).toEqual([{ ...parent9.files[0], version: 1 }])
    expect(child.toolRuns.map((t) => t.tool)).toEqual(["t"])
  })

  it("copies what the parent read at a version on an abandoned branch, and tool runs up to it", () => {
    expect(contents(view(forkAt(10), 1, resolve))).toEqual(["a", "b"])
    expect(view(forkAt(10), 1, resolve).toolRuns.map((t) => t.tool)).toEqual(["t", "u"])
    expect(contents(view(forkAt(11), 1, resolve))).toEqual(["a"])
    expect(view(forkAt(11), 1, resolve).toolRuns.map((t) => t.tool)).toEqual(["t", "u"])
  })

  it("continues the child's numbering after the copied content, and rolls back to it", () => {
    // 1 forked · 2 c (seq 3) · 3 −f · 4 ⟲1
    const log = forkAt(9, [msg("c", 3), detach("f"), rollback(1)])
    expect(contents(view(log, 2, resolve))).toEqual(["a", "b", "c"])
    expect(view(log, 2, resolve).messages[2]).toMatchObject({ seq: 3, version: 2 })
    expect(view(log, 3, resolve).files).toEqual([])
    expect(revertible(view(log, 4, resolve))).toEqual(revertible(view(log, 1, resolve)))
  })

  it("needs the parent to be folded", () => {
    expect(() => foldSession(forkAt(9))).toThrow(/fork of .* needs the parent's state/)
  })
})

describe("malformed input", () => {
  const log = record([start(), msg("a", 1)])

  it("refuses as-of versions outside 1..n", () => {
    expect(() => foldSession(log, { asOf: 0 })).toThrow(RangeError)
    expect(() => foldSession(log, { asOf: 3 })).toThrow(/version 3 is not between 1 and 2/)
    expect(() => effectiveVersions(log, 3)).toThrow(RangeError)
  })

  it("refuses streams with gaps, without a start, or with a rollback that points forwards", () => {
    expect(() => foldSession([log[1]!])).toThrow(/expected stream version 1/)
    expect(() => foldSession(record([msg("a", 1)]))).toThrow(/starts with SessionStarted or SessionForked/)
    expect(() => effectiveVersions(record([start(), rollback(2)]), 2)).toThrow(/points to version 2/)
  })
})
