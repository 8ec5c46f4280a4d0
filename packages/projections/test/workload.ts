/**
 * Random session histories for property tests: abstract operations, turned into the events a
 * decider would append given the session's current state (seq and revision numbers follow
 * the effective lists, only attached files are detached, rollbacks target 1..version-1).
 */
import { randomUUID } from "node:crypto"
import type { ChronicleEvent, JsonObject } from "@chronicle/events"
import { EventStore } from "@chronicle/store"
import { Effect } from "effect"
import fc from "fast-check"
import {
  currentState,
  ev,
  fileStream,
  type Harness,
  jobStream,
  type SessionState,
  sandboxStream,
  sessionStream,
  sha,
} from "./support.ts"

export type Op =
  | { readonly kind: "message"; readonly role: "user" | "assistant" }
  | { readonly kind: "revision" }
  | { readonly kind: "draft"; readonly valid: boolean }
  | { readonly kind: "hole"; readonly hole: number; readonly confidence: number }
  | { readonly kind: "title"; readonly title: string | null }
  | { readonly kind: "metadata"; readonly n: number }
  | { readonly kind: "attach"; readonly file: number }
  | { readonly kind: "detach"; readonly file: number }
  | { readonly kind: "toolRun" }
  | { readonly kind: "checkpoint" }
  | { readonly kind: "rollback"; readonly fraction: number }

const fraction = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({ kind: fc.constant("message"), role: fc.constantFrom("user", "assistant") }),
    weight: 5,
  },
  { arbitrary: fc.record({ kind: fc.constant("revision") }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("draft"), valid: fc.boolean() }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant("hole"),
      hole: fc.integer({ min: 0, max: 2 }),
      confidence: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("title"), title: fc.option(fc.string({ maxLength: 12 })) }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant("metadata"), n: fc.integer({ min: 0, max: 9 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("attach"), file: fc.integer({ min: 0, max: 2 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("detach"), file: fc.integer({ min: 0, max: 2 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("toolRun") }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("checkpoint") }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("rollback"), fraction }), weight: 3 },
)

export const historyArb = fc.array(opArb, { minLength: 1, maxLength: 30 })

export interface PlayedSession {
  readonly id: string
  readonly owner: string
  /** The state read right after each version was appended (every version 1..last is here). */
  readonly states: ReadonlyMap<number, SessionState>
  /** Rollbacks by the version they were appended at: version → toVersion. */
  readonly rollbacks: ReadonlyMap<number, number>
  readonly version: number
}

const toEvent = (
  op: Op,
  state: SessionState,
  files: ReadonlyArray<string>,
  lastCursor: string,
): ChronicleEvent | undefined => {
  const attached = new Set(state.files.map((f) => (f as ReadonlyArray<unknown>)[0]))
  switch (op.kind) {
    case "message":
      return ev.message(state.counts.messages + 1, `m${state.version}`, { role: op.role })
    case "revision":
      return ev.revision(state.counts.revisions + 1)
    case "draft":
      return ev.draft({
        valid: op.valid,
        revisionNumber: state.counts.revisions > 0 ? state.counts.revisions : null,
      })
    case "hole":
      return ev.hole(`h${op.hole}`, op.confidence)
    case "title":
      return ev.updated({ title: op.title })
    case "metadata":
      return ev.updated({ metadata: { n: op.n } })
    case "attach":
      return attached.has(files[op.file]) ? undefined : ev.attach(files[op.file]!)
    case "detach":
      return attached.has(files[op.file]) ? ev.detach(files[op.file]!) : undefined
    case "toolRun":
      return ev.toolRun()
    case "checkpoint":
      return ev.checkpoint(state.version, lastCursor)
    case "rollback":
      return state.version >= 2 ? ev.rolledBack(1 + Math.floor(op.fraction * (state.version - 1))) : undefined
  }
}

