import { spawn } from "node:child_process"
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type {} from "@chronicle/store/vitest-global-setup"
import { describe, expect, inject, it } from "vitest"
import type { Figure, Report, Value } from "../src/report.ts"

const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url))

/** Runs `bench --quick` as a user would, in its own process; returns its output directory. */
const runQuick = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const out = await mkdtemp(join(tmpdir(), "chronicle-bench-"))
  const child = spawn(process.execPath, [cli, "--quick", "--out", out, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve))
  expect(code, stderr).toBe(0)
  return { out, stdout, stderr }
}

const FIGURES = [
  "append.single.w1",
  "append.single.w16",
  "append.batch100",
  "read.stream1000",
  "read.messagePage",
  "http.append.c1",
  "http.append.server.c1",
  "http.list.c1",
  "http.append.c16",
  "http.append.raw.c1",
  "http.append.raw.c16",
  "http.append.server.c16",
  "http.list.c16",
  "read.catchUp",
  "rebuild",
]
const PEER_FIGURES = [
  "peer.append.w1",
  "peer.append.noreadmodel.w1",
  "peer.append.w16",
  "peer.append.noreadmodel.w16",
  "peer.batch100",
  "peer.read1000",
]
const VALUES = [
  "memory.idle",
  "memory.load",
  "memory.after",
  "memory.fillGrowth",
  "live.p50.s1",
  "live.p99.s1",
  "live.p50.s100",
  "live.p99.s100",
  "rebuild.eventsPerSecond",
  "scale.ratio",
  "graphs.log.t40",
  "graphs.readModel.t40",
  "graphs.memorySaver.t40",
  "graphs.log.growth",
]
/** The swap beside a long reader needs a server (the embedded database runs one transaction at a time). */
const POSTGRES_VALUES = [
  "swap.reference.p99",
  "swap.previous.p99",
  "swap.engine.p50",
  "swap.engine.p99",
  "swap.engine.appends",
  "swap.p99.ratio",
]

const checkFigure = (f: Figure) => {
  for (const side of [f.chronicle, f.baseline]) {
    expect(side.rounds, f.id).toBeGreaterThanOrEqual(1)
    expect(side.ops, f.id).toBeGreaterThan(0)
    for (const n of [side.perSecond.median, side.perSecond.min, side.perSecond.max]) {
      expect(Number.isFinite(n) && n > 0, `${f.id}: ${n}`).toBe(true)
    }
  }
  expect(Number.isFinite(f.ratio) && f.ratio > 0, `${f.id} ratio ${f.ratio}`).toBe(true)
  const pick = (s: Figure["chronicle"]) => (f.metric === "p50" ? s.p50Ms! : s.perSecond.median)
  expect(f.ratio).toBeCloseTo(pick(f.chronicle) / pick(f.baseline), 2)
  if (f.target !== null) expect(typeof f.met).toBe("boolean")
}

const checkReport = async (out: string, stdout: string, database: "postgres" | "embedded") => {
  const files = await readdir(out)
  const json = files.find((f) => f.endsWith(".json"))
  const md = files.find((f) => f.endsWith(".md"))
  expect(json).toMatch(new RegExp(`^bench-quick-${database}-`))
  expect(md).toBeDefined()
  const report = JSON.parse(await readFile(join(out, json!), "utf8")) as Report
  expect(report.mode).toBe("quick")
  expect(report.database).toBe(database)
  expect(Number.isFinite(report.durationSeconds)).toBe(true)
  const expected = database === "postgres" ? [...FIGURES, ...PEER_FIGURES] : FIGURES
  expect(report.figures.map((f) => f.id).sort()).toEqual([...expected].sort())
  for (const f of report.figures) checkFigure(f)
  const values = new Map(report.values.map((v: Value) => [v.id, v]))
  for (const id of database === "postgres" ? [...VALUES, ...POSTGRES_VALUES] : VALUES) {
    const v = values.get(id)
    expect(v, id).toBeDefined()
    expect(Number.isFinite(v!.value), `${id}: ${v!.value}`).toBe(true)
  }
  expect(report.values.filter((v) => v.id.startsWith("scale.p50.")).length).toBe(3)
  // The same report on stdout, and a markdown table with a row per figure.
  expect(stdout).toContain(`"database": "${database}"`)
  const table = await readFile(join(out, md!), "utf8")
  for (const f of report.figures) expect(table).toContain(`| ${f.title} |`)
  await rm(out, { recursive: true, force: true })
}

const postgresUrl = inject("postgresUrl")

const databases: ReadonlyArray<{
  readonly database: "postgres" | "embedded"
  readonly args: ReadonlyArray<string>
  readonly env: Record<string, string>
}> = [
  { database: "embedded", args: ["--embedded"], env: {} },
  ...(postgresUrl === null
    ? []
    : [{ database: "postgres" as const, args: [], env: { DATABASE_URL: postgresUrl } }]),
]

describe.each(databases)("pnpm bench --quick on $database", ({ database, args, env }) => {
  it("runs every workload, writes the JSON report and the markdown table, with every figure", async () => {
    const { out, stdout } = await runQuick(args, env)
    await checkReport(out, stdout, database)
  })
})
