import { randomUUID } from "node:crypto"
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Layer, ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database } from "../src/database.ts"
import { EventStore } from "../src/event-store.ts"
import { defaultMigrationsDir, loadMigrations, migrate } from "../src/migrations.ts"
import { createPostgresDatabase } from "../src/testing.ts"

const postgresUrl = inject("postgresUrl")
/** Null in a project that runs on a newer Postgres major only. */
const embedded = inject("pgliteTemplate") !== null

interface Target {
  readonly name: string
  readonly open: () => Promise<{ layer: () => Layer.Layer<Database>; close: () => Promise<void> }>
}

const pgliteTarget: Target = {
  name: "pglite",
  open: async () => {
    const dir = await mkdtemp(join(tmpdir(), "chronicle-migrate-"))
    return {
      // The embedded database holds its directory exclusively: one layer at a time.
      layer: () => Database.layerPglite({ dataDir: dir }).pipe(Layer.orDie),
      close: () => rm(dir, { recursive: true, force: true }),
    }
  },
}

const targets: Array<Target> = [
  ...(embedded ? [pgliteTarget] : []),
  ...(postgresUrl === null
    ? []
    : [
        {
          name: "postgres",
          open: async () => {
            const created = await createPostgresDatabase(postgresUrl)
            return {
              layer: () => Database.layerPostgres({ url: created.url, max: 2 }).pipe(Layer.orDie),
              close: created.drop,
            }
          },
        },
      ]),
]

const appliedRows = Effect.flatMap(Database, (db) =>
  db.query<{ name: string }>("select name from chronicle.schema_migrations order by version"),
)

