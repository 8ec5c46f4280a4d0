import { describe, expect, it } from "vitest"
import { swapBackoffMs, swapTableWaitMs } from "../src/index.ts"

describe("the swap's back-off", () => {
  it("waits between half and all of a ceiling that doubles from 50 ms per attempt", () => {
    expect([0, 1, 2, 3].map((a) => swapBackoffMs(a, () => 0))).toEqual([25, 50, 100, 200])
    expect([0, 1, 2, 3].map((a) => swapBackoffMs(a, () => 1))).toEqual([50, 100, 200, 400])
  })

  it("never waits more than 2 s, however many attempts", () => {
    for (const attempt of [5, 6, 10, 40, 1_000])
      expect(swapBackoffMs(attempt, () => 1)).toBeLessThanOrEqual(2_000)
    expect(swapBackoffMs(1_000, () => 0)).toBe(1_000)
  })
})

describe("the swap's wait for a table's readers", () => {
  it("is none (NOWAIT) for the first 20 attempts, then at most 50 ms", () => {
    expect([0, 1, 19].map((a) => swapTableWaitMs(a))).toEqual([0, 0, 0])
    expect([20, 21, 500].map((a) => swapTableWaitMs(a))).toEqual([50, 50, 50])
    expect([0, 1, 2].map((a) => swapTableWaitMs(a, 1))).toEqual([0, 50, 50])
  })
})
