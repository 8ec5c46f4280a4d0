/**
 * `pnpm bench [--quick] [--embedded] [--out <dir>] [--only <names>] [--keep]`
 *
 * Measures Chronicle against raw baselines (and a peer event store) in one run on one fresh
 * database, and prints a JSON report and a markdown table, both also written to `--out`
 * (default apps/bench/results). DATABASE_URL names the Postgres server (a connection that
 * may create databases); --embedded uses the embedded database instead.
 */
import { mkdir, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { DEFAULT_DATABASE_URL, openEnv } from "./env.ts"
import { graphFigures } from "./graphs.ts"
import { httpFigures } from "./http.ts"
import { peerFigures } from "./peer.ts"
import { machine, markdown, type Report, value } from "./report.ts"
import {
  appendFigures,
  appendLatencyAt,
  batchFigures,
  bulkLoad,
  catchUpFigures,
  FULL,
  fillLog,
  liveFigures,
  QUICK,
  readFigures,
  rebuildFigures,
  type Section,
  type Sizes,
  section,
  swapFigures,
} from "./workloads.ts"

export const WORKLOADS = [
  "append",
  "batch",
  "read",
  "peer",
  "http",
  "live",
  "catchup",
  "rebuild",
  "swap",
  "scale",
  "graphs",
] as const
export type Workload = (typeof WORKLOADS)[number]

export interface BenchOptions {
  readonly quick: boolean
  readonly embedded: boolean
  readonly out: string
  readonly only: ReadonlyArray<Workload>
  readonly keep: boolean
  readonly adminUrl: string
  readonly log: (line: string) => void
}

export const parseArgs = (
  argv: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv = process.env,
): BenchOptions => {
  const flags = new Map<string, string | true>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") continue
    if (arg === "--out" || arg === "--only") {
      const next = argv[++i]
      if (next === undefined) throw new Error(`${arg} needs a value`)
      flags.set(arg, next)
    } else if (["--quick", "--embedded", "--keep"].includes(arg)) flags.set(arg, true)
    else
      throw new Error(
        `unknown argument ${arg}; usage: bench [--quick] [--embedded] [--out <dir>] [--only <names>] [--keep]`,
      )
  }
  const only = flags.get("--only")
  const names = typeof only === "string" ? only.split(",").map((s) => s.trim()) : [...WORKLOADS]
  for (const name of names) {
    if (!(WORKLOADS as ReadonlyArray<string>).includes(name)) {
      throw new Error(`--only: unknown workload ${name}; choose from ${WORKLOADS.join(", ")}`)
    }
  }
  const out = flags.get("--out")
  return {
    quick: flags.has("--quick"),
    embedded: flags.has("--embedded"),
    out: typeof out === "string" ? resolve(out) : fileURLToPath(new URL("../results", import.meta.url)),
    only: names as Array<Workload>,
    keep: flags.has("--keep"),
    adminUrl: env.DATABASE_URL && env.DATABASE_URL.length > 0 ? env.DATABASE_URL : DEFAULT_DATABASE_URL,
    log: (line) => console.error(line),
  }
}