describe.each(targets)("migrations on $name", (target) => {
  let opened: Awaited<ReturnType<Target["open"]>>
  let dir: string
  beforeAll(async () => {
    opened = await target.open()
    dir = await mkdtemp(join(tmpdir(), "chronicle-migrations-"))
    await cp(defaultMigrationsDir, dir, { recursive: true })
  })
  afterAll(async () => {
    await opened.close()
    await rm(dir, { recursive: true, force: true })
  })

  const withDb = <A, E>(effect: Effect.Effect<A, E, Database>) =>
    Effect.runPromiseExit(Effect.provide(effect, opened.layer()))

  it("applies every file once, in order, then re-running is a no-op", async () => {
    const files = await Effect.runPromise(loadMigrations(dir))
    const first = await withDb(migrate(dir))
    expect(Exit.isSuccess(first) && first.value).toEqual({
      applied: files.map((f) => f.name),
      alreadyApplied: 0,
      adopted: [],
    })
    const second = await withDb(migrate(dir))
    expect(Exit.isSuccess(second) && second.value).toEqual({
      applied: [],
      alreadyApplied: files.length,
      adopted: [],
    })
    const rows = await withDb(appliedRows)
    expect(Exit.isSuccess(rows) && rows.value.map((r) => r.name)).toEqual(files.map((f) => f.name))
  })

  it("applies a new file, then refuses the database once that file is edited or removed", async () => {
    const extra = join(dir, "20991231000000_test_extra.sql")
    await writeFile(extra, "create table chronicle.test_extra (id int);\n")
    const applied = await withDb(migrate(dir))
    expect(Exit.isSuccess(applied) && applied.value.applied).toEqual(["20991231000000_test_extra.sql"])

    await writeFile(extra, "create table chronicle.test_extra (id bigint);\n")
    const edited = await withDb(migrate(dir))
    expect(Exit.isFailure(edited)).toBe(true)
    expect(JSON.stringify(edited)).toContain("was edited after it was applied")

    await rm(extra)
    const missing = await withDb(migrate(dir))
    expect(JSON.stringify(missing)).toContain("has no file here")
  })

  it("converts the ledger of a pre-release database to the baseline, and refuses an incomplete one", async () => {
    // What the pre-release builds recorded: their twelve files, by name and checksum.
    const preRelease = [
      ["20261123000000_event_log", "5a49691089557d29d4ab5d77cb9e8012e57fae2da26c5313ef76b3cab9a2137c"],
      ["20261123000100_read_models", "a0a6126ac7abc036a1197352c4a8b3f29a88963d44cbaae2ebce04d2bdb4faf0"],
      ["20261123000200_analytics_views", "085563e89c73b485a46750497cf27aaf1e92214e68df6fd1e29114617ea0611f"],
      [
        "20261123000300_row_level_security",
        "5ec1d964dc574dc809037fcfd4ed75cd04a538cc59892793d062da2ac077246d",
      ],
      [
        "20261124000000_projection_engine",
        "544db958333335a1f75ba38e762b3be7969981205f0ea2732ec020e5d33ebc4c",
      ],
      [
        "20261124000100_graph_checkpoints",
        "c01642355f78b2099107b440c1cc404bc08412b57bba345ab03fd303ca9a30b7",
      ],
      ["20261124000200_build_fast_path", "2b35523d94aa0fa63ddb65bb1336fe2c28160451d34622b509e83c0bf690390a"],
      ["20261124000900_append_fast_path", "c972854505c122195f15a1c0ddee72c3d9d200bc9e8ce47b40762a21ecae95ea"],
      ["20261124001000_policy_initplans", "598f3c856716e3ddd9e360e4422b69ac5b691496fc9055f4fccd114c5037cf97"],
      ["20261124002000_session_search", "56a1fede3407f5568310984581e03c6abb907e1d35fb40ecd80aa220d82fc8ec"],
      [
        "20261124002100_rebuild_from_snapshot",
        "3ded7f8ebb00dd30432626971fef90c9abfdfcfa40b3cce89577dcdb397a5467",
      ],
      [
        "20261124002300_status_row_estimates",
        "680cc74eb74488c332f94b5755ef0daf6a60a2343f7126aea90be4c16301cb16",
      ],
    ] as const
    const files = await Effect.runPromise(loadMigrations(dir))
    // A fresh database of its own: the others in this file are migrated already.
    const own = await target.open()
    const withDb = <A, E>(effect: Effect.Effect<A, E, Database>) =>
      Effect.runPromiseExit(Effect.provide(effect, own.layer()))
    const recordPreRelease = (rows: ReadonlyArray<readonly [string, string]>) =>
      Effect.flatMap(Database, (db) =>
        db.transaction(
          Effect.gen(function* () {
            yield* db.query("delete from chronicle.schema_migrations")
            for (const [name, checksum] of rows) {
              yield* db.query(
                "insert into chronicle.schema_migrations (version, name, checksum) values ($1, $2, $3)",
                [name.slice(0, 14), `${name}.sql`, checksum],
              )
            }
          }),
        ),
      )
    // A pre-release database holds exactly the baseline's schema.
    const baselineOnly = await mkdtemp(join(tmpdir(), "chronicle-baseline-"))
    const baseline = files.find((f) => f.version === "20261204000000")!
    await writeFile(join(baselineOnly, baseline.name), baseline.sql)
    await withDb(migrate(baselineOnly))
    await rm(baselineOnly, { recursive: true, force: true })

    await withDb(recordPreRelease(preRelease.slice(0, 11)))
    const incomplete = await withDb(migrate(dir))
    expect(Exit.isFailure(incomplete)).toBe(true)
    expect(JSON.stringify(incomplete)).toContain("pre-release build of Chronicle")
    expect(JSON.stringify(incomplete)).toContain("11 of its 12 migrations")
    expect(JSON.stringify(incomplete)).toContain("chronicle export")

    await withDb(recordPreRelease(preRelease))
    const converted = await withDb(migrate(dir))
    expect(Exit.isSuccess(converted) && converted.value.converted).toContain("20261204000000_baseline.sql")
    expect(Exit.isSuccess(converted) && converted.value.applied).toEqual(
      files.filter((f) => f.version > "20261204000000").map((f) => f.name),
    )
    const rows = await withDb(appliedRows)
    expect(Exit.isSuccess(rows) && rows.value.map((r) => r.name)).toEqual(files.map((f) => f.name))
    const again = await withDb(migrate(dir))
    expect(Exit.isSuccess(again) && again.value).toEqual({
      applied: [],
      alreadyApplied: files.length,
      adopted: [],
    })
  })

  it("refuses a migration file whose name does not follow the convention", async () => {
    const other = await mkdtemp(join(tmpdir(), "chronicle-badname-"))
    await writeFile(join(other, "001_init.sql"), "select 1;")
    const exit = await Effect.runPromiseExit(loadMigrations(other))
    expect(JSON.stringify(exit)).toContain("14-digit timestamp")
    await rm(other, { recursive: true, force: true })
  })
})

