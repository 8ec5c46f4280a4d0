import { describe, expect, it } from "vitest"
import { swapBackoffMs } from "../src/index.ts"

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
