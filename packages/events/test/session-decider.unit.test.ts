import { describe, expect, it } from "vitest"
import {
  decideSession,
  forkSession,
  type SessionCommand,
  type SessionEvent,
  type SessionSnapshot,
  type SessionStatus,
  startSession,
} from "../src/index.ts"
import { assertValidSessionEvents, OTHER_OWNER, OWNER, ok, refused, SHA, uuid } from "./support.ts"

const SESSION = uuid(1)

/** An active session at version 5 with two messages and one revision. */
const given = (patch: Partial<SessionSnapshot> = {}): SessionSnapshot => ({
  id: SESSION,
  ownerId: OWNER,
  status: "active",
  version: 5,
  title: "Refactor the parser",
  metadata: { project: "p" },
  counts: { messages: 2, revisions: 1, drafts: 0, holes: 0, files: 0, toolRuns: 0 },
  headCursor: "cursor-5",
  ...patch,
})

/** Decides and, on success, checks the events are valid catalog events. */
const when = (state: SessionSnapshot, command: SessionCommand) => {
  const result = decideSession(command, state)
  if (result._tag === "Success") assertValidSessionEvents(result.success)
  return result
}

const then = (result: ReturnType<typeof when>, events: ReadonlyArray<SessionEvent>) =>
  expect(ok(result)).toEqual(events)

const file = {
  fileId: uuid(50),
  ownerId: OWNER,
  sha256: SHA,
  name: "notes.md",
  mimeType: "text/markdown",
  size: 12,
}

const draftCiting = (revisionNumber: number | null) => ({
  draftId: uuid(31),
  code: "x",
  language: "ts",
  valid: true,
  metrics: {},
  revisionNumber,
})

/** One command of each kind that needs an active session. */
const contentCommands: ReadonlyArray<SessionCommand> = [
  { type: "UpdateSession", title: "new" },
  {
    type: "AppendMessages",
    messages: [{ messageId: uuid(10), role: "user", content: "hi", metadata: {}, createdAt: null }],
  },
  { type: "AddRevision", revisionId: uuid(20), ir: { nodes: [] }, note: null },
  {
    type: "RecordDraft",
    draftId: uuid(30),
    code: "x",
    language: "ts",
    valid: true,
    metrics: {},
    revisionNumber: null,
  },
  { type: "ResolveHole", resolutionId: uuid(40), holeId: "h1", value: 1, confidence: 0.5, current: null },
  { type: "AttachFile", file, attached: false },
  { type: "DetachFile", fileId: file.fileId, attached: true },
  {
    type: "RecordToolRun",
    toolRunId: uuid(60),
    tool: "grep",
    input: {},
    output: {},
    status: "succeeded",
    durationMs: 3,
    error: null,
  },
  { type: "CreateCheckpoint", checkpointId: uuid(70), label: null },
  { type: "RollBack", toVersion: 2, checkpointId: null },
]

describe("startSession", () => {
  it("starts a session with its title, metadata and external key", () => {
    const event = startSession({
      sessionId: SESSION,
      ownerId: OWNER,
      title: "t",
      metadata: { a: 1 },
      externalKey: "thread-1",
    })
    expect(event).toEqual({
      type: "SessionStarted",
      sessionId: SESSION,
      ownerId: OWNER,
      title: "t",
      metadata: { a: 1 },
      externalKey: "thread-1",
    })
    assertValidSessionEvents([event])
  })
})

