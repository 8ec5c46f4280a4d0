/**
 * A page reads about a page of rows, wherever the cursor is and however long the list: a
 * session's messages, a job's tasks. The page's key range goes to an index, also in a generic
 * plan (the plan a prepared statement settles on after its first runs). Checked by what the
 * page's statement reads of its table (the backend's counters in pg_stat_xact_user_tables,
 * before and after it, in one transaction), not by timing.
 */
import { Database } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Content } from "../src/content.ts"
import { Jobs } from "../src/jobs.ts"
import { domainRuntimeFor, env, newUser } from "./support.ts"

const MESSAGES = 3000
const PAGE = 100

/** What `list` read of chronicle.`table`, in a generic plan, and the page it returned. */
const rowsRead = <A, E, R>(table: string, list: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const db = yield* Database
    const counters = db
      .query<{ rows: number }>(
        `select (seq_tup_read + coalesce(idx_tup_fetch, 0))::int as rows
           from pg_stat_xact_user_tables where schemaname = 'chronicle' and relname = $1`,
        [table],
      )
      .pipe(Effect.map((rows) => rows[0]!.rows))
    return yield* db.transaction(
      Effect.gen(function* () {
        // The plan a prepared statement uses once it stops planning for each call's values.
        yield* db.query("set local plan_cache_mode = force_generic_plan")
        const before = yield* counters
        const page = yield* list
        const after = yield* counters
        return { page, read: after - before }
      }),
    )
  })

describe.each(testDatabases(env))("the cost of a page, on $name", (database) => {
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
    const { page, read } = await t.run(
      rowsRead(
        "messages",
        Effect.flatMap(Content, (c) => c.listMessages(alice, session.id, { limit: PAGE, cursor })),
      ),
    )
    const items = page.items
    expect(items.map((m) => m.seq)).toEqual(Array.from({ length: PAGE }, (_, i) => 1501 + i))
    // The page and the row that says there is more; not the 1,500 rows past the cursor.
    expect(read).toBeLessThanOrEqual(2 * PAGE)
    expect(read).toBeGreaterThan(0)
  })

  it("reads about a page of tasks for a page in the middle of a long job, in a generic plan", async () => {
    const TASKS = 600
    const alice = newUser()
    const job = await t.jobs((j) => j.create(alice, { type: "build", input: {} }))
    for (let i = 0; i < TASKS; i++)
      await t.jobs((j) => j.addTask(alice, job.id, { name: `t${i}`, input: { i } }))
    await t.run(Effect.flatMap(Database, (db) => db.query("analyze chronicle.tasks")))
    let cursor: string | null = null
    for (let i = 0; i < 3; i++) {
      const page: { readonly nextCursor: string | null } = await t.jobs((j) =>
        j.listTasks(alice, job.id, { limit: PAGE, cursor }),
      )
      cursor = page.nextCursor
    }
    const { page, read } = await t.run(
      rowsRead(
        "tasks",
        Effect.flatMap(Jobs, (j) => j.listTasks(alice, job.id, { limit: PAGE, cursor })),
      ),
    )
    expect(page.items.map((task) => task.name)).toEqual(Array.from({ length: PAGE }, (_, i) => `t${300 + i}`))
    // The page and the row that says there is more; not all 600 of the job's tasks.
    expect(read).toBeLessThanOrEqual(2 * PAGE)
    expect(read).toBeGreaterThan(0)
  })
})
