/**
 * Shared by the projection tests: event builders, a harness over one fresh database, and
 * readers of a session's state (current, from the stored columns; or as of a version,
 * computed from chronicle.effective_versions) in a shape that two states can be compared in.
 */
import { randomUUID } from "node:crypto"
import {
  type ArtifactRecorded,
  type CheckpointCreated,
  type ChronicleEvent,
  type DraftRecorded,
  type FileAttached,
  type FileUploaded,
  type HoleResolved,
  type JobCreated,
  type MessageAppended,
  type RevisionAdded,
  type SandboxRegistered,
  type SessionForked,
  type SessionStarted,
  type TaskUpdated,
  type ToolRunRecorded,
  toStored,
} from "@chronicle/events"
import {
  type AppendOptions,
  type AppendResult,
  Database,
  EventStore,
  type EventStoreOptions,
} from "@chronicle/store"
import { makeTestRuntime, type TestDatabase, type TestRuntime } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { Cause, Effect, Exit } from "effect"
import { afterAll, beforeAll, inject } from "vitest"

export const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

// ----- event builders ---------------------------------------------------------------------

type Fields<E> = Omit<E, "type">
type Overrides<E> = Partial<Fields<E>>

export const sha = (seed: string) => seed.repeat(64).slice(0, 64)

export const ev = {
  started: (
    sessionId: string,
    ownerId: string,
    o: Overrides<typeof SessionStarted.Type> = {},
  ): ChronicleEvent => ({
    type: "SessionStarted",
    sessionId,
    ownerId,
    title: null,
    metadata: {},
    externalKey: null,
    ...o,
  }),
  forked: (
    f: Pick<Fields<typeof SessionForked.Type>, "sessionId" | "ownerId" | "parentId" | "atVersion"> &
      Overrides<typeof SessionForked.Type>,
  ): ChronicleEvent => ({
    type: "SessionForked",
    checkpointId: null,
    title: null,
    metadata: {},
    externalKey: null,
    ...f,
  }),
  updated: (o: {
    title?: string | null
    metadata?: { readonly [k: string]: string | number }
  }): ChronicleEvent => ({
    type: "SessionUpdated",
    ...o,
  }),
  message: (
    seq: number,
    content: string,
    o: Overrides<typeof MessageAppended.Type> = {},
  ): typeof MessageAppended.Type => ({
    type: "MessageAppended",
    messageId: randomUUID(),
    seq,
    role: "user",
    content,
    metadata: {},
    createdAt: null,
    ...o,
  }),
  revision: (number: number, o: Overrides<typeof RevisionAdded.Type> = {}): typeof RevisionAdded.Type => ({
    type: "RevisionAdded",
    revisionId: randomUUID(),
    number,
    ir: { nodes: [number] },
    note: null,
    ...o,
  }),
  draft: (o: Overrides<typeof DraftRecorded.Type> = {}): typeof DraftRecorded.Type => ({
    type: "DraftRecorded",
    draftId: randomUUID(),
    code: "let x = 1",
    language: "typescript",
    valid: true,
    metrics: { tests: 3 },
    revisionNumber: null,
    ...o,
  }),
  hole: (
    holeId: string,
    confidence: number,
    o: Overrides<typeof HoleResolved.Type> = {},
  ): typeof HoleResolved.Type => ({
    type: "HoleResolved",
    resolutionId: randomUUID(),
    holeId,
    value: { fill: holeId, confidence },
    confidence,
    ...o,
  }),
  attach: (fileId: string, o: Overrides<typeof FileAttached.Type> = {}): ChronicleEvent => ({
    type: "FileAttached",
    fileId,
    sha256: sha("a"),
    name: `file-${fileId.slice(0, 8)}.txt`,
    mimeType: "text/plain",
    size: 12,
    ...o,
  }),
  detach: (fileId: string): ChronicleEvent => ({ type: "FileDetached", fileId }),
  toolRun: (o: Overrides<typeof ToolRunRecorded.Type> = {}): typeof ToolRunRecorded.Type => ({
    type: "ToolRunRecorded",
    toolRunId: randomUUID(),
    tool: "compile",
    input: { file: "a.ts" },
    output: { ok: true },
    status: "succeeded",
    durationMs: 42,
    error: null,
    ...o,
  }),
  checkpoint: (
    version: number,
    cursor: string,
    o: Overrides<typeof CheckpointCreated.Type> = {},
  ): typeof CheckpointCreated.Type => ({
    type: "CheckpointCreated",
    checkpointId: randomUUID(),
    version,
    cursor,
    label: null,
    ...o,
  }),
  rolledBack: (toVersion: number, checkpointId: string | null = null): ChronicleEvent => ({
    type: "SessionRolledBack",
    toVersion,
    checkpointId,
  }),
  archived: (): ChronicleEvent => ({ type: "SessionArchived", reason: null }),
  deleted: (): ChronicleEvent => ({ type: "SessionDeleted", reason: "asked to" }),
  expired: (): ChronicleEvent => ({
    type: "SessionExpired",
    idleSince: "2026-11-01T00:00:00Z",
    ttlHours: 24,
  }),
  reopened: (): ChronicleEvent => ({ type: "SessionReopened", command: "AppendMessages" }),
  jobCreated: (
    jobId: string,
    ownerId: string,
    o: Overrides<typeof JobCreated.Type> = {},
  ): ChronicleEvent => ({
    type: "JobCreated",
    jobId,
    ownerId,
    jobType: "generate",
    input: { prompt: "p" },
    parentJobId: null,
    sessionId: null,
    ...o,
  }),
  taskUpdated: (taskId: string, o: Overrides<typeof TaskUpdated.Type> = {}): ChronicleEvent => ({
    type: "TaskUpdated",
    taskId,
    status: "running",
    output: null,
    error: null,
    progress: null,
    ...o,
  }),
  artifact: (o: Overrides<typeof ArtifactRecorded.Type> = {}): typeof ArtifactRecorded.Type => ({
    type: "ArtifactRecorded",
    artifactId: randomUUID(),
    fileId: randomUUID(),
    kind: "code",
    name: "main.ts",
    sha256: sha("b"),
    mimeType: "text/typescript",
    size: 99,
    ...o,
  }),
  fileUploaded: (
    fileId: string,
    ownerId: string,
    o: Overrides<typeof FileUploaded.Type> = {},
  ): ChronicleEvent => ({
    type: "FileUploaded",
    fileId,
    ownerId,
    sha256: sha("c"),
    name: "notes.md",
    mimeType: "text/markdown",
    size: 2048,
    ...o,
  }),
  sandboxRegistered: (
    sandboxId: string,
    sessionId: string,
    ownerId: string,
    o: Overrides<typeof SandboxRegistered.Type> = {},
  ): ChronicleEvent => ({
    type: "SandboxRegistered",
    sandboxId,
    sessionId,
    ownerId,
    provider: "e2b",
    externalId: "sbx-1",
    url: null,
    metadata: {},
    ...o,
  }),
}

