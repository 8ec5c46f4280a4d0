/**
 * Group commit and the inline read models: appends that share a transaction are written by
 * chronicle.append_group, set-wise where it can (one INSERT for the group, messages of
 * sessions projected together) and one by one otherwise (new streams, a stream named twice,
 * retries, a refused append). Whatever the mix, the read models must be what a from-scratch
 * fold of the log makes, and each append must succeed or fail as it would alone.
 */
import { randomUUID } from "node:crypto"
import { testDatabases } from "@chronicle/store/testing"
import { Effect, Exit } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dumpReadModels } from "../src/index.ts"
import { scratchFold } from "./engine-support.ts"
import { appendEffect, env, ev, type Harness, makeHarness, sessionStream } from "./support.ts"

const OWNER = "00000000-0000-4000-8000-0000000000d1"

type Op =
  | {
      readonly kind: "message" | "messages" | "revision" | "rollback" | "conflict" | "duplicate"
      readonly s: number
    }
  | { readonly kind: "start" }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("message" as const), s: fc.nat(4) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("messages" as const), s: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("revision" as const), s: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("rollback" as const), s: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("conflict" as const), s: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("duplicate" as const), s: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("start" as const) }) },
)

describe.each(testDatabases(env))("group commit and the inline read models on $name", (database) => {
  let h: Harness
  // One slot: whatever arrives while an append is in flight is committed as the next group.
  beforeAll(async () => {
    h = await makeHarness(database, { max: 8, groupCommit: { slots: 1, maxGroup: 50 } })
  })
  afterAll(() => h.dispose())

  it("concurrent appends of every kind leave the read models a from-scratch fold makes; each fails or succeeds as it would alone", async () => {
    let groups = 0
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 4, maxLength: 40 }), async (ops) => {
        // Five sessions, each with a message whose id the "duplicate" appends re-use.
        const sessions = Array.from({ length: 5 }, () => randomUUID())
        const taken = sessions.map(() => randomUUID())
        for (const [i, id] of sessions.entries()) {
          await h.append(sessionStream(id), [
            ev.started(id, OWNER),
            ev.message(1, "first", { messageId: taken[i]! }),
          ])
        }
        let revision = 0
        const exits = await Promise.all(
          ops.map((o, i) => {
            if (o.kind === "start") {
              const id = randomUUID()
              return h.run(
                Effect.exit(appendEffect(sessionStream(id), [ev.started(id, OWNER), ev.message(1, "hi")])),
              )
            }
            const stream = sessionStream(sessions[o.s]!)
            const events =
              o.kind === "messages"
                ? [ev.message(100 + i, `a ${i}`), ev.message(100 + i, `b ${i}`, { role: "assistant" })]
                : o.kind === "revision"
                  ? [ev.revision(++revision)]
                  : o.kind === "rollback"
                    ? [ev.rolledBack(1)]
                    : o.kind === "duplicate"
                      ? [ev.message(100 + i, "again", { messageId: taken[o.s]! })]
                      : [ev.message(100 + i, `m ${i}`)]
            return h.run(
              Effect.exit(
                appendEffect(stream, events, o.kind === "conflict" ? { expectedVersion: 999 } : undefined),
              ),
            )
          }),
        )
        for (const [i, exit] of exits.entries()) {
          const kind = ops[i]!.kind
          expect([kind, Exit.isSuccess(exit)]).toEqual([kind, kind !== "conflict" && kind !== "duplicate"])
        }
        const { n } = await h.one<{ n: number }>(
          `select count(*)::int as n from (select transaction_id from chronicle.events
             where stream_id = any ($1::text[]) and stream_version > 2 group by 1 having count(distinct stream_id) > 1) t`,
          [sessions.map(sessionStream)],
        )
        groups += n
        expect(await h.run(dumpReadModels())).toEqual(await scratchFold(h))
      }),
      { numRuns: 12 },
    )
    // The appends did share transactions: the set-wise path and the fallback were exercised.
    expect(groups).toBeGreaterThan(0)
  })
})
