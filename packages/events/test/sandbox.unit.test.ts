import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  decideSandbox,
  foldSandbox,
  registerSandbox,
  SandboxEvent,
  type SandboxEventRecord,
  type SandboxSnapshot,
  type SandboxStatus,
} from "../src/index.ts"
import { at, OWNER, ok, refused, uuid } from "./support.ts"

const SANDBOX = uuid(0x5b)
const SESSION = uuid(1)

const given = (status: SandboxStatus): SandboxSnapshot => ({
  id: SANDBOX,
  sessionId: SESSION,
  ownerId: OWNER,
  status,
  version: 2,
})

const registered = registerSandbox({
  sandboxId: SANDBOX,
  sessionId: SESSION,
  ownerId: OWNER,
  provider: "e2b",
  externalId: "sbx-1",
  url: null,
  metadata: { template: "node" },
})

const statuses: ReadonlyArray<SandboxStatus> = ["starting", "running", "stopped", "failed", "expired"]

/** docs/DOMAIN.md: starting → running → stopped | failed | expired; starting may go straight to an end. */
const allowed: ReadonlyArray<readonly [SandboxStatus, SandboxStatus]> = [
  ["starting", "running"],
  ["starting", "stopped"],
  ["starting", "failed"],
  ["starting", "expired"],
  ["running", "stopped"],
  ["running", "failed"],
  ["running", "expired"],
]

describe("registerSandbox", () => {
  it("registers a sandbox for a session", () => {
    expect(registered).toEqual({
      type: "SandboxRegistered",
      sandboxId: SANDBOX,
      sessionId: SESSION,
      ownerId: OWNER,
      provider: "e2b",
      externalId: "sbx-1",
      url: null,
      metadata: { template: "node" },
    })
    Schema.decodeUnknownSync(SandboxEvent)(registered)
  })
})

describe("the sandbox state machine", () => {
  for (const from of statuses) {
    for (const to of statuses) {
      const isAllowed = allowed.some(([a, b]) => a === from && b === to)
      it(`${isAllowed ? "allows" : "refuses"} ${from} → ${to}`, () => {
        const result = decideSandbox(
          { type: "ChangeSandboxStatus", status: to, reason: "r", url: null },
          given(from),
        )
        if (isAllowed) {
          expect(ok(result)).toEqual([{ type: "SandboxStatusChanged", status: to, reason: "r", url: null }])
        } else {
          const error = refused(
            result,
            "InvalidTransition",
            ["stopped", "failed", "expired"].includes(from)
              ? new RegExp(
                  `Cannot move to ${to} sandbox .*: the sandbox is ${from}, and a ${from} sandbox is final`,
                )
              : new RegExp(`Cannot move to ${to} sandbox .*: a ${from} sandbox can only become `),
          )
          expect(error).toMatchObject({ entity: "sandbox", id: SANDBOX, state: from })
        }
      })
    }
  }
})

const recorded = (events: ReadonlyArray<SandboxEvent>): Array<SandboxEventRecord> =>
  events.map((event, i) => ({ version: i + 1, event, recordedAt: at(i + 1, 9) }))

describe("foldSandbox", () => {
  it("tracks status, the latest known URL, and when it started and ended", () => {
    const log = recorded([
      registered,
      { type: "SandboxStatusChanged", status: "running", reason: null, url: "https://sbx-1.example" },
      { type: "SandboxStatusChanged", status: "stopped", reason: "done", url: null },
    ])
    expect(foldSandbox(log.slice(0, 1))).toMatchObject({
      status: "starting",
      url: null,
      startedAt: null,
      endedAt: null,
    })
    expect(foldSandbox(log)).toEqual({
      id: SANDBOX,
      sessionId: SESSION,
      ownerId: OWNER,
      provider: "e2b",
      externalId: "sbx-1",
      url: "https://sbx-1.example",
      status: "stopped",
      metadata: { template: "node" },
      version: 3,
      createdAt: at(1, 9),
      updatedAt: at(3, 9),
      startedAt: at(2, 9),
      endedAt: at(3, 9),
    })
  })

  it("ends a sandbox that never ran", () => {
    const view = foldSandbox(
      recorded([
        registered,
        { type: "SandboxStatusChanged", status: "failed", reason: "no capacity", url: null },
      ]),
    )
    expect(view).toMatchObject({ status: "failed", startedAt: null, endedAt: at(2, 9) })
  })

  it("needs a stream that starts with SandboxRegistered", () => {
    expect(() =>
      foldSandbox(recorded([{ type: "SandboxStatusChanged", status: "running", reason: null, url: null }])),
    ).toThrow(/starts with SandboxRegistered/)
  })
})
