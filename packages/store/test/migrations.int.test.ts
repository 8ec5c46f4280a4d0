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

interface Target {
  readonly name: string
  readonly open: () => Promise<{ layer: () => Layer.Layer<Database>; close: () => Promise<void> }>
}

const targets: Array<Target> = [
  {
    name: "pglite",
    open: async () => {
      const dir = await mkdtemp(join(tmpdir(), "chronicle-migrate-"))
      return {
        // The embedded database holds its directory exclusively: one layer at a time.
        layer: () => Database.layerPglite({ dataDir: dir }).pipe(Layer.orDie),
        close: () => rm(dir, { recursive: true, force: true }),
      }
    },
  },
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
    })
    const second = await withDb(migrate(dir))
    expect(Exit.isSuccess(second) && second.value).toEqual({ applied: [], alreadyApplied: files.length })
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

  it("refuses a migration file whose name does not follow the convention", async () => {
    const other = await mkdtemp(join(tmpdir(), "chronicle-badname-"))
    await writeFile(join(other, "001_init.sql"), "select 1;")
    const exit = await Effect.runPromiseExit(loadMigrations(other))
    expect(JSON.stringify(exit)).toContain("14-digit timestamp")
    await rm(other, { recursive: true, force: true })
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