describe("forkSession", () => {
  const fork = {
    sessionId: uuid(2),
    ownerId: OWNER,
    checkpointId: null,
    parentAsOf: { title: "old", metadata: { v: 1 } },
  }

  it("forks with the parent's title and metadata as of the fork version", () => {
    const event = ok(forkSession(given(), { ...fork, atVersion: 3 }))
    expect(event).toEqual({
      type: "SessionForked",
      sessionId: uuid(2),
      ownerId: OWNER,
      parentId: SESSION,
      atVersion: 3,
      checkpointId: null,
      title: "old",
      metadata: { v: 1 },
      externalKey: null,
    })
    assertValidSessionEvents([event])
  })

  it("takes a new title (even a cleared one) and metadata when the fork names them", () => {
    expect(
      ok(forkSession(given(), { ...fork, atVersion: 3, title: "mine", metadata: { w: 2 } })),
    ).toMatchObject({
      title: "mine",
      metadata: { w: 2 },
    })
    expect(ok(forkSession(given(), { ...fork, atVersion: 3, title: null }))).toMatchObject({
      title: null,
      metadata: { v: 1 },
    })
  })

  it("forks at the parent's first and current versions, and records the checkpoint", () => {
    expect(ok(forkSession(given(), { ...fork, atVersion: 1 })).atVersion).toBe(1)
    expect(ok(forkSession(given(), { ...fork, atVersion: 5, checkpointId: uuid(70) }))).toMatchObject({
      atVersion: 5,
      checkpointId: uuid(70),
    })
  })

  it("forks archived and expired parents", () => {
    for (const status of ["archived", "expired"] as const) {
      expect(ok(forkSession(given({ status }), { ...fork, atVersion: 2 })).parentId).toBe(SESSION)
    }
  })

  it("refuses to fork a deleted parent", () => {
    const error = refused(
      forkSession(given({ status: "deleted" }), { ...fork, atVersion: 2 }),
      "InvalidTransition",
      /deleted session cannot be forked/,
    )
    expect(error).toMatchObject({ entity: "session", id: SESSION, state: "deleted", action: "fork" })
  })

  it("refuses a fork version outside 1..parent version", () => {
    for (const atVersion of [0, 6, 2.5]) {
      refused(
        forkSession(given(), { ...fork, atVersion }),
        "InvalidCommand",
        new RegExp(`atVersion: cannot fork at version ${atVersion}: .*versions 1 to 5`),
      )
    }
  })
})

describe("lifecycle", () => {
  it("archives an active or expired session", () => {
    for (const status of ["active", "expired"] as const) {
      then(when(given({ status }), { type: "ArchiveSession", reason: "done" }), [
        { type: "SessionArchived", reason: "done" },
      ])
    }
  })

  it("refuses to archive an archived or deleted session", () => {
    refused(
      when(given({ status: "archived" }), { type: "ArchiveSession", reason: null }),
      "InvalidTransition",
      /already archived/,
    )
    refused(
      when(given({ status: "deleted" }), { type: "ArchiveSession", reason: null }),
      "InvalidTransition",
      /Cannot archive session .*\(deleted\): a deleted session cannot be archived/,
    )
  })

  it("deletes a session in any status but deleted", () => {
    for (const status of ["active", "archived", "expired"] as const) {
      then(when(given({ status }), { type: "DeleteSession", reason: null }), [
        { type: "SessionDeleted", reason: null },
      ])
    }
    refused(
      when(given({ status: "deleted" }), { type: "DeleteSession", reason: null }),
      "InvalidTransition",
      /already deleted/,
    )
  })

  it("expires only an active session", () => {
    const expire = { type: "ExpireSession", idleSince: "2026-01-01T00:00:00.000Z", ttlHours: 24 } as const
    then(when(given(), expire), [
      { type: "SessionExpired", idleSince: "2026-01-01T00:00:00.000Z", ttlHours: 24 },
    ])
    for (const status of ["archived", "deleted", "expired"] as const) {
      refused(
        when(given({ status }), expire),
        "InvalidTransition",
        new RegExp(`only an active session can expire; this one is ${status}`),
      )
    }
  })

  it("refuses to expire with a TTL of 0 (never expire)", () => {
    refused(
      when(given(), { type: "ExpireSession", idleSince: "2026-01-01T00:00:00.000Z", ttlHours: 0 }),
      "InvalidCommand",
      /ttlHours: must be more than 0 hours/,
    )
  })
})

describe("an archived or deleted session", () => {
  const statuses: ReadonlyArray<SessionStatus> = ["archived", "deleted"]
  for (const status of statuses) {
    for (const command of contentCommands) {
      it(`refuses ${command.type} when ${status}`, () => {
        const error = refused(
          when(given({ status }), command),
          "InvalidTransition",
          new RegExp(`\\(${status}\\): the session .*read-only`),
        )
        expect(error).toMatchObject({ entity: "session", id: SESSION, state: status })
      })
    }
  }

  it("accepts every one of those commands when active", () => {
    for (const command of contentCommands) expect(when(given(), command)._tag).toBe("Success")
  })
})

