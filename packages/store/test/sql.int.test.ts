/**
 * The database's own rules, tested in SQL: every `supabase/tests/*.test.sql` (pgTAP, as
 * `supabase test db` runs them) against a migrated database with Supabase's auth.uid() shim,
 * on Postgres (the pgtap extension: Debian's postgresql-<major>-pgtap) and on the embedded
 * database (pgTAP's own SQL loaded into it). Each file rolls itself back, so one database
 * serves them all. Each TAP line is checked here, so a failure names the assertion.
 */
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { PGlite } from "@electric-sql/pglite"
import { Effect, Layer } from "effect"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { Database, makeDatabase } from "../src/database.ts"
import { migrate } from "../src/migrations.ts"
import { makePgliteDriver } from "../src/pglite-driver.ts"
import { AUTH_SHIM } from "../src/schema/workbench.ts"
import { createPostgresDatabase } from "../src/testing.ts"

const postgresUrl = inject("postgresUrl")
/** Null in a project that runs on a newer Postgres major only. */
const embedded = inject("pgliteTemplate") !== null
const TESTS_DIR = fileURLToPath(new URL("../../../supabase/tests/", import.meta.url))
const files = (await readdir(TESTS_DIR)).filter((f) => f.endsWith(".test.sql")).sort()

/** pgTAP's install script, for the embedded database (which cannot CREATE EXTENSION it) and servers without it. */
const pgtapScript = async () => {
  const dir = "/usr/share/postgresql"
  const majors = (await readdir(dir).catch(() => [] as Array<string>)).sort((a, b) => Number(b) - Number(a))
  for (const major of majors) {
    const ext = join(dir, major, "extension")
    const script = (await readdir(ext).catch(() => [] as Array<string>)).find((f) =>
      /^pgtap--[\d.]+\.sql$/.test(f),
    )
    if (script !== undefined) return readFile(join(ext, script), "utf8")
  }
  throw new Error(
    "pgTAP is not installed: the SQL tests need it (Debian: apt-get install postgresql-15-pgtap; .ci/run installs it)",
  )
}

interface Runner {
  /** Runs a script of many statements; returns the first column of every row, as text. */
  readonly run: (script: string) => Promise<Array<string>>
  readonly close: () => Promise<void>
}

const firstColumns = (rows: ReadonlyArray<Record<string, unknown>>) =>
  rows.map((row) => String(Object.values(row)[0]))

const openPostgres = async (adminUrl: string): Promise<Runner> => {
  const created = await createPostgresDatabase(adminUrl)
  const sql = postgres(created.url, { max: 1, onnotice: () => {} })
  await sql.unsafe(AUTH_SHIM)
  await Effect.runPromise(
    migrate().pipe(Effect.provide(Database.layerPostgres({ url: created.url, max: 1 }).pipe(Layer.orDie))),
  )
  // A server without the packaged extension (a newer major's private cluster) gets pgTAP's SQL.
  const [packaged] = await sql`select count(*)::int as n from pg_available_extensions where name = 'pgtap'`
  if (packaged?.n === 1) await sql.unsafe("create extension if not exists pgtap")
  else await sql.unsafe(await pgtapScript())
  return {
    run: async (script) => {
      const results = (await sql.unsafe(script)) as unknown as Array<Array<Record<string, unknown>>>
      return results.flatMap((r) => (Array.isArray(r) ? firstColumns(r) : []))
    },
    close: async () => {
      await sql.end({ timeout: 1 })
      await created.drop()
    },
  }
}

const openPglite = async (): Promise<Runner> => {
  const driver = await makePgliteDriver({ dataDir: undefined })
  await driver.exec(AUTH_SHIM)
  await Effect.runPromise(migrate().pipe(Effect.provideService(Database, makeDatabase(driver))))
  const pglite = await PGlite.create({ loadDataDir: await driver.dumpDataDir() })
  await driver.close()
  await pglite.exec(await pgtapScript())
  return {
    run: async (script) => (await pglite.exec(script)).flatMap((r) => firstColumns(r.rows)),
    close: () => pglite.close(),
  }
}

/** The plan, the passed and the failed assertions (with their diagnostics) of a TAP output. */
const parseTap = (lines: ReadonlyArray<string>) => {
  const all = lines.flatMap((l) => l.split("\n"))
  const plan = all.map((l) => /^1\.\.(\d+)$/.exec(l)).find((m) => m !== null)
  const failed: Array<string> = []
  let passed = 0
  for (const [i, line] of all.entries()) {
    if (/^ok \d+/.test(line)) passed++
    else if (/^not ok \d+/.test(line)) {
      const diagnostics = all
        .slice(i + 1)
        .filter((l, j, rest) => l.startsWith("#") && rest.slice(0, j).every((p) => p.startsWith("#")))
      failed.push([line, ...diagnostics].join("\n"))
    }
  }
  return {
    planned: plan ? Number(plan[1]) : undefined,
    passed,
    failed,
    finish: all.filter((l) => /^# Looks like/.test(l)),
  }
}

const targets = [
  ...(embedded ? [{ name: "pglite", open: openPglite }] : []),
  ...(postgresUrl === null ? [] : [{ name: "postgres", open: () => openPostgres(postgresUrl) }]),
]

describe.each(targets)("SQL tests (supabase/tests) on $name", (target) => {
  let runner: Runner
  beforeAll(async () => {
    runner = await target.open()
  })
  afterAll(async () => {
    await runner?.close()
  })

  it.each(files)("%s", async (file) => {
    const tap = parseTap(await runner.run(await readFile(join(TESTS_DIR, file), "utf8")))
    expect(tap.failed).toEqual([])
    expect(tap.finish).toEqual([])
    expect(tap.planned).toBeGreaterThan(0)
    expect(tap.passed).toBe(tap.planned)
  })
})