/** Starts a session and appends one event per operation that applies, reading the state after each. */
export const playSession = async (h: Harness, ops: ReadonlyArray<Op>): Promise<PlayedSession> => {
  const id = randomUUID()
  const owner = randomUUID()
  const stream = sessionStream(id)
  const files = [randomUUID(), randomUUID(), randomUUID()]
  const states = new Map<number, SessionState>()
  const rollbacks = new Map<number, number>()
  const started = await h.append(stream, [ev.started(id, owner, { title: "t0", metadata: { n: 0 } })], {
    expectedVersion: "no_stream",
    ownerId: owner,
  })
  let cursor = String(started.events[0]!.globalPosition)
  let state = await currentState(h, id)
  states.set(1, state)
  for (const op of ops) {
    const event = toEvent(op, state, files, cursor)
    if (event === undefined) continue
    const result = await h.append(stream, [event], { expectedVersion: state.version })
    if (event.type === "SessionRolledBack") rollbacks.set(result.version, event.toVersion)
    cursor = String(result.events[0]!.globalPosition)
    state = await currentState(h, id)
    states.set(result.version, state)
  }
  return { id, owner, states, rollbacks, version: state.version }
}

/** Forks `parent` as of version `at` the way the domain does: the parent's title and metadata as of then. */
export const forkSession = async (h: Harness, parent: PlayedSession, at: number) => {
  const asOf = parent.states.get(at)
  if (!asOf) throw new Error(`no state at version ${at}`)
  const childId = randomUUID()
  await h.append(sessionStream(childId), [
    ev.forked({
      sessionId: childId,
      ownerId: parent.owner,
      parentId: parent.id,
      atVersion: at,
      title: asOf.title,
      metadata: asOf.metadata as JsonObject,
    }),
  ])
  return { childId, asOf }
}

/** A log with every kind of stream and content: random session histories, forks, jobs, files, sandboxes. */
export const fillLog = async (h: Harness) => {
  const histories = fc.sample(historyArb, { numRuns: 6, seed: 20261123 })
  const sessions = await Promise.all(histories.map((ops) => playSession(h, ops)))
  for (const [i, parent] of sessions.entries()) {
    const { childId } = await forkSession(h, parent, 1 + (i % parent.version))
    if (i % 2 === 0)
      await h.append(`session-${childId}`, [ev.message(99, "after the fork"), ev.rolledBack(1)])
  }

  const appendEach = async (streamId: string, events: ReadonlyArray<ChronicleEvent>) => {
    for (const event of events) await h.append(streamId, [event])
  }
  // One session with every kind of content, whatever the random histories held.
  const everything = randomUUID()
  const file = randomUUID()
  const started = await h.append(`session-${everything}`, [ev.started(everything, randomUUID())])
  await appendEach(`session-${everything}`, [
    ev.message(1, "m"),
    ev.revision(1),
    ev.draft({ revisionNumber: 1 }),
    ev.hole("h", 0.5),
    ev.attach(file),
    ev.detach(file),
    ev.toolRun(),
    ev.checkpoint(1, String(started.events[0]!.globalPosition)),
    ev.rolledBack(2),
  ])
  for (const [i, session] of sessions.slice(0, 3).entries()) {
    const jobId = randomUUID()
    const taskId = randomUUID()
    await appendEach(jobStream(jobId), [
      ev.jobCreated(jobId, session.owner, { sessionId: i === 2 ? null : session.id }),
      { type: "JobStarted", worker: "w" },
      { type: "TaskAdded", taskId, name: "step", input: {} },
      { type: "JobProgressed", progress: 0.5, message: "half" },
      ev.taskUpdated(taskId, { status: "completed", output: { ok: true }, progress: 1 }),
      i === 1
        ? { type: "JobFailed", error: "boom", details: { at: "step" } }
        : { type: "JobCompleted", output: [i] },
      ev.artifact(),
    ])
    const fileId = randomUUID()
    await h.append(fileStream(fileId), [ev.fileUploaded(fileId, session.owner, { sha256: sha(String(i)) })])
    const sandboxId = randomUUID()
    await appendEach(sandboxStream(sandboxId), [
      ev.sandboxRegistered(sandboxId, session.id, session.owner),
      { type: "SandboxStatusChanged", status: "running", reason: null, url: "https://sbx.example" },
      ...(i === 0
        ? []
        : [{ type: "SandboxStatusChanged", status: "stopped", reason: null, url: null } as const]),
    ])
  }
  const archived = sessions[0]!
  await h.append(`session-${archived.id}`, [ev.archived()])
  await h.run(
    Effect.flatMap(EventStore, (s) =>
      Effect.all([
        s.append(`session-${randomUUID()}`, [{ type: "MessageAppended", data: { n: 1 } }]),
        s.append(`session-${archived.id}`, [{ type: "Annotated", data: { note: "kept in the log only" } }]),
        s.append(`thread-${randomUUID()}`, [{ type: "Other", data: {} }]),
      ]),
    ),
  )
}