describe("an expired session", () => {
  const expired = given({ status: "expired", version: 6, headCursor: "cursor-6" })

  for (const command of contentCommands) {
    it(`is reopened by ${command.type}: SessionReopened, then what the active session would record`, () => {
      const active = ok(when({ ...expired, status: "active" }, command))
      then(when(expired, command), [{ type: "SessionReopened", command: command.type }, ...active])
    })
  }

  it("numbers a reopening message after the effective ones", () => {
    const message = {
      messageId: uuid(11),
      role: "user" as const,
      content: "back",
      metadata: {},
      createdAt: null,
    }
    then(when(expired, { type: "AppendMessages", messages: [message] }), [
      { type: "SessionReopened", command: "AppendMessages" },
      { type: "MessageAppended", seq: 3, ...message },
    ])
  })

  it("refuses what an active session refuses, and then records nothing, not even the reopening", () => {
    refused(
      when(expired, { type: "RecordDraft", ...draftCiting(7) }),
      "InvalidTransition",
      /names revision 7, but the session's revisions are 1 to 1/,
    )
    refused(when(expired, { type: "UpdateSession" }), "InvalidCommand", /needs a new title/)
    refused(
      when(expired, { type: "RollBack", toVersion: 6, checkpointId: null }),
      "InvalidCommand",
      /toVersion: cannot roll back to version 6/,
    )
  })

  it("is archived or deleted without being reopened, and is not expired again", () => {
    then(when(expired, { type: "ArchiveSession", reason: null }), [{ type: "SessionArchived", reason: null }])
    then(when(expired, { type: "DeleteSession", reason: null }), [{ type: "SessionDeleted", reason: null }])
    refused(
      when(expired, { type: "ExpireSession", idleSince: "2026-01-01T00:00:00.000Z", ttlHours: 1 }),
      "InvalidTransition",
      /only an active session can expire; this one is expired/,
    )
  })
})

describe("UpdateSession", () => {
  it("changes only the fields it names", () => {
    then(when(given(), { type: "UpdateSession", title: "x" }), [{ type: "SessionUpdated", title: "x" }])
    then(when(given(), { type: "UpdateSession", metadata: { b: 2 } }), [
      { type: "SessionUpdated", metadata: { b: 2 } },
    ])
    then(when(given(), { type: "UpdateSession", title: null, metadata: {} }), [
      { type: "SessionUpdated", title: null, metadata: {} },
    ])
  })

  it("refuses an update that changes nothing", () => {
    refused(
      when(given(), { type: "UpdateSession" }),
      "InvalidCommand",
      /needs a new title, new metadata or both/,
    )
  })
})

describe("AppendMessages", () => {
  const message = (n: number) => ({
    messageId: uuid(100 + n),
    role: "assistant" as const,
    content: `m${n}`,
    metadata: { n },
    createdAt: n === 1 ? "2025-05-05T05:05:05Z" : null,
  })

  it("numbers messages after the effective ones, one event each", () => {
    then(when(given(), { type: "AppendMessages", messages: [message(1), message(2)] }), [
      { type: "MessageAppended", seq: 3, ...message(1) },
      { type: "MessageAppended", seq: 4, ...message(2) },
    ])
  })

  it("refuses an empty batch", () => {
    refused(
      when(given(), { type: "AppendMessages", messages: [] }),
      "InvalidCommand",
      /messages: at least one message/,
    )
  })

  it("refuses a batch that repeats a message id", () => {
    refused(
      when(given(), { type: "AppendMessages", messages: [message(1), message(2), message(1)] }),
      "InvalidCommand",
      /messages\[2\]\.messageId: .* already used by messages\[0\]/,
    )
  })
})

describe("AddRevision", () => {
  it("numbers the revision after the effective ones", () => {
    then(when(given(), { type: "AddRevision", revisionId: uuid(20), ir: [1], note: "n" }), [
      { type: "RevisionAdded", revisionId: uuid(20), number: 2, ir: [1], note: "n" },
    ])
  })
})

describe("RecordDraft", () => {
  const draft = (revisionNumber: number | null) =>
    ({
      type: "RecordDraft",
      draftId: uuid(30),
      code: "let x = 1",
      language: "ts",
      valid: false,
      metrics: { tests: 3 },
      revisionNumber,
    }) as const

  it("records a draft with no revision or an effective one", () => {
    for (const n of [null, 1, 3]) {
      const { type: _, ...rest } = draft(n)
      then(when(given({ counts: { ...given().counts, revisions: 3 } }), draft(n)), [
        { type: "DraftRecorded", ...rest },
      ])
    }
  })

  it("refuses a revision number that is not an effective revision", () => {
    const state = given({ counts: { ...given().counts, revisions: 3 } })
    for (const n of [0, 4]) {
      refused(
        when(state, draft(n)),
        "InvalidTransition",
        new RegExp(`names revision ${n}, but the session's revisions are 1 to 3`),
      )
    }
    refused(
      when(given({ counts: { ...given().counts, revisions: 0 } }), draft(1)),
      "InvalidTransition",
      /names revision 1, but the session has no revisions/,
    )
  })
})

