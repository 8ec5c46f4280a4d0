/**
 * Remote execution sandboxes: registration, the status decider and the in-memory fold of a
 * `sandbox-<id>` stream. starting → running → stopped | failed | expired; starting may also go
 * straight to an end state; end states are final. A sandbox is never reverted by a session rollback.
 */
import { Result } from "effect"
import type { SandboxEvent } from "./catalog.ts"
import { InvalidTransition } from "./errors.ts"
import type { JsonObject, SandboxStatus } from "./primitives.ts"
import { assertContiguous, type RecordedEvent } from "./recorded.ts"

type SandboxRegistered = Extract<SandboxEvent, { readonly type: "SandboxRegistered" }>

/** A sandbox event as read from the `sandbox-<id>` stream. */
export type SandboxEventRecord = RecordedEvent<SandboxEvent>

/** Where each status may go next; the end states go nowhere. */
export const SANDBOX_TRANSITIONS: Readonly<Record<SandboxStatus, ReadonlyArray<SandboxStatus>>> = {
  starting: ["running", "stopped", "failed", "expired"],
  running: ["stopped", "failed", "expired"],
  stopped: [],
  failed: [],
  expired: [],
}

/** What the domain loads from the `sandboxes` read model before deciding. */
export interface SandboxSnapshot {
  readonly id: string
  readonly sessionId: string
  readonly ownerId: string
  readonly status: SandboxStatus
  readonly version: number
}

export interface ChangeSandboxStatus {
  readonly type: "ChangeSandboxStatus"
  readonly status: SandboxStatus
  readonly reason: string | null
  /** The sandbox's URL if it is now known or changed; null leaves it as it was. */
  readonly url: string | null
}

export type SandboxCommand = ChangeSandboxStatus

export type SandboxDecision = Result.Result<ReadonlyArray<SandboxEvent>, InvalidTransition>

/** Registers a sandbox for a session; it starts in `starting`. */
export const registerSandbox = (input: {
  readonly sandboxId: string
  readonly sessionId: string
  readonly ownerId: string
  readonly provider: string
  readonly externalId: string
  readonly url: string | null
  readonly metadata: JsonObject
}): SandboxRegistered => ({
  type: "SandboxRegistered",
  sandboxId: input.sandboxId,
  sessionId: input.sessionId,
  ownerId: input.ownerId,
  provider: input.provider,
  externalId: input.externalId,
  url: input.url,
  metadata: input.metadata,
})

/** Decides a status change: the event to append, or why the sandbox cannot go there. */
export const decideSandbox = (command: SandboxCommand, state: SandboxSnapshot): SandboxDecision => {
  const next = SANDBOX_TRANSITIONS[state.status]
  if (!next.includes(command.status)) {
    return Result.fail(
      new InvalidTransition({
        entity: "sandbox",
        id: state.id,
        state: state.status,
        action: `move to ${command.status}`,
        reason:
          next.length === 0
            ? `the sandbox is ${state.status}, and a ${state.status} sandbox is final`
            : `a ${state.status} sandbox can only become ${next.join(", ")}`,
      }),
    )
  }
  return Result.succeed([
    { type: "SandboxStatusChanged", status: command.status, reason: command.reason, url: command.url },
  ])
}

/** A sandbox as its `sandboxes` row reads. */
export interface SandboxView {
  readonly id: string
  readonly sessionId: string
  readonly ownerId: string
  readonly provider: string
  readonly externalId: string
  readonly url: string | null
  readonly status: SandboxStatus
  readonly metadata: JsonObject
  readonly version: number
  readonly createdAt: string
  readonly updatedAt: string
  /** When it first became running. */
  readonly startedAt: string | null
  /** When it reached an end state. */
  readonly endedAt: string | null
}

/** Folds a sandbox's whole stream. */
export const foldSandbox = (events: ReadonlyArray<SandboxEventRecord>): SandboxView => {
  assertContiguous(events, "foldSandbox")
  const first = events[0]
  if (first === undefined || first.event.type !== "SandboxRegistered") {
    throw new RangeError(
      `a sandbox stream starts with SandboxRegistered, not ${first?.event.type ?? "nothing"}`,
    )
  }
  const registered = first.event
  let view: SandboxView = {
    id: registered.sandboxId,
    sessionId: registered.sessionId,
    ownerId: registered.ownerId,
    provider: registered.provider,
    externalId: registered.externalId,
    url: registered.url,
    status: "starting",
    metadata: registered.metadata,
    version: 1,
    createdAt: first.recordedAt,
    updatedAt: first.recordedAt,
    startedAt: null,
    endedAt: null,
  }
  for (const { version, event, recordedAt } of events.slice(1)) {
    if (event.type === "SandboxRegistered") {
      throw new RangeError(
        `SandboxRegistered at version ${version}: a sandbox is registered once, at version 1`,
      )
    }
    if (event.type === "SandboxPurged") {
      // An erasure: its content is already redacted in the events before it.
      view = { ...view, version, updatedAt: recordedAt }
      continue
    }
    const ended = SANDBOX_TRANSITIONS[event.status].length === 0
    view = {
      ...view,
      version,
      updatedAt: recordedAt,
      status: event.status,
      url: event.url ?? view.url,
      startedAt: view.startedAt ?? (event.status === "running" ? recordedAt : null),
      endedAt: ended ? (view.endedAt ?? recordedAt) : view.endedAt,
    }
  }
  return view
}
