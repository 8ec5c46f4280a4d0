/** How the session deciders answer: the events, or the typed refusal. */
import { Result } from "effect"
import type { SessionEvent } from "../catalog.ts"
import { InvalidCommand, InvalidTransition } from "../errors.ts"
import type { SessionStatus } from "../primitives.ts"
import type { SessionDecision } from "./commands.ts"

export const accept = (...events: ReadonlyArray<SessionEvent>): SessionDecision => Result.succeed(events)

export const refuse = (
  state: { readonly id: string; readonly status: SessionStatus },
  action: string,
  reason: string,
) =>
  Result.fail(new InvalidTransition({ entity: "session", id: state.id, state: state.status, action, reason }))

export const invalid = (path: string, reason: string) => Result.fail(new InvalidCommand({ path, reason }))
