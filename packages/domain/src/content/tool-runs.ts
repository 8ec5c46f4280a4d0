/** A session's tool runs: recorded (large inputs and outputs kept in the blob store) and listed; never reverted. */
import type { SessionCommand } from "@chronicle/events"
import type { Json, ToolRunStatus } from "@chronicle/events/types"
import { Effect } from "effect"
import { v7 as uuidv7 } from "uuid"
import type { Actor } from "../actor.ts"
import type { CommandOptions } from "../command.ts"
import { DomainConfig } from "../config.ts"
import { type PendingBlob, putBlobs, reservedKeyIn, storeJson } from "../large-values.ts"
import { toolRunOf, toToolRun } from "../rows.ts"
import { executeSessionCommand } from "../session/command.ts"
import { largeSize, reservedKey, resolveToolRuns } from "./large.ts"
import { type LargeListInput, listVisible } from "./read.ts"
import { created, one } from "./recorded.ts"

export interface ToolRunInput {
  readonly tool: string
  readonly input: Json
  readonly output?: Json
  readonly status: ToolRunStatus
  readonly durationMs?: number | null
  readonly error?: string | null
}

export const recordToolRun = Effect.fn("Content.recordToolRun")(function* (
  actor: Actor,
  sessionId: string,
  input: ToolRunInput,
  options?: CommandOptions,
) {
  const config = yield* DomainConfig
  for (const [field, value] of [
    ["input", input.input],
    ["output", input.output],
  ] as const) {
    const reserved = reservedKeyIn(value)
    if (reserved !== undefined) return yield* reservedKey(`${field}.${reserved}`)
  }
  const storedInput = storeJson(input.input, config.largeValueBytes)
  const storedOutput = storeJson(input.output ?? null, config.largeValueBytes)
  const blobs = [storedInput.blob, storedOutput.blob].filter((b): b is PendingBlob => b !== undefined)
  yield* putBlobs(blobs)
  const result = yield* executeSessionCommand(
    actor,
    sessionId,
    () =>
      Effect.succeed<SessionCommand>({
        type: "RecordToolRun",
        toolRunId: uuidv7(),
        tool: input.tool,
        input: storedInput.value,
        output: storedOutput.value,
        status: input.status,
        durationMs: input.durationMs ?? null,
        error: input.error ?? null,
      }),
    options,
    input,
  )
  const run = yield* one(created(result, "ToolRunRecorded", (e, r) => toolRunOf(sessionId, e, r)))
  return (yield* resolveToolRuns([run], "include", blobs))[0]!
})

export const listToolRuns = (actor: Actor, sessionId: string, input: LargeListInput) =>
  listVisible(actor, sessionId, input, {
    table: "tool_runs",
    keys: ["version", "tool_run_id"],
    map: toToolRun,
    size:
      input.largeContent === "omit"
        ? "octet_length(t.input::text) + octet_length(t.output::text) + coalesce(octet_length(t.error), 0)"
        : `octet_length(t.input::text) + octet_length(t.output::text) + coalesce(octet_length(t.error), 0) + ${largeSize("t.input", [])} + ${largeSize("t.output", [])}`,
    neverReverted: true,
  }).pipe(
    Effect.flatMap((page) =>
      Effect.map(resolveToolRuns(page.items, input.largeContent ?? "include"), (items) => ({
        ...page,
        items,
      })),
    ),
  )