/** Runs the selected workloads; returns the report and the files it was written to. */
export const runBench = async (options: BenchOptions) => {
  const sizes: Sizes = options.quick ? QUICK : FULL
  const selected = (name: Workload) => options.only.includes(name)
  const started = performance.now()
  const startedAt = new Date().toISOString()
  const env = await openEnv({ embedded: options.embedded, adminUrl: options.adminUrl, keep: options.keep })
  const all = section()
  const add = (s: Section) => {
    all.figures.push(...s.figures)
    all.values.push(...s.values)
    all.notes.push(...s.notes)
  }
  const step = async (name: string, f: () => Promise<Section>) => {
    const t = performance.now()
    options.log(`${name}…`)
    add(await f())
    options.log(`${name}: ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }
  const sizesReport: Record<string, number> = {
    rounds: sizes.rounds,
    appendOpsPerRound: sizes.appendOps,
    batchesPerRound: sizes.batches,
    logEvents: sizes.logEvents,
    httpCallsPerRound: sizes.httpOps,
  }
  const scale: Array<{ level: number; events: number; p50: number; p99: number; rawP50: number }> = []
  const measureScale = async (level: number) => {
    const at = await appendLatencyAt(env, sizes)
    scale.push({
      level,
      events: at.events,
      p50: at.result.p50Ms ?? Number.NaN,
      p99: at.result.p99Ms ?? Number.NaN,
      rawP50: at.raw.p50Ms ?? Number.NaN,
    })
    options.log(
      `  append at ${at.events.toLocaleString("en-US")} events: p50 ${at.result.p50Ms} ms, p99 ${at.result.p99Ms} ms (raw INSERT p50 ${at.raw.p50Ms} ms)`,
    )
  }
  try {
    const levels = sizes.scaleLevels
    if (selected("scale"))
      await step("scale: empty log", async () => {
        await measureScale(levels[0]!)
        return section()
      })
    if (selected("append")) await step("append", () => appendFigures(env, sizes))
    if (selected("batch")) await step("batch", () => batchFigures(env, sizes))
    if (selected("read")) await step("read", () => readFigures(env, sizes))
    if (selected("peer")) await step("peer", () => peerFigures(env, sizes))
    if (selected("http")) await step("http", () => httpFigures(env, sizes))
    if (selected("live")) await step("live", () => liveFigures(env, sizes))
    if (selected("graphs")) await step("graphs", () => graphFigures(env, options.quick))
    if (selected("catchup") || selected("rebuild") || selected("scale")) {
      await step("log", async () => {
        const filled = await fillLog(env, sizes.logEvents, options.log)
        const s = section()
        s.values.push(
          value({
            id: "memory.fillGrowth",
            title: `RSS growth of the process that appended the log (${filled.events.toLocaleString("en-US")} events)`,
            value: filled.after - filled.before,
            unit: "MiB",
          }),
          value({
            id: "log.fillRate",
            title: "Log fill through EventStore.append (sessions of 1,000, batches of 500)",
            value: Math.round(filled.events / filled.seconds),
            unit: "events/s",
          }),
        )
        return s
      })
    }
    if (selected("catchup")) await step("catch-up", () => catchUpFigures(env, sizes))
    if (selected("rebuild")) await step("rebuild", () => rebuildFigures(env, sizes))
    if (selected("swap")) await step("swap", () => swapFigures(env, sizes))
    if (selected("scale")) {
      await step("scale", async () => {
        await measureScale(levels[1]!)
        const bulk = await bulkLoad(env, levels[2]!, options.log)
        await measureScale(levels[2]!)
        const s = section()
        for (const point of scale) {
          s.values.push(
            value({
              id: `scale.p50.${point.level}`,
              title: `Append p50 with ${point.events.toLocaleString("en-US")} events in the log`,
              value: point.p50,
              unit: "ms",
            }),
            value({
              id: `scale.p99.${point.level}`,
              title: `Append p99 with ${point.events.toLocaleString("en-US")} events in the log`,
              value: point.p99,
              unit: "ms",
            }),
            value({
              id: `scale.raw.p50.${point.level}`,
              title: `Raw INSERT p50 meanwhile (machine load meter), ${point.events.toLocaleString("en-US")} events`,
              value: point.rawP50,
              unit: "ms",
            }),
          )
        }
        const first = scale[0]!
        const last = scale.at(-1)!
        s.values.push(
          value({
            id: "scale.ratio",
            title: `Append p50 at ${last.events.toLocaleString("en-US")} ÷ at ${first.events.toLocaleString("en-US")} events`,
            value: last.p50 / first.p50,
            unit: "×",
            target: { op: "<=", value: 1.2 },
          }),
          value({
            id: "scale.normalized",
            title: `Same, each p50 divided by the raw INSERT p50 measured in the same rounds`,
            value: last.p50 / last.rawP50 / (first.p50 / first.rawP50),
            unit: "×",
            target: { op: "<=", value: 1.2 },
          }),
        )
        s.notes.push(
          `Scale: the log was grown from ${scale[1]!.events.toLocaleString("en-US")} to ${last.events.toLocaleString("en-US")} events by a bulk INSERT … SELECT of rows of the log's shape (streams of 1,000 events, triggers off for that session; ${bulk.seconds.toFixed(0)} s); the measured appends took the real path.`,
        )
        return s
      })
    }
  } finally {
    await env.close()
  }
  const report: Report = {
    mode: options.quick ? "quick" : "full",
    database: env.kind,
    startedAt,
    durationSeconds: Math.round((performance.now() - started) / 100) / 10,
    machine: machine(env.serverVersion),
    sizes: sizesReport,
    figures: all.figures,
    values: all.values,
    notes: all.notes,
  }
  const text = markdown(report)
  await mkdir(options.out, { recursive: true })
  const stamp = startedAt.replace(/[:.]/g, "-")
  const base = join(options.out, `bench-${report.mode}-${report.database}-${stamp}`)
  await writeFile(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`)
  await writeFile(`${base}.md`, text)
  return { report, markdown: text, files: [`${base}.json`, `${base}.md`] }
}

if (import.meta.main) {
  try {
    const options = parseArgs(process.argv.slice(2))
    const { report, markdown: text, files } = await runBench(options)
    console.log(JSON.stringify(report, null, 2))
    console.log(`\n${text}`)
    console.error(`written: ${files.join(", ")}`)
    process.exit(0)
  } catch (error) {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error))
    process.exit(1)
  }
}
