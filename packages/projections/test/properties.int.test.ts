import { testDatabases } from "@chronicle/store/testing"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { effectiveVersions, parseMultirange, versionsOf } from "../src/index.ts"
import {
  asOfState,
  contentOf,
  countsOf,
  currentState,
  env,
  type Harness,
  makeHarness,
  referenceEffective,
  revertible,
} from "./support.ts"
import { forkSession, historyArb, playSession } from "./workload.ts"

describe.each(testDatabases(env))(
  "projection properties over random session histories on $name",
  (database) => {
    let h: Harness
    beforeAll(async () => {
      h = await makeHarness(database)
    })
    afterAll(() => h.dispose())

    it("counters equal the effective rows, the effective set is E(version), and a rollback reads as its target did", async () => {
      await fc.assert(
        fc.asyncProperty(historyArb, async (ops) => {
          const played = await playSession(h, ops)
          for (const [version, state] of played.states) {
            expect(state.version).toBe(version)
            expect(state.counts).toEqual(countsOf(state))
            expect(versionsOf(parseMultirange(state.effective))).toEqual(
              referenceEffective(played.rollbacks, version),
            )
            const target = played.rollbacks.get(version)
            if (target !== undefined) {
              const before = played.states.get(version - 1)!
              expect(revertible(state)).toEqual(revertible(played.states.get(target)!))
              expect(state.toolRuns).toEqual(before.toolRuns)
            }
          }
        }),
        { numRuns: 25 },
      )
    })

    it("as-of reads and effective_versions, computed afterwards, equal what was read at each version", async () => {
      await fc.assert(
        fc.asyncProperty(historyArb, async (ops) => {
          const played = await playSession(h, ops)
          for (const [version, state] of played.states) {
            expect(await asOfState(h, played.id, version)).toEqual(contentOf(state))
            expect(versionsOf(await h.run(effectiveVersions(played.id, version)))).toEqual(
              referenceEffective(played.rollbacks, version),
            )
          }
        }),
        { numRuns: 15 },
      )
    })

    it("a fork at any version starts with exactly the parent's state as of that version", async () => {
      await fc.assert(
        fc.asyncProperty(
          historyArb,
          fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          async (ops, at) => {
            const played = await playSession(h, ops)
            const { childId, asOf } = await forkSession(h, played, 1 + Math.floor(at * played.version))
            const child = await currentState(h, childId)
            expect(contentOf(child)).toEqual(contentOf(asOf))
            expect(child.counts).toEqual(countsOf(asOf))
            expect(child.version).toBe(1)
          },
        ),
        { numRuns: 15 },
      )
    })
  },
)