export const sessionStream = (id: string) => `session-${id}`
export const jobStream = (id: string) => `job-${id}`
export const fileStream = (id: string) => `file-${id}`
export const sandboxStream = (id: string) => `sandbox-${id}`

// ----- harness ----------------------------------------------------------------------------

export interface Harness {
  readonly run: <A, E>(effect: Effect.Effect<A, E, EventStore | Database>) => Promise<A>
  /** Appends domain events (validated and split by the catalog's codec). */
  readonly append: (
    streamId: string,
    events: ReadonlyArray<ChronicleEvent>,
    options?: AppendOptions,
  ) => Promise<AppendResult>
  readonly query: <Row = Record<string, unknown>>(
    text: string,
    params?: ReadonlyArray<unknown>,
  ) => Promise<Array<Row>>
  /** The first row of a query; a test failure when there is none. */
  readonly one: <Row = Record<string, unknown>>(text: string, params?: ReadonlyArray<unknown>) => Promise<Row>
  /** The failure of an effect that must fail (typed or defect), or a test failure. */
  readonly failure: (effect: Effect.Effect<unknown, unknown, EventStore | Database>) => Promise<unknown>
  readonly dispose: () => Promise<void>
}

export const appendEffect = (
  streamId: string,
  events: ReadonlyArray<ChronicleEvent>,
  options?: AppendOptions,
) => Effect.flatMap(EventStore, (store) => store.append(streamId, events.map(toStored), options))

