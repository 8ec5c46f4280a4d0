import { Layer, Logger, References } from "effect"
import type { LogLevel } from "./config.ts"

/** Where log lines go: one JSON object per line. */
export type LogSink = (line: string) => void

export const stdoutSink: LogSink = (line) => {
  process.stdout.write(`${line}\n`)
}

/**
 * Structured logs: every Effect log entry (the server's, the store's, the domain's) as one
 * JSON line with its level, message, timestamp, annotations (requestId …) and cause.
 */
export const loggerLayer = (level: LogLevel, sink: LogSink = stdoutSink) =>
  Layer.mergeAll(
    Logger.layer([Logger.make((options) => sink(Logger.formatJson.log(options)))]),
    Layer.succeed(References.MinimumLogLevel, level === "None" ? "None" : level),
  )
