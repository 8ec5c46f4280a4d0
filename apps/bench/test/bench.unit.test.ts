import { describe, expect, it } from "vitest"
import { parseArgs, WORKLOADS } from "../src/cli.ts"
import { figure, markdown, meets } from "../src/report.ts"
import { drive, percentile, summarize } from "../src/stats.ts"

describe("bench arguments", () => {
  it("reads --quick, --embedded, --out and --only, and DATABASE_URL", () => {
    const o = parseArgs(["--quick", "--embedded", "--out", "/tmp/x", "--only", "append,http"], {
      DATABASE_URL: "postgres://u@h:5/db",
    })
    expect(o).toMatchObject({ quick: true, embedded: true, out: "/tmp/x", only: ["append", "http"] })
    expect(o.adminUrl).toBe("postgres://u@h:5/db")
  })

  it("runs every workload by default and refuses unknown names and flags", () => {
    expect(parseArgs([], {}).only).toEqual([...WORKLOADS])
    expect(() => parseArgs(["--only", "append,nope"], {})).toThrow(/unknown workload nope/)
    expect(() => parseArgs(["--fast"], {})).toThrow(/unknown argument --fast/)
    expect(() => parseArgs(["--out"], {})).toThrow(/needs a value/)
  })
})

describe("statistics", () => {
  it("takes nearest-rank percentiles", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(percentile(sorted, 50)).toBe(50)
    expect(percentile(sorted, 99)).toBe(99)
    expect(percentile([7], 99)).toBe(7)
    expect(percentile([], 50)).toBeNaN()
  })

  it("summarises rounds as median, min and max rates and pooled latencies", () => {
    const s = summarize("x", [
      { ops: 100, ms: 1000, latencies: [1, 2, 3] },
      { ops: 300, ms: 1000, latencies: [4] },
      { ops: 200, ms: 1000, latencies: [] },
    ])
    expect(s.perSecond).toEqual({ median: 200, min: 100, max: 300 })
    expect(s.p50Ms).toBe(2)
    expect(s.ops).toBe(600)
  })

  it("drives every operation exactly once across the workers", async () => {
    const seen: Array<number> = []
    const sample = await drive(50, 7, async (_, i) => {
      seen.push(i)
    })
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    expect(sample.latencies).toHaveLength(50)
  })
})

describe("report", () => {
  const side = (median: number, p50: number) => summarize("s", [{ ops: median, ms: 1000, latencies: [p50] }])

  it("computes ratios of throughput or of p50 latency and checks targets", () => {
    const t = figure({
      id: "a",
      title: "A",
      unit: "/s",
      chronicle: side(80, 2),
      baseline: side(100, 1),
      target: { op: ">=", value: 0.8 },
    })
    expect(t.ratio).toBe(0.8)
    expect(t.met).toBe(true)
    const l = figure({
      id: "b",
      title: "B",
      unit: "/s",
      chronicle: side(80, 3),
      baseline: side(100, 2),
      metric: "p50",
      target: { op: "<=", value: 1.5 },
    })
    expect(l.ratio).toBe(1.5)
    expect(l.met).toBe(true)
    expect(meets({ op: "<", value: 20 }, 20)).toBe(false)
    expect(meets(null, 1)).toBeNull()
  })

  it("renders one table row per figure and per value", () => {
    const text = markdown({
      mode: "quick",
      database: "postgres",
      startedAt: "2026-01-01T00:00:00.000Z",
      durationSeconds: 1,
      machine: { cpus: 2, cpuModel: "cpu", memoryGiB: 1, node: "v24", postgres: "PostgreSQL 15" },
      sizes: { rounds: 1 },
      figures: [
        figure({ id: "a", title: "Append", unit: "/s", chronicle: side(1, 1), baseline: side(2, 1) }),
      ],
      values: [],
      notes: ["a note"],
    })
    expect(text).toContain("| Append | 1 /s")
    expect(text).toContain("| 0.50× ")
    expect(text).toContain("- a note")
  })
})
