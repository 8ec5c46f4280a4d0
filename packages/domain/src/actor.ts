import { Forbidden, NotFound } from "@chronicle/events"
import { Effect } from "effect"

/**
 * Who is acting. A user acts for themselves; the service role may act for any owner, and
 * names the owner it acts for when it creates something.
 */
export type Actor =
  | { readonly kind: "user"; readonly userId: string }
  | { readonly kind: "service"; readonly actingFor: string | null }

export const userActor = (userId: string): Actor => ({ kind: "user", userId })
export const serviceActor = (actingFor: string | null = null): Actor => ({ kind: "service", actingFor })

/**
 * Who recorded an event, as its metadata names them (`actor`): `user:<id>`, `service:<owner>`
 * for the service role acting for an owner, `service` otherwise. The one place this is
 * spelled: every command records it through here.
 */
export const actorLabel = (actor: Actor): string =>
  actor.kind === "user" ? `user:${actor.userId}` : actor.actingFor ? `service:${actor.actingFor}` : "service"

/** The owner of anything this actor creates. */
export const ownerFor = (actor: Actor): Effect.Effect<string, Forbidden> =>
  actor.kind === "user"
    ? Effect.succeed(actor.userId)
    : actor.actingFor !== null
      ? Effect.succeed(actor.actingFor)
      : Effect.fail(
          new Forbidden({
            reason:
              "The service role must name the owner it acts for (x-chronicle-owner header) to create data",
          }),
        )

/** The owner this actor's lists are limited to, or null for every owner (the service role acting for no one). */
export const listScope = (actor: Actor): string | null =>
  actor.kind === "user" ? actor.userId : actor.actingFor

/**
 * Whether the actor may see data of `ownerId`. Another owner's data is reported as not
 * found, so its existence is not revealed.
 */
export const ensureVisible = (actor: Actor, ownerId: string | null, entity: string, id: string) =>
  actor.kind === "service" || ownerId === actor.userId
    ? Effect.void
    : Effect.fail(new NotFound({ entity, id }))
