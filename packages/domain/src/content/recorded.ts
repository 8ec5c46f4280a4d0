/** The answer of a content command, built from the events it recorded. */
import type { ChronicleEvent } from "@chronicle/events"
import { Effect } from "effect"
import type { CommandResult, RecordedDomainEvent } from "../command.ts"

/**
 * What a command created, from the events it recorded (for a retry: those the first attempt
 * recorded): the answer needs no read of the read model.
 */
export const created = <T extends ChronicleEvent["type"], A>(
  result: CommandResult,
  type: T,
  view: (event: Extract<ChronicleEvent, { readonly type: T }>, recorded: RecordedDomainEvent) => A,
): ReadonlyArray<A> =>
  result.events.flatMap((r) =>
    r.event.type === type ? [view(r.event as Extract<ChronicleEvent, { readonly type: T }>, r)] : [],
  )

export const one = <A>(rows: ReadonlyArray<A>) =>
  rows[0] === undefined ? Effect.die("the command recorded no event of that kind") : Effect.succeed(rows[0])
