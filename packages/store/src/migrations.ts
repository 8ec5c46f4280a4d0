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
  /**
   * Migrations found recorded by the Supabase CLI (`supabase db push`) and not by Chronicle:
   * already applied, so only recorded here.
   */
  readonly adopted: ReadonlyArray<string>
  /** Set when the ledger of a pre-release database was converted to the baseline. */
  readonly converted?: string | undefined
}

/** The schema and the ledger of applied migrations, created when missing. */
export const ensureLedger = Effect.gen(function* () {
  const db = yield* Database
  // Checked first: a role that may not create (the service's own) still finds the ledger.
  const [ledger] = yield* db.query<{ exists: boolean }>(
    "select to_regclass('chronicle.schema_migrations') is not null as exists",
  )
  if (ledger?.exists) return
  yield* db.query(`create schema if not exists chronicle`)
  yield* db.query(
    `create table if not exists chronicle.schema_migrations (
       version    text primary key,
       name       text not null,
       checksum   text not null,
       applied_at timestamptz not null default now())`,
  )
})

// Any constant works; it only has to be the same for every Chronicle process.
const MIGRATION_LOCK = 7_261_123

/**
 * The twelve migrations of the pre-release builds, replaced by the baseline
 * (20261204000000_baseline.sql). Their result is the baseline's database exactly (the two
 * catalogs were compared object by object, with and without Supabase's roles and auth), so a
 * database that applied all twelve, unedited, is recorded as having applied the baseline.
 */
const PRE_RELEASE: ReadonlyArray<readonly [name: string, checksum: string]> = [
  ["20261123000000_event_log", "5a49691089557d29d4ab5d77cb9e8012e57fae2da26c5313ef76b3cab9a2137c"],
  ["20261123000100_read_models", "a0a6126ac7abc036a1197352c4a8b3f29a88963d44cbaae2ebce04d2bdb4faf0"],
  ["20261123000200_analytics_views", "085563e89c73b485a46750497cf27aaf1e92214e68df6fd1e29114617ea0611f"],
  ["20261123000300_row_level_security", "5ec1d964dc574dc809037fcfd4ed75cd04a538cc59892793d062da2ac077246d"],
  ["20261124000000_projection_engine", "544db958333335a1f75ba38e762b3be7969981205f0ea2732ec020e5d33ebc4c"],
  ["20261124000100_graph_checkpoints", "c01642355f78b2099107b440c1cc404bc08412b57bba345ab03fd303ca9a30b7"],
  ["20261124000200_build_fast_path", "2b35523d94aa0fa63ddb65bb1336fe2c28160451d34622b509e83c0bf690390a"],
  ["20261124000900_append_fast_path", "c972854505c122195f15a1c0ddee72c3d9d200bc9e8ce47b40762a21ecae95ea"],
  ["20261124001000_policy_initplans", "598f3c856716e3ddd9e360e4422b69ac5b691496fc9055f4fccd114c5037cf97"],
  ["20261124002000_session_search", "56a1fede3407f5568310984581e03c6abb907e1d35fb40ecd80aa220d82fc8ec"],
  [
    "20261124002100_rebuild_from_snapshot",
    "3ded7f8ebb00dd30432626971fef90c9abfdfcfa40b3cce89577dcdb397a5467",
  ],
  ["20261124002300_status_row_estimates", "680cc74eb74488c332f94b5755ef0daf6a60a2343f7126aea90be4c16301cb16"],
]
export const BASELINE_VERSION = "20261204000000"

const RESET_ADVICE =
  "Start from a fresh database (the embedded one: move ./.chronicle/data away; Postgres: DROP SCHEMA chronicle CASCADE, or a new database) and bring the data over with `chronicle export` run by the build that made it, then `chronicle import`."

interface LedgerRow {
  readonly version: string
  readonly name: string
  readonly checksum: string
}

/**
 * A ledger written by the pre-release builds becomes the baseline's, in the migration's
 * transaction; one that is incomplete or edited is refused with what to do.
 */
const convertPreRelease = (applied: ReadonlyArray<LedgerRow>, baseline: Migration | undefined) =>
  Effect.gen(function* () {
    const known = new Map(PRE_RELEASE.map(([name, checksum]) => [name.slice(0, 14), { name, checksum }]))
    const old = applied.filter((row) => known.has(row.version))
    if (old.length === 0) return { applied, converted: undefined }
    const intact =
      old.length === PRE_RELEASE.length &&
      old.every((row) => known.get(row.version)?.checksum === row.checksum) &&
      baseline !== undefined &&
      !applied.some((row) => row.version === BASELINE_VERSION)
    if (!intact) {
      return yield* new MigrationMismatch({
        migration: old[0]!.name,
        reason: `this database was made by a pre-release build of Chronicle whose schema history (${old.length} of its ${PRE_RELEASE.length} migrations, ${old.every((row) => known.get(row.version)?.checksum === row.checksum) ? "unedited" : "some edited"}) cannot be converted to the baseline. ${RESET_ADVICE}`,
      })
    }
    const db = yield* Database
    yield* db.query("delete from chronicle.schema_migrations where version = any ($1::text[])", [
      old.map((row) => row.version),
    ])
    yield* db.query("insert into chronicle.schema_migrations (version, name, checksum) values ($1, $2, $3)", [
      baseline.version,
      baseline.name,
      baseline.checksum,
    ])
    const converted = `the ledger of the ${PRE_RELEASE.length} pre-release migrations now records ${baseline.name}, which builds the same database`
    return {
      applied: [
        ...applied.filter((row) => !known.has(row.version)),
        { version: baseline.version, name: baseline.name, checksum: baseline.checksum },
      ].sort((a, b) => a.version.localeCompare(b.version)),
      converted,
    }
  })

