import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  decideSession,
  effectiveVersions,
  foldSession,
  forkSession,
  indexSession,
  type ResolveParent,
  type SessionCommand,
  type SessionEvent,
  type SessionEventRecord,
  type SessionView,
  startSession,
  type VersionRange,
} from "../src/index.ts"
import {
  append,
  asOfContent,
  assertValidSessionEvents,
  OWNER,
  ok,
  parents,
  record,
  revertible,
  SHA,
  snapshotOf,
  uuid,
} from "./support.ts"

// ----- random command sequences ---------------------------------------------------------------

/** A fraction in [0, 1) used to pick a version, a revision or a checkpoint from what exists. */
const pick = fc.integer({ min: 0, max: 999 }).map((n) => n / 1000)

type Step =
  | { readonly kind: "messages"; readonly count: number }
  | { readonly kind: "revision" }
  | { readonly kind: "draft"; readonly cite: boolean; readonly pick: number }
  | { readonly kind: "hole"; readonly hole: number; readonly confidence: number }
  | { readonly kind: "attach"; readonly file: number }
  | { readonly kind: "detach"; readonly file: number }
  | { readonly kind: "toolRun" }
  | { readonly kind: "checkpoint" }
  | { readonly kind: "rollback"; readonly pick: number }
  | { readonly kind: "rollbackToCheckpoint"; readonly pick: number }
  | { readonly kind: "update"; readonly title: boolean; readonly metadata: boolean; readonly value: number }
  | { readonly kind: "expire" }

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("messages"), count: fc.integer({ min: 1, max: 3 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("revision") }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("draft"), cite: fc.boolean(), pick }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("hole"),
      hole: fc.integer({ min: 0, max: 2 }),
      confidence: fc.integer({ min: 0, max: 10 }).map((n) => n / 10),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("attach"), file: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("detach"), file: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("toolRun") }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("checkpoint") }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("rollback"), pick }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("rollbackToCheckpoint"), pick }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("update"),
      title: fc.boolean(),
      metadata: fc.boolean(),
      value: fc.integer({ min: 0, max: 3 }),
    }),
  },
  // The sweep expiring an idle session; whatever comes next reopens it.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire") }) },
)

const steps = (maxLength: number) => fc.array(step, { maxLength, size: "max" })

const fileIds = [uuid(0xf00), uuid(0xf01), uuid(0xf02)]

/** A session under test: its log, and what was observed while it was written. */
interface Simulation {
  readonly log: Array<SessionEventRecord>
  readonly stream: number
  readonly parent: ResolveParent | undefined
  /** For each checkpoint: the version it marks and the content read when it was taken. */
  readonly checkpoints: Array<{ readonly version: number; readonly content: ReturnType<typeof asOfContent> }>
  ids: number
}

const fold = (sim: Simulation, asOf?: number): SessionView =>
  foldSession(sim.log, {
    ...(asOf === undefined ? {} : { asOf }),
    ...(sim.parent === undefined ? {} : { parent: sim.parent }),
  })

const nextId = (sim: Simulation): string => uuid(sim.stream * 0x10000 + ++sim.ids)

