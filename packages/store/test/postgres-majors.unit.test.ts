import { readFile } from "node:fs/promises"
import { describe, expect, it } from "vitest"
import { PINNED_MAJORS } from "../src/postgres-majors.ts"

describe("the Postgres majors the matrix tests", () => {
  it("include the one supabase/config.toml pins, so `supabase start` runs a tested major", async () => {
    const config = await readFile(new URL("../../../supabase/config.toml", import.meta.url), "utf8")
    const pinned = /^major_version\s*=\s*(\d+)/m.exec(config)?.[1]
    expect(pinned).toBeDefined()
    expect(PINNED_MAJORS).toContain(Number(pinned))
  })
})
