/**
 * A page of a session's content reads about a page of rows, wherever the cursor is and however
 * long the session: the page's key range goes to the index, also in a generic plan (the plan a
 * prepared statement settles on after its first runs). Checked by what the page's statement
 * reads of chronicle.messages (the backend's counters in pg_stat_xact_user_tables, before and
 * after it, in one transaction), not by timing.
 */
import { Database } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Content } from "../src/content.ts"
import { domainRuntimeFor, env, newUser } from "./support.ts"

const MESSAGES = 3000
const PAGE = 100

describe.each(testDatabases(env))("the cost of a content page, on $name", (database) => {
  const t = domainRuntimeFor(database)

  it("reads about a page of messages for a page in the middle of a long session, in a generic plan", async () => {
    const alice = newUser()
    const session = await t.sessions((s) => s.create(alice, { title: "long" }))
    for (let from = 0; from < MESSAGES; from += 1000) {
      await t.content((c) =>
        c.appendMessages(
          alice,
          session.id,
          Array.from({ length: 1000 }, (_, i) => ({ role: "user" as const, content: `m ${from + i + 1}` })),
        ),
      )
    }
    await t.run(Effect.flatMap(Database, (db) => db.query("analyze chronicle.messages")))
    // The cursor after the 1,500th message, as the listing hands it out.
    let cursor: string | null = null
    for (let i = 0; i < 15; i++) {
      const page: { readonly nextCursor: string | null } = await t.content((c) =>
        c.listMessages(alice, session.id, { limit: PAGE, cursor }),
      )
      cursor = page.nextCursor
    }
    const { items, read } = await t.run(
      Effect.gen(function* () {
        const db = yield* Database
        const content = yield* Content
        const counters = db
          .query<{ rows: number }>(
            `select (seq_tup_read + coalesce(idx_tup_fetch, 0))::int as rows
               from pg_stat_xact_user_tables where schemaname = 'chronicle' and relname = 'messages'`,
          )
          .pipe(Effect.map((rows) => rows[0]!.rows))
        return yield* db.transaction(
          Effect.gen(function* () {
            // The plan a prepared statement uses once it stops planning for each call's values.
            yield* db.query("set local plan_cache_mode = force_generic_plan")
            const before = yield* counters
            const page = yield* content.listMessages(alice, session.id, { limit: PAGE, cursor })
            const after = yield* counters
            return { items: page.items, read: after - before }
          }),
        )
      }),
    )
    expect(items.map((m) => m.seq)).toEqual(Array.from({ length: PAGE }, (_, i) => 1501 + i))
    // The page and the row that says there is more; not the 1,500 rows past the cursor.
    expect(read).toBeLessThanOrEqual(2 * PAGE)
    expect(read).toBeGreaterThan(0)
  })
})