export const makeHarness = async (
  database: TestDatabase,
  options: { max?: number; groupCommit?: EventStoreOptions["groupCommit"] } = {},
): Promise<Harness> => {
  const runtime: TestRuntime = makeTestRuntime(
    database.layer({ max: options.max ?? 4 }),
    options.groupCommit ? { groupCommit: options.groupCommit } : {},
  )
  const run = <A, E>(effect: Effect.Effect<A, E, EventStore | Database>) => runtime.runPromise(effect)
  const query = <Row = Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
    run(Effect.flatMap(Database, (db) => db.query<Row>(text, params)))
  await run(Effect.void)
  return {
    run,
    append: (streamId, events, options) => run(appendEffect(streamId, events, options)),
    query,
    one: async <Row = Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) => {
      const [row] = await query<Row>(text, params)
      if (row === undefined) throw new Error(`no row from: ${text}`)
      return row
    },
    failure: async (effect) => {
      const exit = await runtime.runPromiseExit(effect)
      if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
      return Cause.squash(exit.cause)
    },
    dispose: () => runtime.dispose(),
  }
}

/**
 * A harness over a fresh `database` for the enclosing `describe` block: made before its tests
 * (then `prepare` runs on it), disposed after them. Its methods are for use inside tests.
 */
export const harnessFor = (
  database: TestDatabase,
  options: { max?: number } = {},
  prepare: (h: Harness) => Promise<void> = async () => {},
): Harness => {
  let made: Harness | undefined
  beforeAll(async () => {
    made = await makeHarness(database, options)
    await prepare(made)
  })
  afterAll(() => made?.dispose())
  const h = () => {
    if (made === undefined) throw new Error("the harness is not made yet: use it inside a test")
    return made
  }
  return {
    run: (effect) => h().run(effect),
    append: (streamId, events, options) => h().append(streamId, events, options),
    query: (text, params) => h().query(text, params),
    one: (text, params) => h().one(text, params),
    failure: (effect) => h().failure(effect),
    dispose: () => h().dispose(),
  }
}

/** Counts the rows of a read-model table that belong to one session (or job). */
export const countRows = (h: Harness, table: string, column: string, id: string) =>
  h
    .one<{ n: number }>(`select count(*)::int as n from chronicle.${table} where ${column} = $1::uuid`, [id])
    .then((r) => r.n)

// ----- session state ----------------------------------------------------------------------

/** What a reader of a session sees as of some version: everything a rollback reverts, and tool runs. */
export interface SessionContent {
  readonly title: string | null
  readonly metadata: unknown
  readonly messages: ReadonlyArray<unknown>
  readonly revisions: ReadonlyArray<unknown>
  readonly drafts: ReadonlyArray<unknown>
  readonly holes: ReadonlyArray<unknown>
  readonly files: ReadonlyArray<unknown>
  readonly toolRuns: ReadonlyArray<unknown>
}

export interface SessionState extends SessionContent {
  readonly version: number
  readonly status: string
  readonly effective: string
  readonly counts: {
    readonly messages: number
    readonly revisions: number
    readonly drafts: number
    readonly holes: number
    readonly files: number
    readonly toolRuns: number
  }
}

