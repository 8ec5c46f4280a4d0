/**
 * Erasure: the one privileged path that removes content from the log. A purge redacts the
 * payload of every event of a session and of its forks (which copied its content), in the SQL
 * function `chronicle.purge_session_stream` (through `chronicle.redact_stream`, the only code
 * the log's append-only trigger lets change an event, and only its payload), makes the session's read-model rows again from the
 * redacted events, and records `SessionPurged` in the same transaction: the audit record. The
 * log keeps its shape, versions and cursors; folds, exports and rebuilds still run over it.
 * Only the service role purges.
 *
 * An owner's erasure (`{ ownerId }`) takes, besides their sessions, their stored files
 * (`chronicle.purge_file_stream`, `FilePurged`), their LangGraph threads
 * (`chronicle.purge_graph_stream`, `GraphThreadPurged`: checkpoints blanked, values and writes
 * dropped, the thread emptied) and their jobs (`chronicle.purge_job_stream`, `JobPurged`:
 * inputs, outputs, errors, tasks and artifact names redacted) and sandboxes
 * (`chronicle.purge_sandbox_stream`, `SandboxPurged`: metadata, URLs and reasons redacted). A
 * session's purge takes the jobs run on it and its sandboxes too. Contents in the blob store go
 * when nothing unpurged references them (`chronicle.delete_unreferenced_blobs`).
 *
 * Like the rest of the domain, it never reads the log: whether a stream was purged and which
 * contents its payloads name it asks of SQL functions (`chronicle.stream_purged_since`,
 * `chronicle.stream_blob_hashes`, `chronicle.graph_checkpoint_hashes`), beside the read models.
 *
 * Retention of LangGraph threads takes the same path: `pruneGraphCheckpoints` keeps the last K
 * checkpoints of each thread and namespace, redacting the others' events in the SQL function
 * `chronicle.prune_graph_checkpoints` (the values the kept checkpoints rest on stay) and
 * recording `GraphCheckpointsPruned`, whose projection removes them from the read model.
 */
import { Forbidden, InvalidCommand, NotFound, toStored } from "@chronicle/events"
import { Database, EventStore, isUuid } from "@chronicle/store"
import { Context, Effect, Layer, Schema } from "effect"
import { type Actor, actorLabel, serviceActor } from "./actor.ts"
import { sessionStreamId } from "./queries.ts"
import { decoder, Num, type Row } from "./row-schema.ts"

/** What to purge: one session (with its forks), every session of an owner, or the retention policy's. */
export type PurgeTarget =
  | { readonly sessionId: string }
  | { readonly ownerId: string }
  | {
      /** Sessions expired at least this many days before `now`. */
      readonly expiredForDays: number
      readonly now?: Date | undefined
    }

export interface PurgeOptions {
  /** Recorded in the SessionPurged event (the audit record). */
  readonly reason?: string | null | undefined
  /** Report what would be purged and write nothing. */
  readonly dryRun?: boolean | undefined
  /** Called after each session is purged (or counted, in a dry run). */
  readonly onProgress?: ((done: number, total: number) => void) | undefined
}

export interface PurgeReport {
  /** The sessions purged (or that would be), forks included, each with its events redacted. */
  readonly sessions: ReadonlyArray<{ readonly id: string; readonly events: number }>
  /** Events whose payload was redacted (or would be): the sessions', jobs' and threads'. */
  readonly events: number
  /** The owner's stored files purged (or that would be): an owner's erasure only. */
  readonly files: number
  /** The owner's LangGraph threads purged (or that would be): an owner's erasure only. */
  readonly graphThreads: number
  /** Jobs purged (or that would be): the owner's, and those run on a purged session. */
  readonly jobs: number
  /** Sandboxes purged (or that would be): the owner's, and those of a purged session. */
  readonly sandboxes: number
  /** Stored file contents deleted because nothing unpurged references them any more. */
  readonly blobs: number
  readonly dryRun: boolean
}

