/** A session's messages: appended (large ones kept in the blob store) and listed, now or as of a version. */
import type { SessionCommand } from "@chronicle/events"
import type { JsonObject, MessageRole } from "@chronicle/events/types"
import { Effect } from "effect"
import { v7 as uuidv7 } from "uuid"
import type { Actor } from "../actor.ts"
import type { CommandOptions } from "../command.ts"
import { DomainConfig } from "../config.ts"
import { putBlobs, reservedKeyIn, storeMessage } from "../large-values.ts"
import type { PageOrder } from "../paging.ts"
import { messageOf, toMessage } from "../rows.ts"
import { executeSessionCommand } from "../session/command.ts"
import { largeSize, reservedKey, resolveMessages } from "./large.ts"
import { type LargeListInput, listVisible } from "./read.ts"
import { created } from "./recorded.ts"

export interface NewMessage {
  readonly role: MessageRole
  readonly content: string
  readonly metadata?: JsonObject | undefined
}

export interface MessageListInput extends LargeListInput {
  /** `asc` (default): oldest first; `desc`: newest first, to read the end of a conversation. */
  readonly order?: PageOrder | undefined
}

export const appendMessages = Effect.fn("Content.appendMessages")(function* (
  actor: Actor,
  sessionId: string,
  messages: ReadonlyArray<NewMessage>,
  options?: CommandOptions,
) {
  const config = yield* DomainConfig
  for (const [i, m] of messages.entries()) {
    const reserved = reservedKeyIn(m.metadata)
    if (reserved !== undefined) return yield* reservedKey(`messages[${i}].metadata.${reserved}`)
  }
  const stored = messages.map((m) =>
    storeMessage({ content: m.content, metadata: m.metadata ?? {} }, config.largeValueBytes),
  )
  const blobs = stored.flatMap((m) => m.blobs)
  yield* putBlobs(blobs)
  const result = yield* executeSessionCommand(
    actor,
    sessionId,
    () =>
      Effect.succeed<SessionCommand>({
        type: "AppendMessages",
        messages: messages.map((m, i) => ({
          messageId: uuidv7(),
          role: m.role,
          content: stored[i]!.content,
          metadata: stored[i]!.metadata,
          createdAt: null,
        })),
      }),
    options,
    { messages },
  )
  const recorded = created(result, "MessageAppended", (e, r) => messageOf(sessionId, e, r))
  return yield* resolveMessages(recorded, "include", blobs)
})

export const listMessages = (actor: Actor, sessionId: string, input: MessageListInput) =>
  listVisible(actor, sessionId, input, {
    table: "messages",
    keys: ["seq"],
    map: toMessage,
    size:
      input.largeContent === "omit"
        ? "octet_length(t.content) + octet_length(t.metadata::text)"
        : `octet_length(t.content) + octet_length(t.metadata::text) + ${largeSize("t.metadata", ["content"])} + ${largeSize("t.metadata", ["metadata"])}`,
    order: input.order ?? "asc",
  }).pipe(
    Effect.flatMap((page) =>
      Effect.map(resolveMessages(page.items, input.largeContent ?? "include"), (items) => ({
        ...page,
        items,
      })),
    ),
  )
