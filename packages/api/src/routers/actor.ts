import { type Actor, serviceActor, userActor } from "@chronicle/domain"
import { PayloadTooLarge } from "@chronicle/events"
import { Effect } from "effect"
import type { Principal } from "../auth.ts"
import type { Limits } from "../limits.ts"

/** The domain's view of who is calling. */
export const actorOf = (principal: Principal): Actor =>
  principal.kind === "user" ? userActor(principal.userId) : serviceActor(principal.actingFor)

/**
 * Refuses message content (and metadata) over the configured limit (or `limit`), naming the
 * message and the limit.
 */
export const checkContentSize = (
  limits: Limits,
  messages: ReadonlyArray<{ readonly content: string; readonly metadata?: unknown }>,
  path: (index: number) => string,
  limit: number = limits.maxMessageBytes,
) =>
  Effect.forEach(
    messages,
    (message, i) => {
      const size = Buffer.byteLength(message.content, "utf8")
      if (size > limit) {
        return Effect.fail(new PayloadTooLarge({ what: `${path(i)} (message content)`, size, limit }))
      }
      const metadata =
        message.metadata === undefined ? 0 : Buffer.byteLength(JSON.stringify(message.metadata), "utf8")
      return metadata > limit
        ? Effect.fail(
            new PayloadTooLarge({
              what: `${path(i).replace(/content$/, "metadata")} (message metadata as JSON)`,
              size: metadata,
              limit,
            }),
          )
        : Effect.void
    },
    { discard: true },
  )

/** Refuses JSON values (a tool run's input or output) over the message limit. */
export const checkValueSize = (limits: Limits, values: ReadonlyArray<readonly [string, unknown]>) =>
  Effect.forEach(
    values,
    ([path, value]) => {
      const size = value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value), "utf8")
      return size > limits.maxMessageBytes
        ? Effect.fail(new PayloadTooLarge({ what: `${path} (as JSON)`, size, limit: limits.maxMessageBytes }))
        : Effect.void
    },
    { discard: true },
  )
