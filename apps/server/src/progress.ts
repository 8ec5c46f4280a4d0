/** The live progress line of `chronicle rebuild`: events done/total, events/s, ETA. */
import type { Run } from "@chronicle/projections"

const WIDTH = 24

const count = (n: number) => n.toLocaleString("en-US")

const duration = (seconds: number) =>
  seconds < 60
    ? `${seconds}s`
    : seconds < 3600
      ? `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`
      : `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`

/** `[#########---------------]  38%  38,000/100,000 events  52,310 events/s  ETA 1s  copying` */
export const progressLine = (run: Run): string => {
  const fraction = run.eventsTotal === 0 ? 1 : Math.min(1, run.eventsDone / run.eventsTotal)
  const filled = Math.round(fraction * WIDTH)
  const eta = run.etaSeconds === null ? "" : `  ETA ${duration(run.etaSeconds)}`
  return `[${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${count(run.eventsDone)}/${count(run.eventsTotal)} events  ${count(run.eventsPerSecond)} events/s${eta}  ${run.phase}`
}

/**
 * Redraws one line on a terminal (at most ten times a second); elsewhere (a pipe, a log file,
 * CI) prints a line at most once a second, so the output stays readable.
 */
export class ProgressPrinter {
  private last = 0
  private drawn = false
  private readonly out: NodeJS.WriteStream
  constructor(out: NodeJS.WriteStream) {
    this.out = out
  }

  update(run: Run) {
    const now = Date.now()
    const tty = this.out.isTTY === true
    if (now - this.last < (tty ? 100 : 1_000)) return
    this.last = now
    if (tty) {
      this.out.write(`\r${progressLine(run)}\u001b[K`)
      this.drawn = true
    } else this.out.write(`${progressLine(run)}\n`)
  }

  done(run: Run) {
    if (this.out.isTTY === true) this.out.write(`${this.drawn ? "\r" : ""}${progressLine(run)}\u001b[K\n`)
    else this.out.write(`${progressLine(run)}\n`)
  }
}
