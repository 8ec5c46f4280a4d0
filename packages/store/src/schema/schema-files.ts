/**
 * The declarative schema: `supabase/schemas/*.sql`, the database as it is now, each object
 * defined once, applied in file-name order. A fresh database built from these files must be
 * exactly the database the migrations build (`pnpm db:check`).
 */
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { Database } from "../database.ts"
import { SqlError } from "../errors.ts"
import { ensureLedger } from "../migrations.ts"

/** `supabase/schemas` at the root of the repository. */
export const defaultSchemasDir = fileURLToPath(new URL("../../../../supabase/schemas/", import.meta.url))

export interface SchemaFile {
  readonly name: string
  readonly sql: string
}

const FILE = /^\d{2}_[a-z0-9_]+\.sql$/

/** Reads the schema files of `dir`, in order; a file not named `NN_name.sql` is refused. */
export const loadSchemaFiles = (dir: string = defaultSchemasDir) =>
  Effect.gen(function* () {
    const names = (yield* Effect.promise(() => readdir(dir))).filter((n) => n.endsWith(".sql")).sort()
    const files: Array<SchemaFile> = []
    for (const name of names) {
      if (!FILE.test(name)) {
        return yield* Effect.die(
          new Error(`${join(dir, name)}: a schema file is named NN_lower_snake_name.sql`),
        )
      }
      files.push({ name, sql: yield* Effect.promise(() => readFile(join(dir, name), "utf8")) })
    }
    return files
  })

/**
 * Builds the schema in an empty database straight from the schema files, in one
 * transaction (with the migration ledger the runner keeps, so both ways build the same).
 */
export const applySchemaFiles = (dir: string = defaultSchemasDir) =>
  Effect.gen(function* () {
    const db = yield* Database
    const files = yield* loadSchemaFiles(dir)
    yield* db.transaction(
      Effect.gen(function* () {
        yield* ensureLedger
        for (const file of files) {
          yield* db
            .exec(file.sql)
            .pipe(Effect.mapError((e) => new SqlError({ ...e, reason: `${file.name}: ${e.reason}` })))
        }
      }),
    )
    return files.map((f) => f.name)
  })
