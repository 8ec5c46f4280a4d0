#!/usr/bin/env node
import { open } from "node:fs/promises"
import { parseArgs } from "node:util"
import { Projections } from "@chronicle/projections"
import { type Database, EventStore } from "@chronicle/store"
import { Effect, Layer, ManagedRuntime } from "effect"
import { ConfigError, databaseConfig, serverConfig } from "./config.ts"
import { describeDatabase, storeLayer } from "./database.ts"
import { serve } from "./serve.ts"
import { exportSession, importEvents, TransferError } from "./transfer.ts"

const USAGE = `Usage: chronicle <command> [options]

Commands:
  serve                          run the service (what \`pnpm start\` runs)
  migrate                        apply pending migrations and exit
  status                         print where the data lives and the head of the log
  rebuild                        rebuild every read model from the log
  export <session-id> [--out F]  write the session's events (and its fork ancestors') as NDJSON
  import [--in F]                append events exported by \`export\`; importing twice is a no-op

Without --out / --in, export writes to stdout and import reads stdin.
Configuration (DATABASE_URL, …) is read from the environment; see the README.`

const usageError = (message: string) => {
  console.error(`chronicle: ${message}\n\n${USAGE}`)
  return 2
}

/** The store on the configured database, migrated; with the projections for `rebuild`. */
const withStore = async <A>(
  effect: Effect.Effect<A, unknown, EventStore | Projections | Database>,
): Promise<A> => {
  const config = databaseConfig()
  const runtime = ManagedRuntime.make(
    Projections.layer.pipe(Layer.provideMerge(storeLayer(config)), Layer.orDie),
  )
  try {
    return await runtime.runPromise(effect)
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

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [command, ...rest] = argv
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE)
    return command === undefined ? 2 : 0
  }
  let parsed: ReturnType<
    typeof parseArgs<{ options: { out: { type: "string" }; in: { type: "string" } }; allowPositionals: true }>
  >
  try {
    parsed = parseArgs({
      args: [...rest],
      options: { out: { type: "string" }, in: { type: "string" } },
      allowPositionals: true,
    })
  } catch (error) {
    return usageError(`${command}: ${(error as Error).message}`)
  }
  const { values, positionals } = parsed
  const expect = (positional: number, options: ReadonlyArray<"out" | "in">) => {
    if (positionals.length > positional)
      return `${command}: unexpected argument ${JSON.stringify(positionals[positional])}`
    const extra = (["out", "in"] as const).find((o) => values[o] !== undefined && !options.includes(o))
    return extra === undefined ? undefined : `${command}: --${extra} is not an option of this command`
  }
  switch (command) {
    case "serve": {
      const problem = expect(0, [])
      return problem ? usageError(problem) : serve(serverConfig())
    }
    case "migrate":
    case "status": {
      const problem = expect(0, [])
      if (problem) return usageError(problem)
      const head = await withStore(Effect.flatMap(EventStore, (store) => store.head()))
      console.log(
        `${describeDatabase(databaseConfig())}: migrations applied; head at position ${head.globalPosition} (cursor ${head.cursor})`,
      )
      return 0
    }
    case "rebuild": {
      const problem = expect(0, [])
      if (problem) return usageError(problem)
      console.error(`Rebuilding the read models of ${describeDatabase(databaseConfig())} from the log…`)
      const report = await withStore(Effect.flatMap(Projections, (p) => p.rebuild()))
      console.log(
        `Rebuilt from ${report.events} events in ${report.milliseconds} ms (${report.eventsPerSecond} events/s)`,
      )
      return 0
    }
    case "export": {
      const problem = expect(1, ["out"])
      if (problem) return usageError(problem)
      const sessionId = positionals[0]
      if (sessionId === undefined) return usageError("export: name the session id to export")
      const file = values.out === undefined ? undefined : await openFile(values.out, "w")
      const out = file?.createWriteStream() ?? process.stdout
      const report = await withStore(exportSession(sessionId, out))
      if (file !== undefined) await new Promise<void>((resolve) => out.end(resolve))
      console.error(`Exported ${report.events} event(s) of ${report.sessions} session stream(s)`)
      return 0
    }
    case "import": {
      const problem = expect(0, ["in"])
      if (problem) return usageError(problem)
      const input =
        values.in === undefined ? process.stdin : (await openFile(values.in, "r")).createReadStream()
      const report = await withStore(importEvents(input, (line) => console.error(`  ${line}`)))
      console.error(
        `Imported ${report.streams} stream(s): ${report.written} event(s) written, ${report.skipped} already present`,
      )
      return 0
    }
    default:
      return usageError(`unknown command ${JSON.stringify(command)}`)
  }
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
      // A typed failure at start-up (the database cannot be opened, a migration was edited…).
      console.error(`chronicle: ${error.message}`)
    } else console.error(error)
    process.exitCode = 1
  },
)