/** The command a step stands for, given what the session reads now, and whether the rules allow it. */
const commandFor = (
  sim: Simulation,
  s: Step,
  current: SessionView,
): { readonly command: SessionCommand; readonly allowed: boolean } => {
  const attached = (fileId: string) => current.files.some((f) => f.fileId === fileId)
  switch (s.kind) {
    case "messages":
      return {
        command: {
          type: "AppendMessages",
          messages: Array.from({ length: s.count }, (_, i) => ({
            messageId: nextId(sim),
            role: i % 2 === 0 ? ("user" as const) : ("assistant" as const),
            content: `message ${sim.ids}`,
            metadata: {},
            createdAt: null,
          })),
        },
        allowed: true,
      }
    case "revision":
      return {
        command: { type: "AddRevision", revisionId: nextId(sim), ir: { n: sim.ids }, note: null },
        allowed: true,
      }
    case "draft": {
      // Sometimes one past the last revision, which the rules refuse.
      const revisionNumber = s.cite ? Math.floor(s.pick * (current.counts.revisions + 2)) : null
      return {
        command: {
          type: "RecordDraft",
          draftId: nextId(sim),
          code: "code",
          language: "ts",
          valid: sim.ids % 2 === 0,
          metrics: {},
          revisionNumber,
        },
        allowed:
          revisionNumber === null || (revisionNumber >= 1 && revisionNumber <= current.counts.revisions),
      }
    }
    case "hole": {
      const holeId = `hole-${s.hole}`
      const latest = current.holeResolutions.filter((r) => r.holeId === holeId).at(-1)
      return {
        command: {
          type: "ResolveHole",
          resolutionId: nextId(sim),
          holeId,
          value: s.confidence,
          confidence: s.confidence,
          current: latest === undefined ? null : { confidence: latest.confidence },
        },
        allowed: latest === undefined || s.confidence >= latest.confidence,
      }
    }
    case "attach": {
      const fileId = fileIds[s.file]!
      return {
        command: {
          type: "AttachFile",
          file: {
            fileId,
            ownerId: OWNER,
            sha256: SHA,
            name: `file-${s.file}`,
            mimeType: "text/plain",
            size: s.file,
          },
          attached: attached(fileId),
        },
        allowed: !attached(fileId),
      }
    }
    case "detach": {
      const fileId = fileIds[s.file]!
      return {
        command: { type: "DetachFile", fileId, attached: attached(fileId) },
        allowed: attached(fileId),
      }
    }
    case "toolRun":
      return {
        command: {
          type: "RecordToolRun",
          toolRunId: nextId(sim),
          tool: "run",
          input: {},
          output: {},
          status: "succeeded",
          durationMs: 1,
          error: null,
        },
        allowed: true,
      }
    case "checkpoint":
      return { command: { type: "CreateCheckpoint", checkpointId: nextId(sim), label: null }, allowed: true }
    case "rollback": {
      const toVersion = 1 + Math.floor(s.pick * (current.version - 1))
      return {
        command: { type: "RollBack", toVersion, checkpointId: null },
        allowed: toVersion < current.version,
      }
    }
    case "rollbackToCheckpoint": {
      const checkpoint = current.checkpoints[Math.floor(s.pick * current.checkpoints.length)]
      return checkpoint === undefined
        ? { command: { type: "RollBack", toVersion: current.version, checkpointId: null }, allowed: false }
        : {
            command: {
              type: "RollBack",
              toVersion: checkpoint.version,
              checkpointId: checkpoint.checkpointId,
            },
            allowed: true,
          }
    }
    case "update":
      return {
        command: {
          type: "UpdateSession",
          ...(s.title ? { title: s.value === 0 ? null : `title ${s.value}` } : {}),
          ...(s.metadata ? { metadata: { v: s.value } } : {}),
        },
        allowed: s.title || s.metadata,
      }
    case "expire":
      return {
        command: { type: "ExpireSession", idleSince: "2026-01-01T00:00:00.000Z", ttlHours: 24 },
        allowed: current.status === "active",
      }
  }
}

/** Decides a command against what the session reads now and appends the events; checks (d) on every rollback. */
const execute = (sim: Simulation, command: SessionCommand, allowed: boolean): void => {
  const current = fold(sim)
  const result = decideSession(command, snapshotOf(current))
  expect(result._tag).toBe(allowed ? "Success" : "Failure")
  if (result._tag === "Failure") return
  const events = result.success
  assertValidSessionEvents(events)
  if (command.type === "CreateCheckpoint") {
    sim.checkpoints.push({ version: current.version, content: asOfContent(current) })
  }
  const restored = command.type === "RollBack" ? revertible(fold(sim, command.toVersion)) : undefined
  append(sim.log, events, sim.stream)
  if (restored !== undefined) {
    // (d) right after a rollback to T, the session reads as it read at T (tool runs aside: never reverted).
    const after = fold(sim)
    expect(revertible(after)).toEqual(restored)
    expect(after.toolRuns).toEqual(current.toolRuns)
  }
}

const run = (sim: Simulation, s: Step): void => {
  const { command, allowed } = commandFor(sim, s, fold(sim))
  execute(sim, command, allowed)
}

