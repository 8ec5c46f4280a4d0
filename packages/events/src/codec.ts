import { Effect, Schema } from "effect"
import { ChronicleEvent, type EventType } from "./catalog.ts"
import { EventDecodeError } from "./errors.ts"
import type { JsonObject } from "./primitives.ts"

/** The schema version every event type is written with today. */
export const CURRENT_SCHEMA_VERSION = 1

/**
 * Upgrades the stored data of one event type from schema version n to n + 1. When an event's
 * shape changes, bump CURRENT_SCHEMA_VERSION and add, for each type that changed, a function
 * at index n - 1 that turns version-n data into version-(n + 1) data. Old events are upcast
 * on read and never rewritten.
 */
export type Upcaster = (data: JsonObject) => JsonObject

export const upcasters: Partial<Record<EventType, ReadonlyArray<Upcaster | undefined>>> = {}

/** An event as the store keeps it: the type column and the data column. */
export interface StoredEvent {
  readonly type: string
  readonly data: unknown
  readonly schemaVersion: number
}

const decodeEvent = Schema.decodeUnknownEffect(ChronicleEvent)
const encodeEvent = Schema.encodeSync(ChronicleEvent)

/** Splits an event into the store's type and data columns. */
export const toStored = (event: ChronicleEvent): StoredEvent => {
  const { type, ...data } = encodeEvent(event) as { type: string } & Record<string, unknown>
  return { type, data, schemaVersion: CURRENT_SCHEMA_VERSION }
}

/** Upcasts a stored event to the current schema version and decodes it. */
export const fromStored = (stored: StoredEvent): Effect.Effect<ChronicleEvent, EventDecodeError> => {
  if (
    !Number.isInteger(stored.schemaVersion) ||
    stored.schemaVersion < 1 ||
    stored.schemaVersion > CURRENT_SCHEMA_VERSION
  ) {
    return Effect.fail(
      new EventDecodeError({
        type: stored.type,
        reason: `schema version ${stored.schemaVersion} is not between 1 and ${CURRENT_SCHEMA_VERSION}`,
      }),
    )
  }
  let data = stored.data as JsonObject
  const steps = upcasters[stored.type as EventType] ?? []
  for (let version = stored.schemaVersion; version < CURRENT_SCHEMA_VERSION; version++) {
    const step = steps[version - 1]
    if (step) data = step(data)
  }
  return decodeEvent({ ...data, type: stored.type }).pipe(
    Effect.mapError((error) => new EventDecodeError({ type: stored.type, reason: error.message })),
  )
}
