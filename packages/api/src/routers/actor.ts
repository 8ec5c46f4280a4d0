import { type Actor, serviceActor, userActor } from "@chronicle/domain"
import { PayloadTooLarge } from "@chronicle/events"
import { Effect } from "effect"
import type { Principal } from "../auth.ts"
import type { Limits } from "../limits.ts"

/** The domain's view of who is calling. */
export const actorOf = (principal: Principal): Actor =>
  principal.kind === "user" ? userActor(principal.userId) : serviceActor(principal.actingFor)

/** Refuses message content over the configured limit, naming the message and the limit. */
export const checkContentSize = (
  limits: Limits,
  messages: ReadonlyArray<{ readonly content: string }>,
  path: (index: number) => string,
) =>
  Effect.forEach(
    messages,
    (message, i) => {
      const size = Buffer.byteLength(message.content, "utf8")
      return size > limits.maxMessageBytes
        ? Effect.fail(
            new PayloadTooLarge({
              what: `${path(i)} (message content)`,
              size,
              limit: limits.maxMessageBytes,
            }),
          )
        : Effect.void
    },
    { discard: true },
  )
