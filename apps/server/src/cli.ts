#!/usr/bin/env node
import { open } from "node:fs/promises"
import { parseArgs } from "node:util"
import { Purge, type PurgeTarget, serviceActor } from "@chronicle/domain"
import { type AsOf, type ProjectionStatus, Projections, type Run } from "@chronicle/projections"
import { type Database, EventStore, isUuid } from "@chronicle/store"
import { Effect, Fiber, Layer, ManagedRuntime } from "effect"
import serverPackage from "../package.json" with { type: "json" }
import { ConfigError, databaseConfig, serverConfig } from "./config.ts"
import { describeDatabase, storeLayer } from "./database.ts"
import { ProgressPrinter } from "./progress.ts"
import { serve } from "./serve.ts"
import { mintUserToken, parseDuration } from "./token.ts"
import { exportLog, exportSession, importEvents, parseOwnerMap, TransferError } from "./transfer.ts"

const COMMANDS = {
  serve: {
    usage: "serve",
    summary: "run the service (what `pnpm start` runs)",
    help: "Runs the HTTP API (tRPC) and the projection daemon. Configuration comes from the environment (PORT, HOST, DATABASE_URL, …; see the README).",
  },
  migrate: {
    usage: "migrate",
    summary: "apply pending migrations and exit",
    help: "Applies the migrations in supabase/migrations that the database has not seen, in one transaction.",
  },
  status: {
    usage: "status",
    summary: "the database, the head of the log, and every projection (state, rows, lag)",
    help: "Prints where the data lives, the head of the log, and for each projection its version, mode, state, row count and lag behind the head.",
  },
  rebuild: {
    usage:
      "rebuild <name…|--all> [--from-snapshot <label> | --as-of <cursor|checkpoint-id|time> [--label <label>]] [--batch-size <n>]",
    summary: "rebuild projections without downtime, or build a point-in-time snapshot",
    help: `Rebuilds the named projections (or --all) into shadow tables while the service keeps
serving and appending, then swaps them in within one short transaction. Progress is shown
live (events done/total, events/s, ETA). Ctrl-C cancels: the live tables stay as they were.

With --from-snapshot, the shadow tables start as a copy of that snapshot's (it must hold the
named projections, built with their current versions), and only the events after it are
replayed before the swap.

With --as-of, builds the projections as they were at a log cursor (such as 812:1044), a
checkpoint (its id) or a time (ISO-8601) into the schema analytics_asof_<label> instead;
--label names it (default: asof_<yyyymmdd_hhmmss> of now). See \`chronicle snapshots\`.`,
  },
  snapshots: {
    usage: "snapshots [--drop <label>]",
    summary: "list point-in-time snapshots, or drop one",
    help: "Lists the analytics snapshots built by `rebuild --as-of` (label, schema, as-of, events); --drop removes one.",
  },
  export: {
    usage: "export [session-id] [--out <file>]",
    summary: "write the whole log, or one session (with its fork ancestors and files), as NDJSON",
    help: "Streams events as NDJSON, one per line (lines end with \\n only), in the order readers see them, each file's bytes on a line before the event that uploads it. Without a session id, the whole log; with one, the session, its fork ancestors and the files attached to them. Without --out, to stdout.",
  },
  token: {
    usage: "token --user <uuid> [--expires <30m|12h|7d|seconds>]",
    summary: "mint a user access token for development, from SUPABASE_JWT_SECRET",
    help: `Prints an access token for the user --user (a UUID), signed with the configured project
JWT secret as Supabase Auth signs one, so the server accepts it as that user: send it as
Authorization: Bearer <token>, or pass it as the client's \`token\`. It expires after --expires
(default 1h). Needs SUPABASE_URL and SUPABASE_JWT_SECRET, as the server does; in dev mode (no
auth configured) no token is needed.`,
  },
  purge: {
    usage:
      "purge <session-id…> | --owner <uuid> | --expired-days <n>  [--reason <text>] [--dry-run]\n       chronicle purge --graph-checkpoints --keep <k> [--thread <id>] [--owner <uuid>] [--dry-run]",
    summary: "erase sessions' content irreversibly (with their forks), or prune LangGraph checkpoints",
    help: `Erases the content of the named sessions, of every session, file, job, sandbox and
LangGraph thread of --owner, or of the sessions expired for at least --expired-days days (the
retention policy the server's sweep applies with CHRONICLE_PURGE_EXPIRED_AFTER_DAYS), together
with their forks, which copied their content, and the jobs and sandboxes run on them.
The payload of each of their events is redacted (text, JSON values and names blanked; ids,
versions, positions and times kept, so cursors, exports and rebuilds stay valid), their read
models are made again from the redacted log (a thread's checkpoints, values and writes go),
stored contents (files' bytes, large values) nothing references any more are deleted, and a
SessionPurged, JobPurged, SandboxPurged, GraphThreadPurged or FilePurged event (with --reason)
records each purge. This cannot be undone.
--dry-run lists what would be purged and writes nothing. Progress goes to stderr.

With --graph-checkpoints, prunes LangGraph threads instead (the retention the server's sweep
applies with CHRONICLE_GRAPH_KEEP_CHECKPOINTS): in each thread (every one, those with thread id
--thread, or --owner's) and namespace, all checkpoints but the last --keep go, with the writes
made against them. Their events stay in the log with their payloads redacted, but for the
channel values the kept checkpoints rest on; a GraphCheckpointsPruned event records each
pruning; large values nothing references any more are deleted. Every kept checkpoint reads as
before. This cannot be undone.`,
  },
  import: {
    usage: "import [--in <file>] [--map-owner <old>=<new> …]",
    summary: "append events written by `export`, keeping ids, versions and times; re-running is a no-op",
    help: `Reads NDJSON written by \`chronicle export\` (from stdin without --in) into the configured database. Events keep their ids, versions and recorded_at, and files their bytes (checked against their SHA-256), so the read models come out the same. Importing the same file twice writes nothing the second time.

--map-owner <old>=<new> (repeatable) gives what <old> owned to <new>: the streams' owner, every ownerId in the events, the actor of their metadata, and the ids derived from the owner (sessions created by external key, LangGraph threads) are rewritten, so the new owner finds them by key and thread id. Use it to move data to another database (or project) whose users have other ids; the rewritten events keep their ids, so in the database they came from they conflict with the originals.`,
  },
} as const

