/**
 * A batch appended by chronicle.append_events is projected together after its insert
 * (chronicle.project_inserted): a batch of messages of a session set-wise, one insert into
 * messages and one update of the session; any other batch event by event, as the row trigger
 * would have. Whatever the batch holds, the read models equal a from-scratch fold of the log,
 * and a batch a projection refuses writes nothing.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleEvent } from "@chronicle/events"
import { Database } from "@chronicle/store"
import { testDatabases } from "@chronicle/store/testing"
import { Effect } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels } from "../src/index.ts"
import { scratchFold } from "./engine-support.ts"
import { appendEffect, env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"

const OWNER = "00000000-0000-4000-8000-0000000000b7"

type Kind = "message" | "revision" | "draft" | "title" | "rollback" | "archive" | "reopen"

const kindArb: fc.Arbitrary<Kind> = fc.oneof(
  { weight: 8, arbitrary: fc.constant("message" as const) },
  {
    weight: 3,
    arbitrary: fc.constantFrom<Kind>("revision", "draft", "title", "rollback", "archive", "reopen"),
  },
)

describe.each(testDatabases(env))("a batch's inline projections on $name", (database) => {
  let h: Harness
  beforeAll(async () => {
    h = await makeHarness(database)
  })
  afterAll(() => h.dispose())

  const start = async () => {
    const id = randomUUID()
    await h.append(sessionStream(id), [ev.started(id, OWNER)])
    return id
  }

  it("updates the session row once for a batch of messages, not once per message", async () => {
    const id = await start()
    const messages = Array.from({ length: 40 }, (_, i) => ev.message(i + 1, `m ${i}`))
    // The rows the append inserted and updated: the backend's counters of its transaction,
    // before and after it (they may still hold the backend's earlier, unreported transactions).
    const counts = await h.run(
      Effect.gen(function* () {
        const db = yield* Database
        const read = db.query<{ relname: string; ins: number; upd: number }>(
          `select relname::text, n_tup_ins::int as ins, n_tup_upd::int as upd
             from pg_stat_xact_user_tables
            where schemaname = 'chronicle' and relname in ('sessions', 'messages', 'streams', 'events')
            order by relname`,
        )
        return yield* db.transaction(
          Effect.gen(function* () {
            const before = yield* read
            yield* appendEffect(sessionStream(id), messages)
            const after = yield* read
            return after.map((a) => {
              const b = before.find((r) => r.relname === a.relname)
              return { relname: a.relname, ins: a.ins - (b?.ins ?? 0), upd: a.upd - (b?.upd ?? 0) }
            })
          }),
        )
      }),
    )
    expect(counts).toEqual([
      { relname: "events", ins: 40, upd: 0 },
      { relname: "messages", ins: 40, upd: 0 },
      { relname: "sessions", ins: 0, upd: 1 },
      { relname: "streams", ins: 0, upd: 1 },
    ])
    const session = await h.one<{ version: number; message_count: number }>(
      "select version, message_count from chronicle.sessions where id = $1::uuid",
      [id],
    )
    expect(session).toEqual({ version: 41, message_count: 40 })
  })

  it("leaves the read models a from-scratch fold makes, whatever a batch holds", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(kindArb, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
        async (batches) => {
          const id = await start()
          let seq = 0
          let revision = 0
          let version = 1
          for (const kinds of batches) {
            const events = kinds.map((kind, i): ChronicleEvent => {
              if (kind === "message") {
                seq++
                return ev.message(seq, `m ${seq}`, { role: seq % 2 === 0 ? "assistant" : "user" })
              }
              if (kind === "revision") return ev.revision(++revision)
              if (kind === "draft") return ev.draft()
              if (kind === "title") return ev.updated({ title: `t ${version + i}` })
              if (kind === "rollback") return ev.rolledBack(1)
              return kind === "archive" ? ev.archived() : ev.reopened()
            })
            const result = await h.run(Effect.result(appendEffect(sessionStream(id), events)))
            // A batch a projection refuses (a rollback past history, say) writes nothing at all.
            if (result._tag === "Success") version += events.length
            const row = await h.one<{ version: number }>(
              "select version from chronicle.streams where stream_id = $1",
              [sessionStream(id)],
            )
            expect(row.version).toBe(version)
          }
          expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
        },
      ),
      { numRuns: 15 },
    )
  })

  it("refuses a whole batch when one of its messages cannot be projected", async () => {
    const id = await start()
    const taken = randomUUID()
    await h.append(sessionStream(id), [ev.message(1, "first", { messageId: taken })])
    const failure = await h.failure(
      appendEffect(sessionStream(id), [
        ev.message(2, "second"),
        ev.message(3, "again", { messageId: taken }),
      ]),
    )
    expect(String(failure)).toMatch(/messages_pkey|duplicate key/)
    const messages = await h.query("select seq from chronicle.messages where session_id = $1::uuid", [id])
    expect(messages).toEqual([{ seq: 1 }])
  })
})