/** Which threads' checkpoints to prune, and how many to keep in each thread and namespace. */
export interface GraphPruneTarget {
  /** Checkpoints kept per thread and namespace: the newest ids. At least 1. */
  readonly keep: number
  /** Only threads with this thread id (of any owner, unless `ownerId` says). */
  readonly threadId?: string | undefined
  /** Only this owner's threads. */
  readonly ownerId?: string | undefined
}

export interface GraphPruneOptions {
  /** Report what would be pruned and write nothing. */
  readonly dryRun?: boolean | undefined
  /** Called after each thread is pruned (or counted, in a dry run). */
  readonly onProgress?: ((done: number, total: number) => void) | undefined
}

export interface GraphPruneReport {
  /** The threads pruned (or that would be), with the checkpoints each lost. */
  readonly threads: ReadonlyArray<{
    readonly graphId: string
    readonly threadId: string
    readonly ownerId: string
    readonly checkpoints: number
    /** Events whose payload was redacted (none in a dry run). */
    readonly events: number
  }>
  readonly checkpoints: number
  readonly events: number
  /** Large values' bytes deleted from the blob store because nothing references them any more. */
  readonly blobs: number
  readonly dryRun: boolean
}

export interface PurgeService {
  readonly purge: (
    actor: Actor,
    target: PurgeTarget,
    options?: PurgeOptions,
  ) => Effect.Effect<PurgeReport, Forbidden | NotFound | InvalidCommand>
  /** Keeps the last `keep` checkpoints of each thread and namespace; the older ones go (service role only). */
  readonly pruneGraphCheckpoints: (
    actor: Actor,
    target: GraphPruneTarget,
    options?: GraphPruneOptions,
  ) => Effect.Effect<GraphPruneReport, Forbidden | InvalidCommand>
}

const ATTEMPTS = 5

// ----- the rows a purge reads, decoded ---------------------------------------------------------

/** A session to purge. */
const decodeSessionId = decoder("session", "id", Schema.Struct({ id: Schema.String }))

/** A stream's aggregate (session, job, sandbox, thread) and its version. */
const streamRow = (shape: string) => {
  const decode = decoder(shape, "id", Schema.Struct({ id: Schema.String, version: Num }))
  return (row: Row) => {
    const r = decode(row)
    return { id: r.id, version: Number(r.version) }
  }
}
const toSessionVersion = streamRow("session")
const toJobVersion = streamRow("job")
const toSandboxVersion = streamRow("sandbox")
const toThreadVersion = streamRow("graph thread")

/** What a purge or prune function answers: how many events, contents or checkpoints. */
const decodeCount = decoder("purge count", "n", Schema.Struct({ n: Num }))
const toCount = (row: Row) => Number(decodeCount(row).n)

const decodeHash = decoder("blob hash", "sha256", Schema.Struct({ sha256: Schema.String }))

const decodeFile = decoder(
  "file",
  "id",
  Schema.Struct({ id: Schema.String, version: Num, sha256: Schema.String }),
)

const decodePrunable = decoder(
  "prunable graph namespace",
  "graph_id",
  Schema.Struct({
    graph_id: Schema.String,
    thread_id: Schema.String,
    owner_id: Schema.String,
    version: Num,
    checkpoint_ns: Schema.String,
    through: Schema.String,
    n: Num,
  }),
)
const toPrunable = (row: Row) => {
  const r = decodePrunable(row)
  return { ...r, version: Number(r.version), n: Number(r.n) }
}

