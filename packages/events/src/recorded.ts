/** An event as read back from its stream: its stream version and when it was recorded. */
export interface RecordedEvent<E> {
  /** The stream version: 1, 2, 3 … with no gaps. */
  readonly version: number
  readonly event: E
  /** ISO-8601 time the event was recorded. */
  readonly recordedAt: string
}

/** Stream versions must run 1..n in order; anything else is a defect in the caller, not a domain error. */
export const assertContiguous = (events: ReadonlyArray<{ readonly version: number }>, what: string): void => {
  events.forEach((record, index) => {
    if (record.version !== index + 1) {
      throw new RangeError(
        `${what}: expected stream version ${index + 1} at position ${index}, got ${record.version}`,
      )
    }
  })
}