const startParent = (): Simulation => ({
  log: record([
    startSession({ sessionId: uuid(1), ownerId: OWNER, title: "start", metadata: {}, externalKey: null }),
  ]),
  stream: 0,
  parent: undefined,
  checkpoints: [],
  ids: 0,
})

const simulate = (sim: Simulation, ss: ReadonlyArray<Step>): Simulation => {
  for (const s of ss) run(sim, s)
  return sim
}

// ----- brute force E(X) ---------------------------------------------------------------------

/** E(0), E(1) … E(n) straight from the recursive definition. */
const bruteForceE = (log: ReadonlyArray<{ readonly event: SessionEvent }>): Array<Set<number>> => {
  const e: Array<Set<number>> = [new Set()]
  log.forEach(({ event }, i) => {
    const v = i + 1
    const before = event.type === "SessionRolledBack" ? e[event.toVersion]! : e[v - 1]!
    e.push(new Set([...before, v]))
  })
  return e
}

const expand = (ranges: ReadonlyArray<VersionRange>): Array<number> =>
  ranges.flatMap(([from, to]) => Array.from({ length: to - from + 1 }, (_, i) => from + i))

const expectCanonical = (ranges: ReadonlyArray<VersionRange>): void => {
  ranges.forEach(([from, to], i) => {
    expect(from).toBeLessThanOrEqual(to)
    if (i > 0) expect(from).toBeGreaterThan(ranges[i - 1]![1] + 1)
  })
}

/** Raw logs with arbitrary rollbacks (the deciders' rules aside), for the E(X) property. */
const rawLog = fc
  .array(fc.record({ rollback: fc.boolean(), pick }), { maxLength: 60, size: "max" })
  .map((entries) =>
    record([
      startSession({ sessionId: uuid(1), ownerId: OWNER, title: null, metadata: {}, externalKey: null }),
      ...entries.map(({ rollback, pick }, i): SessionEvent => {
        const version = i + 2
        return rollback
          ? { type: "SessionRolledBack", toVersion: 1 + Math.floor(pick * (version - 1)), checkpointId: null }
          : {
              type: "ToolRunRecorded",
              toolRunId: uuid(i + 2),
              tool: "t",
              input: 0,
              output: 0,
              status: "succeeded",
              durationMs: null,
              error: null,
            }
      }),
    ]),
  )

// ----- properties ---------------------------------------------------------------------------

const RUNS = 300

