/** Large values in content answers: the reserved marker refused, stored values read back or left as references. */
import { InvalidCommand } from "@chronicle/events"
import { Effect } from "effect"
import {
  type BlobContents,
  jsonRef,
  LARGE_KEY,
  type LargeContent,
  loadBlobs,
  messageRefs,
  type PendingBlob,
  resolveJson,
  resolveMessage,
} from "../large-values.ts"
import type { Message, ToolRun } from "../rows.ts"

/** SQL: the size of the blob a stored value refers to at `path` under its marker (0 when none). */
export const largeSize = (column: string, path: ReadonlyArray<string>) =>
  `coalesce((${column}->'${LARGE_KEY}'${path.map((p) => `->'${p}'`).join("")}->>'size')::bigint, 0)`

export const reservedKey = (path: string) =>
  Effect.fail(
    new InvalidCommand({
      path,
      reason: `is reserved: Chronicle marks values it keeps in its blob store with "${LARGE_KEY}"`,
    }),
  )

/** The blobs items refer to: those just written (`known`), the rest read from the table. */
export const blobsFor = (shas: ReadonlyArray<string>, known: ReadonlyArray<PendingBlob>) =>
  Effect.gen(function* () {
    const have = new Map(known.map((b) => [b.ref.sha256, b.bytes] as const))
    const loaded = yield* loadBlobs(shas.filter((sha) => !have.has(sha)))
    for (const [sha, bytes] of loaded) have.set(sha, bytes)
    return have as BlobContents
  })

export const resolveMessages = (
  messages: ReadonlyArray<Message>,
  largeContent: LargeContent,
  known: ReadonlyArray<PendingBlob> = [],
) =>
  Effect.gen(function* () {
    const shas = messages.flatMap((m) => {
      const { large } = messageRefs(m.metadata)
      return [large.content?.sha256, large.metadata?.sha256].filter((x): x is string => x !== undefined)
    })
    if (shas.length === 0) return messages
    const blobs = largeContent === "omit" ? null : yield* blobsFor(shas, known)
    return messages.map((m) => ({ ...m, ...resolveMessage(m, blobs) }))
  })

export const resolveToolRuns = (
  runs: ReadonlyArray<ToolRun>,
  largeContent: LargeContent,
  known: ReadonlyArray<PendingBlob> = [],
) =>
  Effect.gen(function* () {
    const shas = runs.flatMap((r) =>
      [jsonRef(r.input)?.sha256, jsonRef(r.output)?.sha256].filter((x): x is string => x !== undefined),
    )
    if (shas.length === 0) return runs
    const blobs = largeContent === "omit" ? null : yield* blobsFor(shas, known)
    return runs.map((r): ToolRun => {
      const input = jsonRef(r.input)
      const output = jsonRef(r.output)
      if (input === undefined && output === undefined) return r
      return {
        ...r,
        input: resolveJson(r.input, blobs),
        output: resolveJson(r.output, blobs),
        large: {
          ...(input === undefined ? {} : { input }),
          ...(output === undefined ? {} : { output }),
        },
      }
    })
  })
