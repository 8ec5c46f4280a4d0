/**
 * Shared by the CLI tests that run `chronicle` against a Postgres database: the command run to
 * completion as a child process, a short-lived connection for the test's own reads, and the
 * log's head read through it.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Database, type DatabaseService } from "@chronicle/store"
import { Effect, Layer, ManagedRuntime } from "effect"

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url))
const NO_AUTH = { SUPABASE_URL: "", SUPABASE_JWT_SECRET: "", CHRONICLE_SERVICE_KEY: "" }

/** Runs the CLI to completion, collecting its output; never throws. */
export const cli = (args: ReadonlyArray<string>, databaseUrl: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...NO_AUTH, DATABASE_URL: databaseUrl },
      stdio: ["ignore", "pipe", "pipe"],
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.on("exit", (code) => resolve({ code: code ?? 1, stdout, stderr }))
  })

/**
 * Gives every event appended so far (by SQL here, not through a store) its place in the log's
 * order: a sequencer pass that completes any pass under way, then one from now.
 */
export const sequenceAll = (db: DatabaseService) =>
  Effect.andThen(
    db.query("select * from chronicle.sequence_events(null)"),
    db.query("select * from chronicle.sequence_events(null)"),
  )

export const withDatabase = async <A>(url: string, f: Effect.Effect<A, unknown, Database>) => {
  const runtime = ManagedRuntime.make(Database.layerPostgres({ url, prepare: true }).pipe(Layer.orDie))
  try {
    return await runtime.runPromise(f)
  } finally {
    await runtime.dispose()
  }
}

/** How many events the log holds, and the cursor of its last one, once every event has its place. */
export const logHead = (url: string) =>
  withDatabase(
    url,
    Effect.flatMap(Database, (d) =>
      Effect.andThen(
        sequenceAll(d),
        d.query<{ n: number; cursor: string }>(
          `select count(*)::int as n,
                (select last_seq::text from chronicle.sequencer) as cursor
           from chronicle.events`,
        ),
      ),
    ),
  ).then((rows) => rows[0]!)