// The effective rows of each content table for an effective set `eff` and a version `at`
// (tool runs count by version). Lists are ordered by something a fork keeps (seq, number, id).
const contentLists = (eff: string, at: string) => `
  'messages', (select coalesce(jsonb_agg(jsonb_build_array(m.message_id, m.seq, m.role, m.content, m.metadata,
                 m.created_at) order by m.seq, m.message_id), '[]'::jsonb)
               from chronicle.messages m where m.session_id = s.id and ${eff} @> m.version),
  'revisions', (select coalesce(jsonb_agg(jsonb_build_array(r.revision_id, r.number, r.ir, r.note, r.created_at)
                  order by r.number, r.revision_id), '[]'::jsonb)
                from chronicle.revisions r where r.session_id = s.id and ${eff} @> r.version),
  'drafts', (select coalesce(jsonb_agg(jsonb_build_array(d.draft_id, d.code, d.language, d.valid, d.metrics,
               d.revision_number, d.created_at) order by d.draft_id), '[]'::jsonb)
             from chronicle.drafts d where d.session_id = s.id and ${eff} @> d.version),
  'holes', (select coalesce(jsonb_agg(jsonb_build_array(h.resolution_id, h.hole_id, h.value, h.confidence,
              h.created_at) order by h.resolution_id), '[]'::jsonb)
            from chronicle.hole_resolutions h where h.session_id = s.id and ${eff} @> h.version),
  'files', (select coalesce(jsonb_agg(jsonb_build_array(f.file_id, f.sha256, f.name, f.mime_type, f.size,
              f.attached_at) order by f.file_id), '[]'::jsonb)
            from chronicle.attached_files(s.id, ${eff}) f),
  'toolRuns', (select coalesce(jsonb_agg(jsonb_build_array(t.tool_run_id, t.tool, t.input, t.output, t.status,
                 t.duration_ms, t.error, t.created_at) order by t.tool_run_id), '[]'::jsonb)
               from chronicle.tool_runs t where t.session_id = s.id and t.version <= ${at})`

const CURRENT_STATE = `
  select jsonb_build_object(
    'version', s.version, 'status', s.status, 'effective', s.effective::text,
    'title', s.title, 'metadata', s.metadata,
    'counts', jsonb_build_object('messages', s.message_count, 'revisions', s.revision_count,
      'drafts', s.draft_count, 'holes', s.hole_count, 'files', s.file_count, 'toolRuns', s.tool_run_count),
    ${contentLists("s.effective", "s.version")}) as state
  from chronicle.sessions s where s.id = $1::uuid`

const AS_OF_STATE = `
  select jsonb_build_object(
    'title', (select u.title from chronicle.session_updates u
               where u.session_id = s.id and u.title_set and x.eff @> u.version order by u.version desc limit 1),
    'metadata', (select u.metadata from chronicle.session_updates u
                  where u.session_id = s.id and u.metadata_set and x.eff @> u.version order by u.version desc limit 1),
    ${contentLists("x.eff", "x.at")}) as state
  from chronicle.sessions s
  cross join lateral (select chronicle.effective_versions(s.id, $2::integer) as eff, $2::integer as at) x
  where s.id = $1::uuid`

/** The session as its row reads now: stored title, metadata, counters and effective set. */
export const currentState = (h: Harness, sessionId: string) =>
  h.one<{ state: SessionState }>(CURRENT_STATE, [sessionId]).then((r) => r.state)

/** The session as of version `at`, computed from the rows and E(at) alone. */
export const asOfState = (h: Harness, sessionId: string, at: number) =>
  h.one<{ state: SessionContent }>(AS_OF_STATE, [sessionId, at]).then((r) => r.state)

/** The parts of a state a rollback restores and a fork copies. */
export const contentOf = (s: SessionContent): SessionContent => ({
  title: s.title,
  metadata: s.metadata,
  messages: s.messages,
  revisions: s.revisions,
  drafts: s.drafts,
  holes: s.holes,
  files: s.files,
  toolRuns: s.toolRuns,
})

/** The same content without tool runs (a rollback keeps every tool run). */
export const revertible = (s: SessionContent) => {
  const { toolRuns: _, ...rest } = contentOf(s)
  return rest
}

/** The counters a state's lists imply. */
export const countsOf = (s: SessionContent) => ({
  messages: s.messages.length,
  revisions: s.revisions.length,
  drafts: s.drafts.length,
  holes: s.holes.length,
  files: s.files.length,
  toolRuns: s.toolRuns.length,
})

/**
 * E(x) straight from the recursive definition in docs/DOMAIN.md, given the rollbacks of a
 * session (version → toVersion): E(0) = {}, E(x) = E(x-1) ∪ {x}, or E(T) ∪ {x} when event
 * x is a rollback to T.
 */
export const referenceEffective = (rollbacks: ReadonlyMap<number, number>, x: number): Array<number> => {
  const memo: Array<ReadonlySet<number>> = [new Set()]
  for (let v = 1; v <= x; v++) {
    const target = rollbacks.get(v)
    memo.push(new Set([...memo[target ?? v - 1]!, v]))
  }
  return [...memo[x]!].sort((a, b) => a - b)
}