type Command = keyof typeof COMMANDS

const USAGE = `Usage: chronicle <command> [options]

Commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.split(" ")[0]!.padEnd(11)} ${c.summary}`)
  .join("\n")}

\`chronicle <command> --help\` explains one command; \`chronicle --version\` prints the version. Configuration (DATABASE_URL, …) is read
from the environment; see the README.`

const usageError = (message: string, command?: Command) => {
  console.error(
    `chronicle: ${message}\n\n${command === undefined ? USAGE : `Usage: chronicle ${COMMANDS[command].usage}`}`,
  )
  return 2
}

type Services = EventStore | Projections | Database

/** The store on the configured database, migrated, with the projection engine. */
const withStore = async <A>(
  effect: Effect.Effect<A, unknown, Services>,
  interruptible = false,
): Promise<A> => {
  const config = databaseConfig()
  const runtime = ManagedRuntime.make(
    Projections.layer.pipe(Layer.provideMerge(storeLayer(config)), Layer.orDie),
  )
  try {
    if (!interruptible) return await runtime.runPromise(effect)
    // Ctrl-C interrupts the effect (which cleans up) instead of killing the process.
    const fiber = runtime.runFork(effect)
    const onSignal = () => {
      console.error("\nchronicle: interrupted; stopping…")
      runtime.runFork(Fiber.interrupt(fiber))
    }
    process.once("SIGINT", onSignal)
    try {
      return await runtime.runPromise(Fiber.join(fiber))
    } finally {
      process.off("SIGINT", onSignal)
    }
  } finally {
    await runtime.dispose()
  }
}

/** Opens a file for export or import, or explains in one line why it cannot. */
const openFile = async (path: string, mode: "r" | "w") => {
  try {
    return await open(path, mode)
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT"
        ? "no such file or directory"
        : (error as Error).message
    throw new TransferError(`cannot ${mode === "r" ? "read" : "write"} ${path}: ${reason}`)
  }
}

