import { describe, expect, it } from "vitest"
import { parseVersionRanges } from "../src/sessions.ts"

describe("parseVersionRanges", () => {
  it("reads an int4multirange as Postgres prints it into half-open ranges", () => {
    expect(parseVersionRanges("{}")).toEqual([])
    expect(parseVersionRanges("{[1,4),[6,9)}")).toEqual([
      [1, 4],
      [6, 9],
    ])
  })

  it("normalises inclusive and exclusive bounds, and reads a missing bound as unbounded", () => {
    expect(parseVersionRanges("{(0,3]}")).toEqual([[1, 4]])
    expect(parseVersionRanges("{[5,)}")).toEqual([[5, Number.POSITIVE_INFINITY]])
  })
})
