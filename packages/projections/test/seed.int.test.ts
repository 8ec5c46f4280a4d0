import { readFile } from "node:fs/promises"
import { Database } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { env, harnessFor } from "./support.ts"

const SEED = new URL("../../../supabase/seed.sql", import.meta.url)

describe.each(testDatabases(env))("supabase/seed.sql on $name", (database) => {
  const h = harnessFor(database)

  it("writes the demo session through the log, projected like any other, and is safe to run twice", async () => {
    const seed = await readFile(SEED, "utf8")
    await h.run(Effect.flatMap(Database, (db) => db.exec(seed)))
    await h.run(Effect.flatMap(Database, (db) => db.exec(seed)))
    const session = await h.one<{ title: string; message_count: number; version: number }>(
      "select title, message_count, version from chronicle.sessions where id = '0b6f2c7e-5a4d-4c3b-9a1e-6d5f4e3c2b1a'",
    )
    expect(session).toEqual({ title: "Demo: plan a small CLI", message_count: 2, version: 3 })
    const messages = await h.query<{ seq: number; role: string }>(
      "select seq, role from chronicle.messages where session_id = '0b6f2c7e-5a4d-4c3b-9a1e-6d5f4e3c2b1a' order by seq",
    )
    expect(messages).toEqual([
      { seq: 1, role: "user" },
      { seq: 2, role: "assistant" },
    ])
  })
})