describe.each(targets)("the Supabase CLI's ledger on $name", (target) => {
  // What `supabase db push` keeps: the versions it applied, in its own schema.
  const SUPABASE_LEDGER = `create schema supabase_migrations;
    create table supabase_migrations.schema_migrations (version text primary key, statements text[], name text);`
  const supabaseVersions = Effect.flatMap(Database, (db) =>
    db.query<{ version: string }>(
      "select version from supabase_migrations.schema_migrations order by version",
    ),
  )

  it("records what `supabase db push` applied and applies nothing twice", async () => {
    const opened = await target.open()
    try {
      const files = await Effect.runPromise(loadMigrations())
      // The CLI's way: each file in a transaction, then its version in the CLI's ledger.
      await Effect.runPromise(
        Effect.provide(
          Effect.gen(function* () {
            const db = yield* Database
            yield* db.exec(SUPABASE_LEDGER)
            for (const f of files) {
              yield* db.transaction(
                Effect.gen(function* () {
                  yield* db.exec(f.sql)
                  yield* db.query(
                    "insert into supabase_migrations.schema_migrations (version, name, statements) values ($1, $2, array[$3])",
                    [f.version, f.name, f.sql],
                  )
                }),
              )
            }
          }),
          opened.layer(),
        ),
      )
      const report = await Effect.runPromise(Effect.provide(migrate(), opened.layer()))
      expect(report).toEqual({ applied: [], alreadyApplied: 0, adopted: files.map((f) => f.name) })
      const again = await Effect.runPromise(Effect.provide(migrate(), opened.layer()))
      expect(again).toEqual({ applied: [], alreadyApplied: files.length, adopted: [] })
    } finally {
      await opened.close()
    }
  })

  it("records what it applies in the CLI's ledger, so `supabase db push` finds nothing to do", async () => {
    const opened = await target.open()
    try {
      const files = await Effect.runPromise(loadMigrations())
      const versions = await Effect.runPromise(
        Effect.provide(
          Effect.gen(function* () {
            yield* Effect.flatMap(Database, (db) => db.exec(SUPABASE_LEDGER))
            yield* migrate()
            return yield* supabaseVersions
          }),
          opened.layer(),
        ),
      )
      expect(versions.map((v) => v.version)).toEqual(files.map((f) => f.version))
    } finally {
      await opened.close()
    }
  })
})

describe.runIf(postgresUrl !== null)("concurrent migration runners (Postgres)", () => {
  it("two processes migrating one fresh database at once apply each file exactly once", async () => {
    const created = await createPostgresDatabase(postgresUrl!)
    try {
      const runners = Array.from({ length: 3 }, () =>
        ManagedRuntime.make(Database.layerPostgres({ url: created.url, max: 2 }).pipe(Layer.orDie)),
      )
      const results = await Promise.all(runners.map((r) => r.runPromise(migrate())))
      const files = await Effect.runPromise(loadMigrations())
      expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, files.length])
      const rows = await runners[0]!.runPromise(appliedRows)
      expect(rows.map((r) => r.name)).toEqual(files.map((f) => f.name))
      await Promise.all(runners.map((r) => r.dispose()))
    } finally {
      await created.drop()
    }
  })
})

describe("the embedded database on disk", () => {
  it("keeps appended events across a close and re-open of its data directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "chronicle-data-"))
    const open = () =>
      ManagedRuntime.make(
        EventStore.layer().pipe(
          Layer.provideMerge(
            Layer.effectDiscard(migrate().pipe(Effect.orDie)).pipe(
              Layer.provideMerge(Database.layerPglite({ dataDir: dir }).pipe(Layer.orDie)),
            ),
          ),
        ),
      )
    const streamId = `session-${randomUUID()}`
    try {
      const first = open()
      await first.runPromise(
        Effect.flatMap(EventStore, (s) => s.append(streamId, [{ type: "Kept", data: { v: 1 } }])),
      )
      await first.dispose()
      const second = open()
      const page = await second.runPromise(Effect.flatMap(EventStore, (s) => s.readStream(streamId)))
      expect(page.events.map((e) => [e.type, e.data])).toEqual([["Kept", { v: 1 }]])
      await second.dispose()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
