/**
 * Stream ids are `<category>-<uuid>`: `session-0b6f…`, `job-91c2…`. The category names the
 * kind of stream and is stored as the stream's type.
 */
const STREAM_ID = /^([a-z][a-z0-9_]{0,62})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export interface ParsedStreamId {
  readonly category: string
  readonly id: string
}

export const parseStreamId = (streamId: string): ParsedStreamId | undefined => {
  const match = STREAM_ID.exec(streamId)
  return match ? { category: match[1]!, id: match[2]! } : undefined
}

export const makeStreamId = (category: string, id: string): string => `${category}-${id.toLowerCase()}`

/** A lower-case, hyphenated UUID (any version). */
export const isUuid = (value: unknown): value is string => typeof value === "string" && UUID.test(value)

export const STREAM_ID_FORMAT =
  "<category>-<uuid>, the category in lower case (for example session-0b6f2c7e-…)"