/** This connection's role, the chronicle schema's owner, and whether the role acts as it. */
const schemaOwnership = Effect.gen(function* () {
  const db = yield* Database
  const [row] = yield* db.query<{ role: string; owner: string | null; may: boolean }>(
    `select current_user::text as role, n.nspowner::regrole::text as owner,
            coalesce(pg_has_role(current_user, n.nspowner, 'USAGE'), true) as may
       from (select 1) one left join pg_namespace n on n.nspname = 'chronicle'`,
  )
  return row ?? { role: "", owner: null, may: true }
})

/**
 * Migrating is the schema owner's job: a role that does not own the schema (the service's
 * runtime role, see 06_security.sql) is told so instead of failing half-way through a file.
 */
const refuseUnlessOwner = (first: Migration) =>
  Effect.gen(function* () {
    const row = yield* schemaOwnership
    if (row.may) return
    return yield* new MigrationMismatch({
      migration: first.name,
      reason: `is not applied, and this connection's role ${row.role} does not own the chronicle schema (${row.owner} does), so it may not migrate. Run \`chronicle migrate\` with DATABASE_URL naming the owner (or \`supabase db push\`), then start the service again`,
    })
  })

/**
 * The service's role, its grants and policies, put back when missing: a dump restored into
 * another server may arrive without the role (roles belong to the server) or without the grants
 * (`pg_restore --no-privileges`). Only the owner can; for anyone else this does nothing.
 */
const applyRuntimePrivileges = Effect.gen(function* () {
  const db = yield* Database
  const [fn] = yield* db.query<{ exists: boolean }>(
    "select to_regprocedure('chronicle.apply_runtime_privileges()') is not null as exists",
  )
  if (!fn?.exists || !(yield* schemaOwnership).may) return
  yield* db.query("select chronicle.apply_runtime_privileges()")
})

/** The versions `supabase db push` recorded, when this database has the Supabase CLI's ledger. */
const supabaseLedger = Effect.gen(function* () {
  const db = yield* Database
  const [exists] = yield* db.query<{ exists: boolean }>(
    "select to_regclass('supabase_migrations.schema_migrations') is not null as exists",
  )
  if (!exists?.exists) return undefined
  const rows = yield* db.query<{ version: string }>(
    "select version from supabase_migrations.schema_migrations",
  )
  return new Set(rows.map((r) => r.version))
})

/**
 * Applies the pending migrations, in order, in one transaction that first takes an
 * advisory lock: two processes migrating at once apply each file exactly once. Refuses a
 * database where an applied migration's file was edited (checksum) or is missing.
 *
 * On Supabase the CLI keeps its own ledger (`supabase_migrations.schema_migrations`, written
 * by `supabase db push`). Both ledgers agree: a migration the CLI applied is recorded here
 * and not applied again, and one applied here is recorded there too, so either way of
 * migrating may come first.
 */
export const migrate = (dir: string = defaultMigrationsDir) =>
  Effect.gen(function* () {
    const db = yield* Database
    const migrations = yield* loadMigrations(dir)
    return yield* db.transaction(
      Effect.gen(function* () {
        yield* db.query("select pg_advisory_xact_lock($1)", [MIGRATION_LOCK])
        yield* ensureLedger
        const byVersion = new Map(migrations.map((m) => [m.version, m]))
        const { applied, converted } = yield* convertPreRelease(
          yield* db.query<LedgerRow>(
            "select version, name, checksum from chronicle.schema_migrations order by version",
          ),
          byVersion.get(BASELINE_VERSION),
        )
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
        const supabase = yield* supabaseLedger
        const adopted = migrations.filter((m) => !done.has(m.version) && supabase?.has(m.version) === true)
        for (const m of adopted) {
          yield* db.query(
            "insert into chronicle.schema_migrations (version, name, checksum) values ($1, $2, $3)",
            [m.version, m.name, m.checksum],
          )
          done.add(m.version)
        }
        const pending = migrations.filter((m) => !done.has(m.version))
        if (pending.length > 0) yield* refuseUnlessOwner(pending[0]!)
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
          if (supabase !== undefined) {
            yield* db.query(
              `insert into supabase_migrations.schema_migrations (version, name, statements)
               values ($1, $2, array[$3]) on conflict (version) do nothing`,
              [m.version, m.name.replace(/^\d{14}_/, "").replace(/\.sql$/, ""), m.sql],
            )
          }
        }
        yield* applyRuntimePrivileges
        return {
          applied: pending.map((m) => m.name),
          alreadyApplied: applied.length,
          adopted: adopted.map((m) => m.name),
          converted,
        } satisfies MigrationReport
      }),
    )
  }).pipe(Effect.withSpan("Migrations.migrate"))
