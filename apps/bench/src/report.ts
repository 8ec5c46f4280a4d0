import { cpus, totalmem } from "node:os"
import type { SideResult } from "./stats.ts"

export interface Target {
  readonly op: ">=" | "<=" | "<"
  readonly value: number
}

/** A workload measured on Chronicle and on its baseline in the same run. */
export interface Figure {
  readonly id: string
  readonly title: string
  readonly unit: string
  readonly chronicle: SideResult
  readonly baseline: SideResult
  /** Which number the ratio compares. */
  readonly metric: "throughput" | "p50"
  /** Chronicle ÷ baseline of `metric`. */
  readonly ratio: number
  readonly target: Target | null
  readonly met: boolean | null
  readonly note?: string | undefined
}

/** A single number (memory, an absolute rate, a latency) with an optional target. */
export interface Value {
  readonly id: string
  readonly title: string
  readonly value: number
  readonly unit: string
  readonly target: Target | null
  readonly met: boolean | null
  readonly note?: string | undefined
}

export interface Report {
  readonly mode: "quick" | "full"
  readonly database: "postgres" | "embedded"
  readonly startedAt: string
  readonly durationSeconds: number
  readonly machine: {
    readonly cpus: number
    readonly cpuModel: string
    readonly memoryGiB: number
    readonly node: string
    readonly postgres: string | null
  }
  readonly sizes: Record<string, number>
  readonly figures: ReadonlyArray<Figure>
  readonly values: ReadonlyArray<Value>
  readonly notes: ReadonlyArray<string>
}

export const machine = (postgres: string | null) => ({
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? "unknown",
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  postgres,
})

export const meets = (target: Target | null, value: number): boolean | null =>
  target === null || !Number.isFinite(value)
    ? null
    : target.op === ">="
      ? value >= target.value
      : target.op === "<="
        ? value <= target.value
        : value < target.value

export const figure = (input: {
  id: string
  title: string
  unit: string
  chronicle: SideResult
  baseline: SideResult
  metric?: "throughput" | "p50"
  target?: Target | null
  note?: string
}): Figure => {
  const metric = input.metric ?? "throughput"
  const pick = (s: SideResult) => (metric === "throughput" ? s.perSecond.median : (s.p50Ms ?? Number.NaN))
  const ratio = Math.round((pick(input.chronicle) / pick(input.baseline)) * 1000) / 1000
  const target = input.target ?? null
  return {
    id: input.id,
    title: input.title,
    unit: input.unit,
    chronicle: input.chronicle,
    baseline: input.baseline,
    metric,
    ratio,
    target,
    met: meets(target, ratio),
    ...(input.note === undefined ? {} : { note: input.note }),
  }
}

export const value = (input: {
  id: string
  title: string
  value: number
  unit: string
  target?: Target | null
  note?: string
}): Value => {
  const target = input.target ?? null
  return {
    id: input.id,
    title: input.title,
    value: Math.round(input.value * 1000) / 1000,
    unit: input.unit,
    target,
    met: meets(target, input.value),
    ...(input.note === undefined ? {} : { note: input.note }),
  }
}

const n = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–")
const ms = (x: number | null) => (x === null ? "" : x < 10 ? x.toFixed(2) : x.toFixed(1))

const side = (s: SideResult, unit: string) => {
  const latency = s.p50Ms === null ? "" : `; p50 ${ms(s.p50Ms)} / p99 ${ms(s.p99Ms)} ms`
  return `${n(s.perSecond.median)} ${unit} (${n(s.perSecond.min)}–${n(s.perSecond.max)}${latency})`
}

const targetText = (t: Target | null, suffix = "") => (t === null ? "" : `${t.op} ${t.value}${suffix}`)
const mark = (met: boolean | null) => (met === null ? "" : met ? "yes" : "**no**")

export const markdown = (report: Report): string => {
  const lines = [
    `Mode: ${report.mode}, database: ${report.database}, ${report.durationSeconds.toFixed(0)} s, started ${report.startedAt}.`,
    `Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}${report.machine.postgres ? `, ${report.machine.postgres}` : ""}.`,
    `Sizes: ${Object.entries(report.sizes)
      .map(([k, v]) => `${k} ${n(v)}`)
      .join(", ")}.`,
    "",
    "Throughput is the median over interleaved rounds (min–max in brackets); latency percentiles pool every operation of every round. The ratio is Chronicle ÷ baseline of the compared metric (throughput: higher is better; p50 latency: lower is better).",
    "",
    "| figure | Chronicle | baseline | ratio | target | met |",
    "| --- | --- | --- | --- | --- | --- |",
    ...report.figures.map(
      (f) =>
        `| ${f.title} | ${side(f.chronicle, f.unit)} | ${f.baseline.name}: ${side(f.baseline, f.unit)} | ${f.ratio.toFixed(2)}× ${f.metric === "p50" ? "p50" : ""} | ${targetText(f.target, "×")} | ${mark(f.met)} |`,
    ),
    "",
    "| value | measured | target | met |",
    "| --- | --- | --- | --- |",
    ...report.values.map(
      (v) =>
        `| ${v.title} | ${Number.isInteger(v.value) ? n(v.value) : v.value} ${v.unit} | ${targetText(v.target)} | ${mark(v.met)} |`,
    ),
  ]
  if (report.notes.length > 0) lines.push("", ...report.notes.map((note) => `- ${note}`))
  return `${lines.join("\n")}\n`
}