describe("ResolveHole", () => {
  const resolve = (confidence: number, current: { confidence: number } | null) =>
    ({ type: "ResolveHole", resolutionId: uuid(40), holeId: "h1", value: "v", confidence, current }) as const

  it("resolves a new hole, and re-resolves with equal or higher confidence", () => {
    for (const [confidence, current] of [
      [0.1, null],
      [0.6, { confidence: 0.6 }],
      [0.9, { confidence: 0.6 }],
    ] as const) {
      then(when(given(), resolve(confidence, current)), [
        { type: "HoleResolved", resolutionId: uuid(40), holeId: "h1", value: "v", confidence },
      ])
    }
  })

  it("refuses a resolution less confident than the current one", () => {
    refused(
      when(given(), resolve(0.5, { confidence: 0.8 })),
      "InvalidTransition",
      /hole h1 is resolved with confidence 0.8; a new resolution needs at least that, not 0.5/,
    )
  })
})

describe("files", () => {
  it("attaches the owner's file that is not attached", () => {
    then(when(given(), { type: "AttachFile", file, attached: false }), [
      {
        type: "FileAttached",
        fileId: file.fileId,
        sha256: SHA,
        name: "notes.md",
        mimeType: "text/markdown",
        size: 12,
      },
    ])
  })

  it("does not find another owner's file", () => {
    const error = refused(
      when(given(), { type: "AttachFile", file: { ...file, ownerId: OTHER_OWNER }, attached: false }),
      "NotFound",
      new RegExp(`file ${file.fileId} was not found`),
    )
    expect(error).toMatchObject({ entity: "file", id: file.fileId })
  })

  it("refuses to attach a file that is already attached", () => {
    refused(
      when(given(), { type: "AttachFile", file, attached: true }),
      "InvalidTransition",
      /file .* is already attached/,
    )
  })

  it("detaches an attached file", () => {
    then(when(given(), { type: "DetachFile", fileId: file.fileId, attached: true }), [
      { type: "FileDetached", fileId: file.fileId },
    ])
  })

  it("does not find a file to detach that is not attached", () => {
    refused(
      when(given(), { type: "DetachFile", fileId: file.fileId, attached: false }),
      "NotFound",
      new RegExp(`attached file ${file.fileId} was not found`),
    )
  })
})

describe("RecordToolRun", () => {
  it("records the run as given", () => {
    then(
      when(given(), {
        type: "RecordToolRun",
        toolRunId: uuid(60),
        tool: "search",
        input: { q: "x" },
        output: null,
        status: "failed",
        durationMs: null,
        error: "timeout",
      }),
      [
        {
          type: "ToolRunRecorded",
          toolRunId: uuid(60),
          tool: "search",
          input: { q: "x" },
          output: null,
          status: "failed",
          durationMs: null,
          error: "timeout",
        },
      ],
    )
  })
})

describe("CreateCheckpoint", () => {
  it("marks the current version and cursor", () => {
    then(when(given(), { type: "CreateCheckpoint", checkpointId: uuid(70), label: "before refactor" }), [
      {
        type: "CheckpointCreated",
        checkpointId: uuid(70),
        version: 5,
        cursor: "cursor-5",
        label: "before refactor",
      },
    ])
  })
})

describe("RollBack", () => {
  it("rolls back to any version from 1 to the one before the current", () => {
    for (const toVersion of [1, 4]) {
      then(when(given(), { type: "RollBack", toVersion, checkpointId: uuid(70) }), [
        { type: "SessionRolledBack", toVersion, checkpointId: uuid(70) },
      ])
    }
  })

  it("refuses a version that is not before the current one", () => {
    for (const toVersion of [0, 5, 6, 1.5]) {
      refused(
        when(given(), { type: "RollBack", toVersion, checkpointId: null }),
        "InvalidCommand",
        new RegExp(`toVersion: cannot roll back to version ${toVersion}: it must be between 1 and 4`),
      )
    }
  })

  it("refuses any rollback of a session at version 1", () => {
    refused(
      when(given({ version: 1 }), { type: "RollBack", toVersion: 1, checkpointId: null }),
      "InvalidCommand",
      /at version 1, with nothing before it/,
    )
  })
})
