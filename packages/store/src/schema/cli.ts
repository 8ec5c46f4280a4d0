/**
 * `pnpm db:<command>`: the schema workbench from the command line.
 *
 *   check       the migrations build exactly the database supabase/schemas describes
 *   dispatch    regenerate supabase/schemas/90_dispatch.sql from the registered projections
 *   diff NAME   draft supabase/migrations/<timestamp>_NAME.sql from what the schema files add
 *
 * Scratch databases are made on the Postgres server of DATABASE_URL or TEST_DATABASE_URL (an
 * admin connection string) when one is set, in the embedded database otherwise.
 */
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { defaultMigrationsDir } from "../migrations.ts"
import { redactUrl } from "../postgres-driver.ts"
import { formatDifference } from "./catalog.ts"
import {
  catalogFromMigrations,
  catalogFromSchemas,
  checkSchema,
  DISPATCH_FILE,
  draftMigration,
  type Scratch,
  writeDispatchFile,
} from "./workbench.ts"

const USAGE = `usage: pnpm db:check | pnpm db:dispatch | pnpm db:diff <name>

  check       build a database from supabase/migrations and one from supabase/schemas, with and
              without Supabase's auth.uid(), and compare their catalogs (exit 1 if they differ)
  dispatch    regenerate supabase/schemas/${DISPATCH_FILE} from the registered projections
  diff NAME   write supabase/migrations/<timestamp>_NAME.sql: the statements that take the
              migrations' database to the schema files' (review it, then run db:check)

Scratch databases: on the server of DATABASE_URL or TEST_DATABASE_URL when set (an admin
connection string; each one is created and dropped), otherwise in the embedded database.`

const scratchFromEnv = (): Scratch => {
  const url = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL
  return url !== undefined && url !== "" && url !== "none"
    ? { kind: "postgres", adminUrl: url }
    : { kind: "pglite" }
}

const describeScratch = (s: Scratch) =>
  s.kind === "postgres" ? redactUrl(s.adminUrl) : "the embedded database"

const timestamp = () => new Date().toISOString().replace(/\D/g, "").slice(0, 14)

const main = async (args: ReadonlyArray<string>) => {
  const [command, ...rest] = args
  const scratch = scratchFromEnv()
  if (command === "check") {
    console.log(
      `Comparing supabase/migrations with supabase/schemas (scratch databases on ${describeScratch(scratch)})`,
    )
    let failed = false
    for (const withAuth of [false, true]) {
      const { objects, differences } = await Effect.runPromise(checkSchema(scratch, { withAuth }))
      const label = withAuth ? "with auth.uid()" : "plain"
      if (differences.length === 0) {
        console.log(`  ${label}: the same ${objects} objects`)
      } else {
        failed = true
        console.log(`  ${label}: ${differences.length} difference(s)`)
        for (const d of differences) {
          console.log(formatDifference(d, { left: "migrations", right: "schemas" }).replace(/^/gm, "    "))
        }
      }
    }
    if (failed) {
      console.log(
        "The migrations do not build the schema the files describe: add a migration (pnpm db:diff <name>).",
      )
      process.exitCode = 1
    }
    return
  }
  if (command === "dispatch") {
    const changed = await Effect.runPromise(writeDispatchFile(scratch))
    console.log(
      changed
        ? `Rewrote supabase/schemas/${DISPATCH_FILE}`
        : `supabase/schemas/${DISPATCH_FILE} is up to date`,
    )
    return
  }
  if (command === "diff") {
    const name = rest[0]
    if (name === undefined || !/^[a-z0-9_]+$/.test(name)) {
      console.error("db:diff needs a name in lower_snake_case: pnpm db:diff add_sequencer")
      process.exitCode = 2
      return
    }
    const [from, to] = await Effect.runPromise(
      Effect.all([
        catalogFromMigrations(scratch, { withAuth: true }),
        catalogFromSchemas(scratch, { withAuth: true }),
      ]),
    )
    const draft = draftMigration(from, to)
    if (draft.sql === "" && draft.manual.length === 0) {
      console.log("The migrations already build the schema the files describe: nothing to write.")
      return
    }
    const file = join(defaultMigrationsDir, `${timestamp()}_${name}.sql`)
    const todo = draft.manual.map((m) => `--   ${m}`).join("\n")
    await writeFile(
      file,
      `-- ${name}: drafted by \`pnpm db:diff\`; review before committing.\n` +
        (todo === "" ? "" : `--\n-- Not drafted (write these by hand, as the schema files do):\n${todo}\n`) +
        `\n${draft.sql}\n`,
    )
    console.log(`Wrote ${file}`)
    if (draft.manual.length > 0) {
      console.log(
        `${draft.manual.length} difference(s) need a hand-written statement (listed at the top of the file).`,
      )
    }
    console.log("Then run pnpm db:check.")
    return
  }
  console.log(USAGE)
  if (command !== undefined && command !== "--help" && command !== "-h") process.exitCode = 2
}

await main(process.argv.slice(2))
