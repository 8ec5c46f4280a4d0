import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { defaultMigrationsDir } from "../src/migrations.ts"
import { compareCatalogs } from "../src/schema/catalog.ts"
import { defaultSchemasDir } from "../src/schema/schema-files.ts"
import {
  catalogFromMigrations,
  catalogFromSchemas,
  checkSchema,
  DISPATCH_FILE,
  draftMigration,
  generateDispatchFile,
  type Scratch,
} from "../src/schema/workbench.ts"

const postgresUrl = inject("postgresUrl")
/** Null in a project that runs on a newer Postgres major only. */
const embedded = inject("pgliteTemplate") !== null

const scratches: ReadonlyArray<{ name: string; scratch: Scratch }> = [
  ...(embedded ? [{ name: "pglite", scratch: { kind: "pglite" } as const }] : []),
  ...(postgresUrl === null
    ? []
    : [{ name: "postgres", scratch: { kind: "postgres", adminUrl: postgresUrl } as const }]),
]

describe.each(scratches)("the schema files and the migrations on $name", ({ scratch }) => {
  it("the migrations build exactly the database the schema files describe, with and without auth.uid()", async () => {
    for (const withAuth of [false, true]) {
      const { objects, differences } = await Effect.runPromise(checkSchema(scratch, { withAuth }))
      expect(differences).toEqual([])
      // Tables, columns, functions, policies…: hundreds of objects, so the comparison compared something.
      expect(objects).toBeGreaterThan(500)
    }
  })

  it("the dispatcher file is the text the registry generates", async () => {
    const file = await readFile(join(defaultSchemasDir, DISPATCH_FILE), "utf8")
    const generated = await Effect.runPromise(generateDispatchFile(scratch))
    // Run `pnpm db:dispatch` when this fails.
    expect(file).toBe(generated)
  })
})

describe("the schema workbench notices a change and drafts the migration for it", () => {
  const scratch = scratches.at(-1)!.scratch
  let schemas: string
  let migrations: string
  beforeAll(async () => {
    schemas = await mkdtemp(join(tmpdir(), "chronicle-schemas-"))
    migrations = await mkdtemp(join(tmpdir(), "chronicle-migrations-"))
    await cp(defaultSchemasDir, schemas, { recursive: true })
    await cp(defaultMigrationsDir, migrations, { recursive: true })
    // A developer changes a function and adds an index in the schema files.
    const path = join(schemas, "03_read_models.sql")
    const text = await readFile(path, "utf8")
    const changed = text
      .replace(
        "select substr(p_stream_id, strpos(p_stream_id, '-') + 1)::uuid",
        "select substr(p_stream_id, strpos(p_stream_id, '-') + 1)::uuid -- changed",
      )
      .concat("\ncreate index messages_created_idx on chronicle.messages (created_at);\n")
    expect(changed).not.toBe(text)
    await writeFile(path, changed)
  })
  afterAll(async () => {
    await rm(schemas, { recursive: true, force: true })
    await rm(migrations, { recursive: true, force: true })
  })

  it("finds exactly the changed function and the new index, then none once the drafted migration is added", async () => {
    const before = await Effect.runPromise(
      checkSchema(scratch, { schemasDir: schemas, migrationsDir: migrations, withAuth: true }),
    )
    expect(before.differences.map((d) => d.key)).toEqual([
      "function chronicle.stream_uuid(text)",
      "index chronicle.messages_created_idx",
    ])

    const [from, to] = await Effect.runPromise(
      Effect.all([
        catalogFromMigrations(scratch, { migrationsDir: migrations, withAuth: true }),
        catalogFromSchemas(scratch, { schemasDir: schemas, withAuth: true }),
      ]),
    )
    const draft = draftMigration(from, to)
    expect(draft.manual).toEqual([])
    await writeFile(join(migrations, "20991231000000_test_change.sql"), `${draft.sql}\n`)

    const after = await Effect.runPromise(
      catalogFromMigrations(scratch, { migrationsDir: migrations, withAuth: true }),
    )
    expect(compareCatalogs(after, to)).toEqual([])
  })
})