const printStatus = (status: ProjectionStatus) => {
  const rows = status.projections.map((p) => [
    p.name,
    p.mode,
    p.builtVersion === p.version ? `v${p.version}` : `v${p.version} (built v${p.builtVersion ?? "–"})`,
    p.state,
    // "~": a table this large is counted from the planner's statistics, not row by row.
    `${p.tables.some((t) => t.estimated) ? "~" : ""}${p.tables.reduce((n, t) => n + t.rows, 0).toLocaleString("en-US")}`,
    p.mode === "inline" ? "0 (inline)" : `${p.lagEvents.toLocaleString("en-US")} events, ${p.lagSeconds}s`,
    p.lastError === null
      ? ""
      : `${p.lastError}${p.retryAt === null ? "" : ` (next attempt ${utc(p.retryAt)})`}`,
  ])
  const header = ["projection", "mode", "version", "state", "rows", "lag", "last error"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd()
  console.log(line(header))
  for (const r of rows) console.log(line(r))
}

/** `--as-of` as a cursor, a checkpoint id or a time. */
const parseAsOf = (value: string): AsOf | string => {
  if (/^\d+$/.test(value)) return { cursor: value }
  if (isUuid(value.toLowerCase())) return { checkpointId: value.toLowerCase() }
  if (!Number.isNaN(Date.parse(value))) return { timestamp: new Date(value).toISOString() }
  return `--as-of ${JSON.stringify(value)} is neither a cursor (such as 1044, from \`chronicle status\`), a checkpoint id nor an ISO-8601 time`
}

/** An instant as `2026-12-04 13:22:05 UTC`. */
const utc = (iso: string) => `${new Date(iso).toISOString().slice(0, 19).replace("T", " ")} UTC`

/** What a snapshot was taken as of, in words, with the cursor that became its bound. */
const describeBound = (asOf: AsOf | null, cursor: string | null) => {
  const bound = cursor === null ? "" : ` (cursor ${cursor})`
  if (asOf === null || "cursor" in asOf) return `cursor ${cursor ?? "–"}`
  if ("checkpointId" in asOf) return `checkpoint ${asOf.checkpointId}${bound}`
  return `${utc(asOf.timestamp)}${bound}`
}

const defaultLabel = () =>
  `asof_${new Date().toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15)}`

const OPTIONS = {
  out: { type: "string" },
  in: { type: "string" },
  "map-owner": { type: "string", multiple: true },
  all: { type: "boolean" },
  "as-of": { type: "string" },
  label: { type: "string" },
  "from-snapshot": { type: "string" },
  "batch-size": { type: "string" },
  drop: { type: "string" },
  owner: { type: "string" },
  "expired-days": { type: "string" },
  reason: { type: "string" },
  "dry-run": { type: "boolean" },
  "graph-checkpoints": { type: "boolean" },
  keep: { type: "string" },
  thread: { type: "string" },
  user: { type: "string" },
  expires: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const

const ALLOWED: Record<Command, ReadonlyArray<keyof typeof OPTIONS>> = {
  serve: [],
  migrate: [],
  status: [],
  rebuild: ["all", "as-of", "label", "from-snapshot", "batch-size"],
  snapshots: ["drop"],
  export: ["out"],
  import: ["in", "map-owner"],
  token: ["user", "expires"],
  purge: ["owner", "expired-days", "reason", "dry-run", "graph-checkpoints", "keep", "thread"],
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [name, ...rest] = argv
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(USAGE)
    return name === undefined ? 2 : 0
  }
  if (name === "--version" || name === "-v" || name === "version") {
    console.log(`chronicle ${serverPackage.version}`)
    return 0
  }
  if (!(name in COMMANDS)) return usageError(`unknown command ${JSON.stringify(name)}`)
  const command = name as Command
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: [...rest], options: OPTIONS, allowPositionals: true })
  } catch (error) {
    return usageError(`${command}: ${(error as Error).message}`, command)
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(`Usage: chronicle ${COMMANDS[command].usage}\n\n${COMMANDS[command].help}`)
    return 0
  }
  const extra = (Object.keys(values) as Array<keyof typeof OPTIONS>).find(
    (o) => o !== "help" && !ALLOWED[command].includes(o),
  )
  if (extra !== undefined)
    return usageError(`${command}: --${extra} is not an option of this command`, command)
  const maxPositionals =
    command === "rebuild" || command === "purge" ? Number.POSITIVE_INFINITY : command === "export" ? 1 : 0
  if (positionals.length > maxPositionals)
    return usageError(
      `${command}: unexpected argument ${JSON.stringify(positionals[maxPositionals])}`,
      command,
    )

  switch (command) {
    case "serve":
      return serve(serverConfig())
    case "migrate": {
      const head = await withStore(Effect.flatMap(EventStore, (store) => store.head()))
      console.log(
        `${describeDatabase(databaseConfig())}: migrations applied; head at position ${head.globalPosition}`,
      )
      return 0
    }
    case "status": {
      const status = await withStore(Effect.flatMap(Projections, (p) => p.status()))
      console.log(`${describeDatabase(databaseConfig())}`)
      console.log(`head: position ${status.head.globalPosition} (cursor ${status.head.cursor})\n`)
      printStatus(status)
      return 0
    }
    case "rebuild": {
      if (values.all && positionals.length > 0)
        return usageError("rebuild: name projections or give --all, not both", command)
      if (!values.all && positionals.length === 0)
        return usageError("rebuild: name the projections to rebuild, or give --all", command)
      const batchSize = values["batch-size"] === undefined ? undefined : Number(values["batch-size"])
      if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= 100_000))
        return usageError("rebuild: --batch-size must be a whole number from 1 to 100000", command)
      if (values.label !== undefined && values["as-of"] === undefined)
        return usageError("rebuild: --label names a snapshot; it needs --as-of", command)
      const fromSnapshot = values["from-snapshot"]
      if (fromSnapshot !== undefined && values["as-of"] !== undefined)
        return usageError(
          "rebuild: --from-snapshot rebuilds the live tables, --as-of builds a snapshot; give one of them",
          command,
        )
      const asOf = values["as-of"] === undefined ? undefined : parseAsOf(values["as-of"])
      if (typeof asOf === "string") return usageError(`rebuild: ${asOf}`, command)
      const projections = values.all ? undefined : positionals
      const printer = new ProgressPrinter(process.stderr)
      const run: Run = await withStore(
        Effect.gen(function* () {
          const engine = yield* Projections
          const started =
            asOf === undefined
              ? yield* engine.startRebuild({
                  ...(projections === undefined ? {} : { projections }),
                  ...(fromSnapshot === undefined ? {} : { fromSnapshot }),
                })
              : yield* engine.startSnapshot({
                  label: values.label ?? defaultLabel(),
                  asOf,
                  ...(projections === undefined ? {} : { projections }),
                })
          console.error(
            `${started.kind === "rebuild" ? "Rebuilding" : `Building snapshot ${started.label} of`} ${started.projections.join(", ")} in ${describeDatabase(databaseConfig())}${started.fromSnapshot === null ? "" : ` from snapshot ${started.fromSnapshot} (${started.eventsSeeded} events)`} (run ${started.id})`,
          )
          const options = {
            ...(batchSize === undefined ? {} : { batchSize }),
            onProgress: (r: Run) => printer.update(r),
          }
          // The run is born claimed by this process; should another take it over (this one
          // stalled past the takeover window), execute returns it unfinished. Follow it to its
          // end (and take it back should that worker die) rather than report it "ended running".
          const follow = Effect.gen(function* () {
            let run = yield* engine.execute(started.id, options)
            if (run.state === "running" || run.state === "cancelling")
              console.error(`  another process (the running server?) works run ${run.id}; following it`)
            while (run.state === "running" || run.state === "cancelling") {
              printer.update(run)
              yield* Effect.sleep("250 millis")
              run = yield* engine.execute(started.id, options)
            }
            return run
          })
          return yield* follow.pipe(
            Effect.onInterrupt(() =>
              engine.cancel(started.id).pipe(Effect.andThen(engine.execute(started.id)), Effect.ignore),
            ),
          )
        }),
        true,
      )
      printer.done(run)
      if (run.state === "completed") {
        console.log(
          run.kind === "rebuild"
            ? run.fromSnapshot === null
              ? `Rebuilt ${run.projections.join(", ")} from ${run.eventsDone} events (${run.eventsPerSecond} events/s); the new tables are live`
              : `Rebuilt ${run.projections.join(", ")} from snapshot ${run.fromSnapshot} (${run.eventsSeeded} events) and ${run.eventsDone - run.eventsSeeded} events after it (${run.eventsPerSecond} events/s); the new tables are live`
            : `Snapshot ${run.label} holds ${run.projections.join(", ")} as of ${run.asOfCursor} (${run.eventsDone} events) in schema ${run.schema}`,
        )
        return 0
      }
      console.error(`chronicle: run ${run.id} ended ${run.state}${run.error ? `: ${run.error}` : ""}`)
      return 1
    }
    case "snapshots": {
      const drop = values.drop
      if (drop !== undefined) {
        await withStore(Effect.flatMap(Projections, (p) => p.dropSnapshot(drop)))
        console.log(`Dropped snapshot ${drop}`)
        return 0
      }
      const list = await withStore(Effect.flatMap(Projections, (p) => p.snapshots()))
      if (list.length === 0)
        console.log("No snapshots. Build one with `chronicle rebuild --all --as-of <…>`.")
      for (const s of list)
        console.log(
          `${s.label}  schema ${s.schema}  as of ${describeBound(s.asOf, s.asOfCursor)}  ${s.events} events  ${s.projections.join(",")}  taken ${utc(s.createdAt)}`,
        )
      return 0
    }
    case "export": {
      // A UUID in either case names the same session.
      const sessionId = positionals[0]?.toLowerCase()
      const file = values.out === undefined ? undefined : await openFile(values.out, "w")
      const out = file?.createWriteStream() ?? process.stdout
      const report = await withStore(
        sessionId === undefined
          ? exportLog(out).pipe(
              Effect.map(
                (r) =>
                  `Exported ${r.events} event(s) of the whole log${r.files > 0 ? ` and ${r.files} file(s)` : ""}`,
              ),
            )
          : exportSession(sessionId, out).pipe(
              Effect.map(
                (r) =>
                  `Exported ${r.events} event(s) of ${r.sessions} session stream(s)${r.files > 0 ? ` and ${r.files} file(s)` : ""}`,
              ),
            ),
      )
      if (file !== undefined) await new Promise<void>((resolve) => out.end(resolve))
      console.error(report)
      return 0
    }
    case "token": {
      if (values.user === undefined) return usageError("token: --user <uuid> names the user", command)
      const expires = parseDuration(values.expires ?? "1h")
      if (expires === null)
        return usageError(
          `token: --expires must be a duration such as 30m, 12h or 7d (at most a year), got ${JSON.stringify(values.expires)}`,
          command,
        )
      console.log(await mintUserToken(values.user, expires))
      return 0
    }
    case "purge": {
      if (values["graph-checkpoints"] === true) return await pruneCheckpoints(values, positionals)
      if (values.keep !== undefined || values.thread !== undefined)
        return usageError("purge: --keep and --thread go with --graph-checkpoints", command)
      const days = values["expired-days"] === undefined ? undefined : Number(values["expired-days"])
      const targets: Array<PurgeTarget> = [
        ...positionals.map((id) => ({ sessionId: id.toLowerCase() })),
        ...(values.owner === undefined ? [] : [{ ownerId: values.owner.toLowerCase() }]),
        ...(days === undefined ? [] : [{ expiredForDays: days }]),
      ]
      if (days !== undefined && !(Number.isFinite(days) && days >= 0))
        return usageError("purge: --expired-days must be a number of days >= 0", command)
      if (targets.length === 0)
        return usageError("purge: name the sessions, or give --owner or --expired-days", command)
      if (positionals.length > 0 && targets.length > positionals.length)
        return usageError("purge: name sessions, or give --owner or --expired-days, one of them", command)
      const dryRun = values["dry-run"] === true
      const [reports, snapshots] = await withStore(
        Effect.all([
          Effect.forEach(targets, (target) =>
            Effect.flatMap(Purge, (p) =>
              p.purge(serviceActor(), target, {
                reason: values.reason ?? null,
                dryRun,
                onProgress: (done, total) => {
                  if (!dryRun) process.stderr.write(`  purged ${done}/${total} session(s)\n`)
                },
              }),
            ),
          ).pipe(Effect.provide(Purge.layer)),
          Effect.flatMap(Projections, (p) => p.snapshots()),
        ]),
      )
      // Point-in-time snapshots are copies of the read models: the purge erases the sessions there too.
      if (snapshots.length > 0)
        console.error(
          `${dryRun ? "Would erase" : "Erased"} the session(s) from ${snapshots.length} snapshot(s) too: ${snapshots.map((s) => s.label).join(", ")}`,
        )
      const sessions = reports.flatMap((r) => r.sessions)
      const events = reports.reduce((n, r) => n + r.events, 0)
      const blobs = reports.reduce((n, r) => n + r.blobs, 0)
      const count = (n: number, what: string) => (n > 0 ? [`${n} ${what}`] : [])
      const others = [
        ...count(
          reports.reduce((n, r) => n + r.files, 0),
          "file(s)",
        ),
        ...count(
          reports.reduce((n, r) => n + r.jobs, 0),
          "job(s)",
        ),
        ...count(
          reports.reduce((n, r) => n + r.sandboxes, 0),
          "sandbox(es)",
        ),
        ...count(
          reports.reduce((n, r) => n + r.graphThreads, 0),
          "LangGraph thread(s)",
        ),
      ]
      const andOthers = others.length > 0 ? ` and ${others.join(", ")}` : ""
      if (dryRun) {
        for (const s of sessions) console.log(`${s.id}  ${s.events} event(s)`)
        console.error(
          `Would purge ${sessions.length} session(s)${andOthers}, ${events} event(s) (dry run: nothing written)`,
        )
      } else {
        for (const s of sessions) console.log(s.id)
        console.error(
          `Purged ${sessions.length} session(s)${andOthers}: ${events} event(s) redacted, ${blobs} file content(s) deleted`,
        )
      }
      return 0
    }
    case "import": {
      const owners = parseOwnerMap(values["map-owner"] ?? [])
      const input =
        values.in === undefined ? process.stdin : (await openFile(values.in, "r")).createReadStream()
      const report = await withStore(importEvents(input, (line) => console.error(`  ${line}`), owners))
      console.error(
        `Imported ${report.streams} stream(s): ${report.written} event(s) written, ${report.skipped} already present${report.files > 0 ? `; ${report.files} file(s) stored` : ""}${report.largeValues > 0 ? `; ${report.largeValues} large value(s) stored` : ""}`,
      )
      return 0
    }
  }
}

