/** Readers of the whole log: a `readAll` poller and an SSE subscriber, each keeping what it saw. */
import type { ChronicleClient, EventView } from "@chronicle/client"
import { sleep } from "./support.ts"

export interface Follower {
  /** Cursors of the events seen, in the order seen. */
  readonly seen: Array<string>
  readonly events: Array<EventView>
  /** Errors survived (a poller retries; a subscription reconnects). */
  readonly errors: Array<string>
  readonly stop: () => Promise<void>
}

/** Polls `events.readAll` from the start of the log, page after page, until stopped. */
export const startReader = (client: ChronicleClient): Follower => {
  const seen: Array<string> = []
  const events: Array<EventView> = []
  const errors: Array<string> = []
  let stopped = false
  const loop = (async () => {
    let after: string | undefined
    while (!stopped) {
      try {
        const page = await client.events.readAll.query({ limit: 500, ...(after ? { after } : {}) })
        for (const e of page.items) {
          seen.push(e.cursor ?? "")
          events.push(e)
        }
        after = page.cursor
        if (page.nextCursor === null) await sleep(10)
      } catch (error) {
        errors.push(String(error))
        await sleep(50)
      }
    }
  })()
  return {
    seen,
    events,
    errors,
    stop: async () => {
      stopped = true
      await loop
    },
  }
}

/** Subscribes to the whole log over SSE; tRPC's client reconnects with the last event id. */
export const startSubscriber = (client: ChronicleClient): Follower => {
  const seen: Array<string> = []
  const events: Array<EventView> = []
  const errors: Array<string> = []
  const subscription = client.events.subscribe.subscribe(
    {},
    {
      onData: (event) => {
        seen.push(event.id)
        events.push(event.data)
      },
      onError: (error) => errors.push(String(error)),
    },
  )
  return {
    seen,
    events,
    errors,
    stop: async () => subscription.unsubscribe(),
  }
}

/** The whole log, read to the end. */
export const wholeLog = async (client: ChronicleClient) => {
  const events: Array<EventView> = []
  let after: string | undefined
  while (true) {
    const page = await client.events.readAll.query({ limit: 500, ...(after ? { after } : {}) })
    events.push(...page.items)
    after = page.cursor
    if (page.nextCursor === null) return events
  }
}

/** Waits until every follower has seen `n` events (or fails after `attempts` polls). */
export const caughtUp = async (followers: ReadonlyArray<Follower>, n: number, attempts = 3000) => {
  for (let i = 0; i < attempts; i++) {
    if (followers.every((f) => f.seen.length >= n)) return
    await sleep(20)
  }
  throw new Error(`followers saw ${followers.map((f) => f.seen.length).join(", ")} of ${n} events`)
}
