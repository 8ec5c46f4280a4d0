import { createHash } from "node:crypto"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { Database } from "./database.ts"
import { MigrationMismatch, SqlError } from "./errors.ts"

/** `supabase/migrations` at the root of the repository: the one source of the schema. */
export const defaultMigrationsDir = fileURLToPath(new URL("../../../supabase/migrations/", import.meta.url))

export interface Migration {
  /** The file name's leading timestamp: `20261123000000`. */
  readonly version: string
  /** The file name: `20261123000000_event_log.sql`. */
  readonly name: string
  readonly sql: string
  readonly checksum: string
}

const FILE = /^(\d{14})_[a-z0-9_]+\.sql$/

/** Reads the migration files of `dir`, in order. Other files are refused, not ignored. */
export const loadMigrations = (dir: string = defaultMigrationsDir) =>
  Effect.gen(function* () {
    const names = (yield* Effect.promise(() => readdir(dir))).filter((n) => n.endsWith(".sql")).sort()
    const migrations: Array<Migration> = []
    for (const name of names) {
      const match = FILE.exec(name)
      if (!match) {
        return yield* new MigrationMismatch({
          migration: name,
          reason: "the file name must be <14-digit timestamp>_<lower_snake_name>.sql",
        })
      }
      const sql = yield* Effect.promise(() => readFile(join(dir, name), "utf8"))
      migrations.push({
        version: match[1]!,
        name,
        sql,
        checksum: createHash("sha256").update(sql).digest("hex"),
      })
    }
    return migrations
  })

export interface MigrationReport {
  readonly applied: ReadonlyArray<string>
  readonly alreadyApplied: number
}

// Any constant works; it only has to be the same for every Chronicle process.
const MIGRATION_LOCK = 7_261_123

/**
 * Applies the pending migrations, in order, in one transaction that first takes an
 * advisory lock: two processes migrating at once apply each file exactly once. Refuses a
 * database where an applied migration's file was edited (checksum) or is missing.
 */
export const migrate = (dir: string = defaultMigrationsDir) =>
  Effect.gen(function* () {
    const db = yield* Database
    const migrations = yield* loadMigrations(dir)
    return yield* db.transaction(
      Effect.gen(function* () {
        yield* db.query("select pg_advisory_xact_lock($1)", [MIGRATION_LOCK])
        yield* db.query(`create schema if not exists chronicle`)
        yield* db.query(
          `create table if not exists chronicle.schema_migrations (
             version    text primary key,
             name       text not null,
             checksum   text not null,
             applied_at timestamptz not null default now())`,
        )
        const applied = yield* db.query<{ version: string; name: string; checksum: string }>(
          "select version, name, checksum from chronicle.schema_migrations order by version",
        )
        const byVersion = new Map(migrations.map((m) => [m.version, m]))
        for (const row of applied) {
          const file = byVersion.get(row.version)
          if (!file) {
            return yield* new MigrationMismatch({
              migration: row.name,
              reason:
                "is applied to this database but has no file here; this build is older than the database",
            })
          }
          if (file.checksum !== row.checksum) {
            return yield* new MigrationMismatch({
              migration: row.name,
              reason: `was edited after it was applied (checksum ${row.checksum.slice(0, 12)}… in the database, ${file.checksum.slice(0, 12)}… on disk); add a new migration instead`,
            })
          }
        }
        const done = new Set(applied.map((r) => r.version))
        const pending = migrations.filter((m) => !done.has(m.version))
        for (const m of pending) {
          yield* db
            .exec(m.sql)
            .pipe(
              Effect.mapError(
                (e) => new SqlError({ ...e, reason: `migration ${m.name} failed: ${e.reason}` }),
              ),
            )
          yield* db.query(
            "insert into chronicle.schema_migrations (version, name, checksum) values ($1, $2, $3)",
            [m.version, m.name, m.checksum],
          )
        }
        return {
          applied: pending.map((m) => m.name),
          alreadyApplied: applied.length,
        } satisfies MigrationReport
      }),
    )
  }).pipe(Effect.withSpan("Migrations.migrate"))