describe("session properties", () => {
  it("(a) the state as of a checkpoint is the state read when it was taken, whatever came later", () => {
    fc.assert(
      fc.property(steps(40), (ss) => {
        const sim = simulate(startParent(), ss)
        const index = indexSession(sim.log)
        for (const checkpoint of sim.checkpoints) {
          expect(asOfContent(fold(sim, checkpoint.version))).toEqual(checkpoint.content)
          expect(asOfContent(index.asOf(checkpoint.version))).toEqual(checkpoint.content)
        }
      }),
      { numRuns: RUNS },
    )
  })

  it("(b) counts equal list lengths, and seq and revision numbers run 1..n, as of every version", () => {
    fc.assert(
      fc.property(steps(40), (ss) => {
        const sim = simulate(startParent(), ss)
        for (let x = 1; x <= sim.log.length; x++) {
          const view = fold(sim, x)
          expect(view.counts).toEqual({
            messages: view.messages.length,
            revisions: view.revisions.length,
            drafts: view.drafts.length,
            holes: view.holeResolutions.length,
            files: view.files.length,
            toolRuns: view.toolRuns.length,
          })
          expect(view.messages.map((m) => m.seq)).toEqual(view.messages.map((_, i) => i + 1))
          expect(view.revisions.map((r) => r.number)).toEqual(view.revisions.map((_, i) => i + 1))
          expect(new Set(view.files.map((f) => f.fileId)).size).toBe(view.files.length)
        }
      }),
      { numRuns: RUNS },
    )
  })

  it("(c) effectiveVersions agrees with the recursive definition of E(X)", () => {
    const check = (log: ReadonlyArray<SessionEventRecord>) => {
      const index = indexSession(log)
      const e = bruteForceE(log)
      for (let x = 0; x <= log.length; x++) {
        const ranges = effectiveVersions(log, x)
        expectCanonical(ranges)
        expect(expand(ranges)).toEqual([...e[x]!].sort((a, b) => a - b))
        expect(index.effectiveVersions(x)).toEqual(ranges)
      }
    }
    fc.assert(fc.property(rawLog, check), { numRuns: RUNS })
    fc.assert(
      fc.property(steps(40), (ss) => check(simulate(startParent(), ss).log)),
      { numRuns: RUNS / 3 },
    )
  })

  it("(d) a rollback to T followed by nothing reads as of T (checked at every rollback)", () => {
    fc.assert(
      fc.property(steps(40), pick, (ss, p) => {
        const sim = simulate(startParent(), ss)
        if (sim.log.length < 2) return
        const target = 1 + Math.floor(p * (sim.log.length - 1))
        const expected = revertible(fold(sim, target))
        execute(sim, { type: "RollBack", toVersion: target, checkpointId: null }, true)
        expect(revertible(fold(sim))).toEqual(expected)
        expect(revertible(fold(sim, target))).toEqual(expected)
      }),
      { numRuns: RUNS },
    )
  })

  it("(e) a fork reads as its parent as of the fork version, and the child's own history behaves", () => {
    fc.assert(
      fc.property(steps(30), pick, steps(20), (parentSteps, p, childSteps) => {
        const parent = simulate(startParent(), parentSteps)
        const atVersion = 1 + Math.floor(p * parent.log.length)
        const parentAsOf = fold(parent, atVersion)
        const forked = ok(
          forkSession(snapshotOf(fold(parent)), {
            sessionId: uuid(2),
            ownerId: OWNER,
            atVersion,
            checkpointId: null,
            parentAsOf: { title: parentAsOf.title, metadata: parentAsOf.metadata },
          }),
        )
        assertValidSessionEvents([forked])
        const resolve = parents({ [uuid(1)]: parent.log }, (log, x) => foldSession(log, { asOf: x }))
        const child: Simulation = {
          log: record([forked], 1),
          stream: 1,
          parent: resolve,
          checkpoints: [],
          ids: 0,
        }
        const atOne = (view: SessionView) => ({
          title: view.title,
          metadata: view.metadata,
          counts: view.counts,
          messages: view.messages.map((row) => ({ ...row, version: 1 })),
          revisions: view.revisions.map((row) => ({ ...row, version: 1 })),
          drafts: view.drafts.map((row) => ({ ...row, version: 1 })),
          holeResolutions: view.holeResolutions.map((row) => ({ ...row, version: 1 })),
          files: view.files.map((row) => ({ ...row, version: 1 })),
          toolRuns: view.toolRuns.map((row) => ({ ...row, version: 1 })),
        })
        const expected = atOne(parentAsOf)
        expect(asOfContent(fold(child))).toEqual(expected)
        expect(fold(child)).toMatchObject({ parentId: uuid(1), parentVersion: atVersion, checkpoints: [] })

        simulate(child, childSteps)
        expect(asOfContent(fold(child, 1))).toEqual(expected)
        const index = indexSession(child.log, resolve)
        for (const checkpoint of child.checkpoints) {
          expect(asOfContent(fold(child, checkpoint.version))).toEqual(checkpoint.content)
        }
        for (let x = 1; x <= child.log.length; x++) expect(index.asOf(x)).toEqual(fold(child, x))
      }),
      { numRuns: RUNS / 2 },
    )
  })

  it("the index answers every as-of read exactly as the fold does", () => {
    fc.assert(
      fc.property(steps(40), (ss) => {
        const sim = simulate(startParent(), ss)
        const index = indexSession(sim.log)
        for (let x = 1; x <= sim.log.length; x++) expect(index.asOf(x)).toEqual(fold(sim, x))
        expect(index.timeline().map((e) => e.reverted)).toEqual(
          sim.log.map(
            (r) =>
              [
                "SessionUpdated",
                "MessageAppended",
                "RevisionAdded",
                "DraftRecorded",
                "HoleResolved",
                "FileAttached",
                "FileDetached",
              ].includes(r.event.type) && !bruteForceE(sim.log)[sim.log.length]!.has(r.version),
          ),
        )
      }),
      { numRuns: RUNS },
    )
  })
})
