/** One measured round: how many operations, how long they took, and each one's latency. */
export interface Sample {
  readonly ops: number
  readonly ms: number
  /** Milliseconds per operation (empty when only the total is meaningful). */
  readonly latencies: ReadonlyArray<number>
}

/** One side of a figure over all its rounds. */
export interface SideResult {
  readonly name: string
  /** Operations per second: median, min and max over the rounds. */
  readonly perSecond: { readonly median: number; readonly min: number; readonly max: number }
  /** Latency percentiles over every operation of every round, in ms (null without per-op latencies). */
  readonly p50Ms: number | null
  readonly p99Ms: number | null
  readonly rounds: number
  readonly ops: number
}

export const percentile = (sorted: ReadonlyArray<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

export const median = (values: ReadonlyArray<number>): number =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  )

const round = (value: number, digits: number) => {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

export const summarize = (name: string, samples: ReadonlyArray<Sample>): SideResult => {
  const rates = samples.map((s) => (s.ops * 1000) / Math.max(s.ms, 1e-6)).sort((a, b) => a - b)
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b)
  return {
    name,
    perSecond: {
      median: Math.round(median(rates)),
      min: Math.round(rates[0] ?? Number.NaN),
      max: Math.round(rates.at(-1) ?? Number.NaN),
    },
    p50Ms: latencies.length === 0 ? null : round(percentile(latencies, 50), 3),
    p99Ms: latencies.length === 0 ? null : round(percentile(latencies, 99), 3),
    rounds: samples.length,
    ops: samples.reduce((n, s) => n + s.ops, 0),
  }
}

/**
 * Runs `count` operations with `concurrency` workers pulling from one counter, timing each
 * operation. `op` gets the worker's index and the operation's index.
 */
export const drive = async (
  count: number,
  concurrency: number,
  op: (worker: number, index: number) => Promise<unknown>,
): Promise<Sample> => {
  const latencies = new Array<number>(count)
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (true) {
        const index = next++
        if (index >= count) return
        const t = performance.now()
        await op(worker, index)
        latencies[index] = performance.now() - t
      }
    }),
  )
  return { ops: count, ms: performance.now() - started, latencies }
}

/** Times one call that processes `ops` items as a whole (a scan, a rebuild). */
export const timeOnce = async (ops: number, f: () => Promise<unknown>): Promise<Sample> => {
  const started = performance.now()
  await f()
  return { ops, ms: performance.now() - started, latencies: [] }
}

export interface Contender {
  readonly name: string
  /** Runs one round; `round` counts from 0. */
  readonly run: (round: number) => Promise<Sample>
}

/**
 * Runs the contenders' rounds interleaved (A B A B …, or A B C A B C …), so that noise from
 * the rest of the machine falls on every side alike, after one unmeasured warm-up round each.
 */
export const interleave = async (
  rounds: number,
  contenders: ReadonlyArray<Contender>,
  warmup = true,
): Promise<Array<SideResult>> => {
  const samples = contenders.map(() => [] as Array<Sample>)
  if (warmup) for (const c of contenders) await c.run(-1)
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of contenders.entries()) samples[i]!.push(await c.run(r))
  }
  return contenders.map((c, i) => summarize(c.name, samples[i]!))
}