export class Purge extends Context.Service<Purge, PurgeService>()("@chronicle/domain/Purge") {
  static readonly layer = Layer.effect(
    Purge,
    Effect.gen(function* () {
      const db = yield* Database
      const store = yield* EventStore
      /** Rows, each decoded with `decode` (a malformed one is a defect). */
      const query = <A>(decode: (row: Row) => A, text: string, params: ReadonlyArray<unknown> = []) =>
        db.query(text, params).pipe(
          Effect.orDie,
          Effect.map((rows) => rows.map((row) => decode(row))),
        )

      /** The roots the target names, not purged yet. */
      const roots = (target: PurgeTarget) =>
        Effect.gen(function* () {
          if ("sessionId" in target) {
            if (!isUuid(target.sessionId))
              return yield* new NotFound({ entity: "session", id: target.sessionId })
            const rows = yield* query(
              decodeSessionId,
              `select id::text from chronicle.sessions where id = $1::uuid`,
              [target.sessionId],
            )
            if (rows.length === 0) return yield* new NotFound({ entity: "session", id: target.sessionId })
            return rows.map((r) => r.id)
          }
          if ("ownerId" in target) {
            if (!isUuid(target.ownerId)) {
              return yield* new InvalidCommand({ path: "ownerId", reason: "must be a UUID" })
            }
            const rows = yield* query(
              decodeSessionId,
              `select id::text from chronicle.sessions where owner_id = $1::uuid order by created_at, id`,
              [target.ownerId],
            )
            return rows.map((r) => r.id)
          }
          const days = target.expiredForDays
          if (!(Number.isFinite(days) && days >= 0)) {
            return yield* new InvalidCommand({
              path: "expiredForDays",
              reason: "must be a number of days >= 0",
            })
          }
          const cutoff = new Date((target.now ?? new Date()).getTime() - days * 86_400_000)
          const rows = yield* query(
            decodeSessionId,
            `select id::text from chronicle.sessions
              where status = 'expired' and expired_at <= $1::timestamptz order by expired_at, id`,
            [cutoff.toISOString()],
          )
          return rows.map((r) => r.id)
        })

      /** The session and its forks, forks of forks…, parents first; those already purged left out. */
      const tree = (id: string) =>
        query(
          toSessionVersion,
          `with recursive tree(id, depth) as (
             select $1::uuid, 0
             union all
             select s.id, t.depth + 1 from chronicle.sessions s join tree t on s.parent_id = t.id)
           select t.id::text, s.version from tree t join chronicle.sessions s on s.id = t.id
            where not chronicle.stream_purged_since('session-' || t.id::text, 1)
            order by t.depth, s.created_at, t.id`,
          [id],
        )

      /**
       * Deletes the contents among `hashes` that nothing unpurged references any more: no file
       * that is not purged, no event not purged since it was recorded.
       */
      const deleteUnreferenced = (hashes: ReadonlyArray<string>) =>
        hashes.length === 0
          ? Effect.succeed(0)
          : query(toCount, `select chronicle.delete_unreferenced_blobs($1::text[]) as n`, [hashes]).pipe(
              Effect.map(([n]) => n!),
            )

      /** An owner's files not purged yet. */
      const ownerFiles = (ownerId: string) =>
        query(
          decodeFile,
          `select f.id::text, f.version, f.sha256 from chronicle.files f
            where f.owner_id = $1::uuid
              and not chronicle.stream_purged_since('file-' || f.id::text, 1)
            order by f.created_at, f.id`,
          [ownerId],
        )

      /** Purges files in one transaction, then the contents only they referenced. */
      const purgeFiles = (files: ReadonlyArray<{ id: string; sha256: string }>, reason: string | null) =>
        db
          .transaction(
            Effect.gen(function* () {
              for (const file of files) {
                const [n] = yield* query(toCount, `select chronicle.purge_file_stream($1::uuid) as n`, [
                  file.id,
                ])
                yield* store.append(
                  `file-${file.id}`,
                  [
                    {
                      ...toStored({ type: "FilePurged", reason }),
                      metadata: { actor: actorLabel(serviceActor()) },
                    },
                  ],
                  { expectedVersion: n! },
                )
              }
              return yield* deleteUnreferenced([...new Set(files.map((f) => f.sha256))])
            }),
          )
          .pipe(
            Effect.retry({ times: ATTEMPTS - 1, while: (e) => e._tag === "VersionConflict" }),
            Effect.orDie,
          )

      /** Hashes the payloads of these streams name (contents in the blob store), before they are redacted. */
      const namedHashes = (streamIds: ReadonlyArray<string>) =>
        query(decodeHash, `select h as sha256 from chronicle.stream_blob_hashes($1::text[]) as h`, [
          streamIds,
        ]).pipe(Effect.map((rows) => rows.map((r) => r.sha256)))

      /** Jobs not purged since their last event: the owner's, or those run on these sessions. */
      const jobsToPurge = (ownerId: string | null, sessionIds: ReadonlyArray<string>) =>
        query(
          toJobVersion,
          `select j.id::text, j.version from chronicle.jobs j
            where (j.owner_id = $1::uuid or j.session_id = any ($2::uuid[]))
              and not chronicle.stream_purged_since('job-' || j.id::text, j.version)
            order by j.created_at, j.id`,
          [ownerId, sessionIds],
        )

      /** Sandboxes not purged since their last event: the owner's, or those of these sessions. */
      const sandboxesToPurge = (ownerId: string | null, sessionIds: ReadonlyArray<string>) =>
        query(
          toSandboxVersion,
          `select x.id::text, x.version from chronicle.sandboxes x
            where (x.owner_id = $1::uuid or x.session_id = any ($2::uuid[]))
              and not chronicle.stream_purged_since('sandbox-' || x.id::text, x.version)
            order by x.created_at, x.id`,
          [ownerId, sessionIds],
        )

      /** An owner's LangGraph threads not purged since their last event. */
      const ownerThreads = (ownerId: string) =>
        query(
          toThreadVersion,
          `select g.id::text, g.version from chronicle.graph_threads g
            where g.owner_id = $1::uuid
              and not chronicle.stream_purged_since('graph-' || g.id::text, g.version)
            order by g.created_at, g.id`,
          [ownerId],
        )

      /**
       * Purges one job or thread stream in one transaction with the contents in the blob store
       * only it referenced; a concurrent append makes it start again.
       */
      const purgeStream = (kind: "job" | "graph" | "sandbox", id: string, reason: string | null) =>
        db
          .transaction(
            Effect.gen(function* () {
              const streamId = `${kind}-${id}`
              const hashes = yield* namedHashes([streamId])
              const [purged] = yield* query(
                toCount,
                kind === "job"
                  ? `select chronicle.purge_job_stream($1::uuid) as n`
                  : kind === "graph"
                    ? `select chronicle.purge_graph_stream($1::uuid) as n`
                    : `select chronicle.purge_sandbox_stream($1::uuid) as n`,
                [id],
              )
              const n = purged!
              yield* store.append(
                streamId,
                [
                  {
                    ...toStored(
                      kind === "job"
                        ? { type: "JobPurged", reason, throughVersion: n }
                        : kind === "graph"
                          ? { type: "GraphThreadPurged", reason, throughVersion: n }
                          : { type: "SandboxPurged", reason, throughVersion: n },
                    ),
                    metadata: { actor: actorLabel(serviceActor()) },
                  },
                ],
                { expectedVersion: n },
              )
              return yield* deleteUnreferenced(hashes)
            }),
          )
          .pipe(
            Effect.retry({ times: ATTEMPTS - 1, while: (e) => e._tag === "VersionConflict" }),
            Effect.orDie,
          )

      /** Purges one tree in one transaction; a concurrent append makes it start again. */
      const purgeTree = (ids: ReadonlyArray<string>, reason: string | null) =>
        db
          .transaction(
            Effect.gen(function* () {
              // Hashes the payloads name (file contents), gathered before they are redacted.
              const hashes = yield* namedHashes(ids.map(sessionStreamId))
              const purged: Array<{ id: string; events: number }> = []
              for (const id of ids) {
                const [purgedThrough] = yield* query(
                  toCount,
                  `select chronicle.purge_session_stream($1::uuid) as n`,
                  [id],
                )
                const n = purgedThrough!
                yield* store.append(
                  sessionStreamId(id),
                  [
                    {
                      ...toStored({ type: "SessionPurged", reason, throughVersion: n }),
                      metadata: { actor: actorLabel(serviceActor()) },
                    },
                  ],
                  { expectedVersion: n },
                )
                purged.push({ id, events: n })
              }
              return { purged, blobs: yield* deleteUnreferenced(hashes) }
            }),
          )
          .pipe(
            Effect.retry({ times: ATTEMPTS - 1, while: (e) => e._tag === "VersionConflict" }),
            // Decided events on a locked tree: anything else is a defect, not the caller's mistake.
            Effect.orDie,
          )

      const purge = Effect.fn("Purge.purge")(function* (
        actor: Actor,
        target: PurgeTarget,
        options: PurgeOptions = {},
      ) {
        if (actor.kind !== "service" || actor.actingFor !== null) {
          return yield* new Forbidden({ reason: "Only the service role may purge sessions" })
        }
        const dryRun = options.dryRun === true
        const reason = options.reason ?? null
        const seen = new Set<string>()
        const trees: Array<ReadonlyArray<{ id: string; version: number }>> = []
        for (const root of yield* roots(target)) {
          if (seen.has(root)) continue
          const members = (yield* tree(root)).filter((m) => !seen.has(m.id))
          for (const m of members) seen.add(m.id)
          if (members.length > 0) trees.push(members)
        }
        const total = trees.reduce((n, t) => n + t.length, 0)
        const sessions: Array<{ id: string; events: number }> = []
        let blobs = 0
        for (const members of trees) {
          if (dryRun) sessions.push(...members.map((m) => ({ id: m.id, events: m.version })))
          else {
            const done = yield* purgeTree(
              members.map((m) => m.id),
              reason,
            )
            sessions.push(...done.purged)
            blobs += done.blobs
          }
          options.onProgress?.(sessions.length, total)
        }
        const ownerId = "ownerId" in target ? target.ownerId : null
        // The jobs run on the purged sessions, and an owner's every job. Before the files: an
        // artifact's bytes go once the job that names them is purged too.
        const purgedSessions = trees.flatMap((t) => t.map((m) => m.id))
        const jobs = yield* jobsToPurge(ownerId, purgedSessions)
        const sandboxes = yield* sandboxesToPurge(ownerId, purgedSessions)
        // An owner's erasure takes their LangGraph threads and stored files too, and the
        // contents only they had.
        const threads = ownerId === null ? [] : yield* ownerThreads(ownerId)
        const files = ownerId === null ? [] : yield* ownerFiles(ownerId)
        let events = sessions.reduce((n, s) => n + s.events, 0)
        for (const job of jobs) {
          if (!dryRun) blobs += yield* purgeStream("job", job.id, reason)
          events += job.version
        }
        for (const sandbox of sandboxes) {
          if (!dryRun) blobs += yield* purgeStream("sandbox", sandbox.id, reason)
          events += sandbox.version
        }
        for (const thread of threads) {
          if (!dryRun) blobs += yield* purgeStream("graph", thread.id, reason)
          events += thread.version
        }
        if (!dryRun && files.length > 0) blobs += yield* purgeFiles(files, reason)
        return {
          sessions,
          events,
          files: files.length,
          graphThreads: threads.length,
          jobs: jobs.length,
          sandboxes: sandboxes.length,
          blobs,
          dryRun,
        } satisfies PurgeReport
      })

      /** Per namespace of each selected thread with more than `keep` checkpoints: the newest id that goes. */
      const prunable = (target: GraphPruneTarget & { readonly graphId?: string }) =>
        query(
          toPrunable,
          `select g.id::text as graph_id, g.thread_id, g.owner_id::text, g.version, x.checkpoint_ns,
                  max(x.checkpoint_id) as through, count(*)::int as n
             from chronicle.graph_threads g
             join lateral (
               select c.checkpoint_ns, c.checkpoint_id,
                      row_number() over (partition by c.checkpoint_ns order by c.checkpoint_id desc) as rank
                 from chronicle.graph_checkpoints c where c.graph_id = g.id) x on x.rank > $1
            where ($2::text is null or g.thread_id = $2) and ($3::uuid is null or g.owner_id = $3::uuid)
              and ($4::uuid is null or g.id = $4::uuid)
            group by g.id, g.thread_id, g.owner_id, g.version, x.checkpoint_ns
            order by g.id, x.checkpoint_ns`,
          [target.keep, target.threadId ?? null, target.ownerId ?? null, target.graphId ?? null],
        )

      /** Prunes one thread in one transaction; a concurrent save makes it start again. */
      const pruneThread = (graphId: string, keep: number) =>
        db
          .transaction(
            Effect.gen(function* () {
              const rows = yield* prunable({ keep, graphId })
              if (rows.length === 0) return { checkpoints: 0, events: 0, blobs: 0 }
              const streamId = `graph-${graphId}`
              // Large values the events about to be redacted name, gathered before they are.
              const hashes = yield* query(
                decodeHash,
                `select distinct h as sha256
                   from unnest($2::text[], $3::text[]) as p (ns, through),
                        chronicle.graph_checkpoint_hashes($1::uuid, p.ns, p.through) as h`,
                [graphId, rows.map((r) => r.checkpoint_ns), rows.map((r) => r.through)],
              )
              let events = 0
              let checkpoints = 0
              for (const row of rows) {
                const [done] = yield* query(
                  toCount,
                  "select chronicle.prune_graph_checkpoints($1::uuid, $2, $3) as n",
                  [graphId, row.checkpoint_ns, row.through],
                )
                events += done!
                checkpoints += row.n
              }
              // Decided at the thread's version: a save in between conflicts, and it starts again.
              yield* store.append(
                streamId,
                rows.map((row) => ({
                  ...toStored({
                    type: "GraphCheckpointsPruned",
                    checkpointNs: row.checkpoint_ns,
                    keep,
                    throughCheckpointId: row.through,
                    count: row.n,
                  }),
                  metadata: { actor: actorLabel(serviceActor()) },
                })),
                { expectedVersion: rows[0]!.version },
              )
              return { checkpoints, events, blobs: yield* deleteUnreferenced(hashes.map((h) => h.sha256)) }
            }),
          )
          .pipe(
            Effect.retry({ times: ATTEMPTS - 1, while: (e) => e._tag === "VersionConflict" }),
            Effect.orDie,
          )

      const pruneGraphCheckpoints = Effect.fn("Purge.pruneGraphCheckpoints")(function* (
        actor: Actor,
        target: GraphPruneTarget,
        options: GraphPruneOptions = {},
      ) {
        if (actor.kind !== "service" || actor.actingFor !== null) {
          return yield* new Forbidden({ reason: "Only the service role may prune graph checkpoints" })
        }
        if (!(Number.isInteger(target.keep) && target.keep >= 1 && target.keep <= 2_147_483_647)) {
          return yield* new InvalidCommand({
            path: "keep",
            reason: "must be a whole number of checkpoints >= 1",
          })
        }
        if (target.ownerId !== undefined && !isUuid(target.ownerId)) {
          return yield* new InvalidCommand({ path: "ownerId", reason: "must be a UUID" })
        }
        const dryRun = options.dryRun === true
        const byThread = new Map<string, { threadId: string; ownerId: string; checkpoints: number }>()
        for (const row of yield* prunable(target)) {
          const thread = byThread.get(row.graph_id) ?? {
            threadId: row.thread_id,
            ownerId: row.owner_id,
            checkpoints: 0,
          }
          thread.checkpoints += row.n
          byThread.set(row.graph_id, thread)
        }
        const threads: Array<GraphPruneReport["threads"][number]> = []
        let blobs = 0
        for (const [graphId, thread] of byThread) {
          if (dryRun) threads.push({ graphId, ...thread, events: 0 })
          else {
            const done = yield* pruneThread(graphId, target.keep)
            threads.push({ graphId, ...thread, checkpoints: done.checkpoints, events: done.events })
            blobs += done.blobs
          }
          options.onProgress?.(threads.length, byThread.size)
        }
        return {
          threads,
          checkpoints: threads.reduce((n, t) => n + t.checkpoints, 0),
          events: threads.reduce((n, t) => n + t.events, 0),
          blobs,
          dryRun,
        } satisfies GraphPruneReport
      })

      return Purge.of({ purge, pruneGraphCheckpoints })
    }),
  )
}