/** `chronicle purge --graph-checkpoints`: keeps the last --keep checkpoints of each thread and namespace. */
const pruneCheckpoints = async (
  values: { readonly [option: string]: unknown },
  positionals: ReadonlyArray<string>,
): Promise<number> => {
  const raw = values.keep as string | undefined
  const keep = raw === undefined ? Number.NaN : Number(raw)
  if (!(Number.isInteger(keep) && keep >= 1))
    return usageError(
      "purge: --graph-checkpoints needs --keep <k>, a whole number of checkpoints >= 1",
      "purge",
    )
  if (positionals.length > 0 || values["expired-days"] !== undefined || values.reason !== undefined)
    return usageError(
      "purge: --graph-checkpoints takes --keep, --thread, --owner and --dry-run only",
      "purge",
    )
  const owner = values.owner as string | undefined
  const thread = values.thread as string | undefined
  const dryRun = values["dry-run"] === true
  const report = await withStore(
    Effect.flatMap(Purge, (p) =>
      p.pruneGraphCheckpoints(
        serviceActor(),
        {
          keep,
          ...(thread === undefined ? {} : { threadId: thread }),
          ...(owner === undefined ? {} : { ownerId: owner.toLowerCase() }),
        },
        {
          dryRun,
          onProgress: (done, total) => {
            if (!dryRun) process.stderr.write(`  pruned ${done}/${total} thread(s)\n`)
          },
        },
      ),
    ).pipe(Effect.provide(Purge.layer)),
  )
  for (const t of report.threads)
    console.log(
      `${t.graphId}  ${t.threadId}  ${t.checkpoints} checkpoint(s)${dryRun ? "" : `, ${t.events} event(s) redacted`}`,
    )
  console.error(
    dryRun
      ? `Would prune ${report.checkpoints} checkpoint(s) of ${report.threads.length} thread(s), keeping the last ${keep} of each (dry run: nothing written)`
      : `Pruned ${report.checkpoints} checkpoint(s) of ${report.threads.length} thread(s), keeping the last ${keep} of each: ${report.events} event(s) redacted, ${report.blobs} large value(s) deleted`,
  )
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    const code = (error as NodeJS.ErrnoException | undefined)?.code
    if (error instanceof ConfigError || error instanceof TransferError)
      console.error(`chronicle: ${error.message}`)
    else if (code === "EADDRINUSE" || code === "EACCES") {
      const { address, port } = error as { address?: string; port?: number }
      console.error(
        `chronicle: cannot listen on ${address}:${port} (${code === "EADDRINUSE" ? "the port is in use" : "permission denied"}); choose another with PORT=…`,
      )
    } else if (typeof error === "object" && error !== null && "_tag" in error && error instanceof Error) {
      // A typed failure (the database cannot be opened, an unknown projection…).
      console.error(`chronicle: ${error.message}`)
    } else console.error(error)
    process.exitCode = 1
  },
)
