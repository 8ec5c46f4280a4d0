import { randomUUID } from "node:crypto"
import { Content, serviceActor } from "@chronicle/domain"
import { Projections } from "@chronicle/projections"
import { EventStore, type EventStoreService, type NewEvent } from "@chronicle/store"
import { Effect, Fiber, Stream } from "effect"
import {
  CONTENT,
  messageAppended,
  OWNER,
  RAW_INSERT,
  rawMultiInsert,
  rawRow,
  sessionStarted,
  sessionStream,
} from "./data.ts"
import type { BenchEnv } from "./env.ts"
import { type Figure, figure, type Value, value } from "./report.ts"
import { type Contender, drive, interleave, percentile, timeOnce } from "./stats.ts"

export interface Sizes {
  /** Measured rounds per side (after one warm-up round). */
  readonly rounds: number
  /** Single-event appends per round and side, at each concurrency. */
  readonly appendOps: number
  /** Batches of 100 per round and side. */
  readonly batches: number
  /** Stream reads and message pages per round and side. */
  readonly reads: number
  /** Events in the log for the catch-up read and the rebuild. */
  readonly logEvents: number
  readonly scanRounds: number
  readonly rebuildRounds: number
  /** HTTP calls per round and side, at each client count. */
  readonly httpOps: number
  /** Events each live-tail run delivers. */
  readonly liveEvents: number
  readonly liveSubscribers: ReadonlyArray<number>
  /** Log sizes at which append latency is measured. */
  readonly scaleLevels: ReadonlyArray<number>
  /** How long the reader beside the swap holds its table, in ms. */
  readonly swapReaderMs: number
}

export const QUICK: Sizes = {
  rounds: 1,
  appendOps: 40,
  batches: 3,
  reads: 3,
  logEvents: 3_000,
  scanRounds: 1,
  rebuildRounds: 1,
  httpOps: 20,
  liveEvents: 5,
  liveSubscribers: [1, 100],
  scaleLevels: [0, 3_000, 6_000],
  swapReaderMs: 3_000,
}

export const FULL: Sizes = {
  rounds: 4,
  appendOps: 1_000,
  batches: 40,
  reads: 40,
  logEvents: 1_000_000,
  scanRounds: 2,
  rebuildRounds: 1,
  httpOps: 500,
  liveEvents: 200,
  liveSubscribers: [1, 100],
  scaleLevels: [0, 1_000_000, 10_000_000],
  swapReaderMs: 12_000,
}

export interface Section {
  readonly figures: Array<Figure>
  readonly values: Array<Value>
  readonly notes: Array<string>
}

export const section = (): Section => ({ figures: [], values: [], notes: [] })

export const storeOf = (env: BenchEnv): Promise<EventStoreService> =>
  env.runtime.runPromise(
    Effect.gen(function* () {
      return yield* EventStore
    }),
  )

/** A new session stream whose first event is written, through the store. */
const newSession = async (env: BenchEnv, store: EventStoreService) => {
  const id = randomUUID()
  const streamId = sessionStream(id)
  await env.runtime.runPromise(store.append(streamId, [sessionStarted(id)], { ownerId: OWNER }))
  return { id, streamId, version: 1 }
}

// ----- 1, 10: single-event appends -----------------------------------------------------------

/** Chronicle's store append of one MessageAppended to a writer's own session stream. */
const chronicleAppender = (
  env: BenchEnv,
  store: EventStoreService,
  writers: number,
  ops: number,
): Contender => ({
  name: "Chronicle EventStore.append",
  run: async () => {
    const streams = await Promise.all(Array.from({ length: writers }, () => newSession(env, store)))
    return drive(ops, writers, async (w) => {
      const s = streams[w]!
      const result = await env.runtime.runPromise(
        store.append(s.streamId, [messageAppended(s.version)], { expectedVersion: s.version }),
      )
      s.version = result.version
    })
  },
})

/** The same row inserted by postgres.js (or PGlite) in its own transaction, no function, no trigger. */
export const rawAppender = (env: BenchEnv, writers: number, ops: number): Contender => ({
  name: "raw single-row INSERT",
  run: async () => {
    const streams = Array.from({ length: writers }, () => ({
      streamId: sessionStream(randomUUID()),
      version: 0,
    }))
    return drive(ops, writers, async (w) => {
      const s = streams[w]!
      s.version++
      await env.raw.query(RAW_INSERT, rawRow(s.streamId, s.version, messageAppended(s.version)))
    })
  },
})

export const appendFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  const store = await storeOf(env)
  for (const writers of [1, 16]) {
    const [chronicle, baseline] = await interleave(sizes.rounds, [
      chronicleAppender(env, store, writers, sizes.appendOps),
      rawAppender(env, writers, sizes.appendOps),
    ])
    out.figures.push(
      figure({
        id: `append.single.w${writers}`,
        title: `Append 1 event/call, ${writers} writer${writers > 1 ? "s" : ""}`,
        unit: "events/s",
        chronicle: chronicle!,
        baseline: baseline!,
        // Group commit lets 16 writers share commits: past one transaction per row.
        target: { op: ">=", value: writers === 1 ? 0.8 : 1 },
      }),
    )
  }
  return out
}

// ----- 2: batches ------------------------------------------------------------------------------

export const batchFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  const store = await storeOf(env)
  const size = 100
  const insert = rawMultiInsert(size)
  const [chronicle, baseline] = await interleave(sizes.rounds, [
    {
      name: "Chronicle EventStore.append ×100",
      run: async () => {
        const s = await newSession(env, store)
        const sample = await drive(sizes.batches, 1, async () => {
          const events = Array.from({ length: size }, (_, i) => messageAppended(s.version + i))
          const result = await env.runtime.runPromise(
            store.append(s.streamId, events, { expectedVersion: s.version }),
          )
          s.version = result.version
        })
        return { ...sample, ops: sample.ops * size }
      },
    },
    {
      name: "raw multi-row INSERT ×100",
      run: async () => {
        const streamId = sessionStream(randomUUID())
        let version = 0
        const sample = await drive(sizes.batches, 1, async () => {
          const params = Array.from({ length: size }, () => {
            version++
            return rawRow(streamId, version, messageAppended(version))
          }).flat()
          await env.raw.query(insert, params)
        })
        return { ...sample, ops: sample.ops * size }
      },
    },
  ])
  out.figures.push(
    figure({
      id: "append.batch100",
      title: "Append batches of 100 events",
      unit: "events/s",
      chronicle: chronicle!,
      baseline: baseline!,
      target: { op: ">=", value: 0.7 },
      note: "latency is per batch",
    }),
  )
  return out
}

// ----- 3: stream read and message page -------------------------------------------------------------

const EVENT_COLUMNS = `e.event_id::text, e.stream_id, e.stream_version, e.type, e.schema_version, e.data,
  e.metadata, e.global_position::text, e.transaction_id::text, e.recorded_at`

/** A session of `n` events (SessionStarted and n − 1 messages), written through the store. */
export const writeSession = async (env: BenchEnv, store: EventStoreService, n: number) => {
  const s = await newSession(env, store)
  while (s.version < n) {
    const count = Math.min(500, n - s.version)
    const events: Array<NewEvent> = Array.from({ length: count }, (_, i) => messageAppended(s.version + i))
    const result = await env.runtime.runPromise(
      store.append(s.streamId, events, { expectedVersion: s.version }),
    )
    s.version = result.version
  }
  return s
}

export const readFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  const store = await storeOf(env)
  const content = await env.runtime.runPromise(
    Effect.gen(function* () {
      return yield* Content
    }),
  )
  const session = await writeSession(env, store, 1000)

  const [chronicle, baseline] = await interleave(sizes.rounds, [
    {
      name: "Chronicle EventStore.readStream",
      run: () =>
        drive(sizes.reads, 1, async () => {
          const page = await env.runtime.runPromise(store.readStream(session.streamId, { limit: 1000 }))
          if (page.events.length !== 1000) throw new Error(`read ${page.events.length} events, not 1000`)
        }),
    },
    {
      name: "raw indexed SELECT",
      run: () =>
        drive(sizes.reads, 1, async () => {
          const rows = await env.raw.query(
            `select ${EVENT_COLUMNS} from chronicle.events e
              where e.stream_id = $1 and e.stream_version >= $2 order by e.stream_version limit $3`,
            [session.streamId, 1, 1000],
          )
          if (rows.length !== 1000) throw new Error(`read ${rows.length} rows, not 1000`)
        }),
    },
  ])
  out.figures.push(
    figure({
      id: "read.stream1000",
      title: "Read a stream of 1,000 events",
      unit: "reads/s",
      chronicle: chronicle!,
      baseline: baseline!,
      target: { op: ">=", value: 0.7 },
    }),
  )

  // 999 messages, pages of 100: ten pages per pass.
  const pageSize = 100
  const pagesPerPass = Math.ceil((session.version - 1) / pageSize)
  const passes = Math.max(1, Math.round(sizes.reads / pagesPerPass))
  const [pages, rawPages] = await interleave(sizes.rounds, [
    {
      name: "Chronicle Content.listMessages",
      run: async () => {
        const latencies: Array<number> = []
        const started = performance.now()
        for (let p = 0; p < passes; p++) {
          let cursor: string | null = null
          do {
            const t = performance.now()
            const page: { readonly nextCursor: string | null } = await env.runtime.runPromise(
              content.listMessages(serviceActor(), session.id, { limit: pageSize, cursor }),
            )
            latencies.push(performance.now() - t)
            cursor = page.nextCursor
          } while (cursor !== null)
        }
        return { ops: latencies.length, ms: performance.now() - started, latencies }
      },
    },
    {
      name: "raw indexed SELECT",
      run: async () => {
        const latencies: Array<number> = []
        const started = performance.now()
        for (let p = 0; p < passes; p++) {
          let after = 0
          while (true) {
            const t = performance.now()
            const rows = await env.raw.query<{ seq: number }>(
              `select m.*, m.session_id::text as session_id, m.message_id::text as message_id
                 from chronicle.messages m where m.session_id = $1::uuid and m.seq > $2
                order by m.seq limit $3`,
              [session.id, after, pageSize + 1],
            )
            latencies.push(performance.now() - t)
            if (rows.length <= pageSize) break
            after = rows[pageSize - 1]!.seq
          }
        }
        return { ops: latencies.length, ms: performance.now() - started, latencies }
      },
    },
  ])
  out.figures.push(
    figure({
      id: "read.messagePage",
      title: `Page a session's messages (${pageSize}/page, read model)`,
      unit: "pages/s",
      chronicle: pages!,
      baseline: rawPages!,
      target: { op: ">=", value: 0.7 },
    }),
  )
  return out
}

// ----- the 1M-event log --------------------------------------------------------------------------

export const countEvents = async (env: BenchEnv) => {
  const [row] = await env.raw.query<{ n: string }>("select count(*)::text as n from chronicle.events")
  return Number(row?.n ?? 0)
}

const rssMiB = () => process.memoryUsage().rss / 2 ** 20

/**
 * Appends sessions of 1,000 events (batches of 500) through the store until the log holds
 * `target` events. Returns the benchmark process's resident memory before and after.
 */
export const fillLog = async (env: BenchEnv, target: number, log: (line: string) => void) => {
  const store = await storeOf(env)
  const before = rssMiB()
  let count = await countEvents(env)
  const started = performance.now()
  const workers = env.kind === "postgres" ? 4 : 1
  let lastReport = performance.now()
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (count < target) {
        const n = Math.min(1000, Math.max(2, target - count))
        count += n
        await writeSession(env, store, n)
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now()
          log(`  log: ${count.toLocaleString("en-US")} / ${target.toLocaleString("en-US")} events`)
        }
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  return { before, after: rssMiB(), seconds, events: await countEvents(env) }
}

// ----- 4: catch-up read --------------------------------------------------------------------------

export const catchUpFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  const store = await storeOf(env)
  const total = await countEvents(env)
  const [chronicle, baseline] = await interleave(
    sizes.scanRounds,
    [
      {
        name: "Chronicle EventStore.readAll (safe cursor)",
        run: () =>
          timeOnce(total, async () => {
            let after: string | undefined
            let seen = 0
            while (true) {
              const page = await env.runtime.runPromise(store.readAll({ after, limit: 1000 }))
              seen += page.events.length
              after = page.cursor
              if (page.caughtUp) break
            }
            if (seen !== total) throw new Error(`catch-up read ${seen} events, not ${total}`)
          }),
      },
      {
        name: "raw ordered scan",
        run: () =>
          timeOnce(total, async () => {
            let after = "0"
            let seen = 0
            while (true) {
              const rows = await env.raw.query<{ global_position: string }>(
                `select ${EVENT_COLUMNS} from chronicle.events e
                  where e.global_position > $1::bigint order by e.global_position limit 1000`,
                [after],
              )
              seen += rows.length
              if (rows.length < 1000) break
              after = rows.at(-1)!.global_position
            }
            if (seen !== total) throw new Error(`raw scan read ${seen} rows, not ${total}`)
          }),
      },
    ],
    false,
  )
  out.figures.push(
    figure({
      id: "read.catchUp",
      title: `Catch-up read of the whole log (${total.toLocaleString("en-US")} events, pages of 1,000)`,
      unit: "events/s",
      chronicle: chronicle!,
      baseline: baseline!,
      target: { op: ">=", value: 0.8 },
    }),
  )
  return out
}

// ----- 5: rebuild ----------------------------------------------------------------------------------

export const rebuildFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  const projections = await env.runtime.runPromise(
    Effect.gen(function* () {
      return yield* Projections
    }),
  )
  const total = await countEvents(env)
  const [chronicle, baseline] = await interleave(
    sizes.rebuildRounds,
    [
      {
        name: "Chronicle Projections.rebuild",
        run: () =>
          timeOnce(total, async () => {
            const done = await env.runtime.runPromise(
              Effect.flatMap(projections.startRebuild(), (started) => projections.execute(started.id)),
            )
            if (done.state !== "completed") throw new Error(`rebuild ended ${done.state}: ${done.error}`)
          }),
      },
      {
        name: "raw scan-and-insert",
        run: () =>
          timeOnce(total, async () => {
            await env.raw.transaction(async (tx) => {
              await tx.exec("truncate bench_raw.rebuilt")
              await tx.query(
                `insert into bench_raw.rebuilt (global_position, stream_id, stream_version, type, data)
                 select global_position, stream_id, stream_version, type, data
                   from chronicle.events order by global_position`,
              )
            })
          }),
      },
    ],
    false,
  )
  out.figures.push(
    figure({
      id: "rebuild",
      title: `Rebuild the built-in projections (${total.toLocaleString("en-US")} events)`,
      unit: "events/s",
      chronicle: chronicle!,
      baseline: baseline!,
      target: { op: ">=", value: 0.5 },
    }),
  )
  out.values.push(
    value({
      id: "rebuild.eventsPerSecond",
      title: "Rebuild rate",
      value: chronicle!.perSecond.median,
      unit: "events/s",
      target: { op: ">=", value: 50_000 },
    }),
  )
  return out
}

// ----- 5b: the swap beside a long reader ----------------------------------------------------------

/** Appends of one message, by a worker per session (created beforehand), until `stop` resolves. */
const appendUntil = async (
  env: BenchEnv,
  store: EventStoreService,
  streams: ReadonlyArray<{ streamId: string; version: number }>,
  stop: Promise<unknown>,
): Promise<Array<number>> => {
  let stopped = false
  void stop.then(() => {
    stopped = true
  })
  const latencies: Array<number> = []
  await Promise.all(
    streams.map(async (s) => {
      while (!stopped) {
        const t = performance.now()
        const result = await env.runtime.runPromise(
          store.append(s.streamId, [messageAppended(s.version)], { expectedVersion: s.version }),
        )
        latencies.push(performance.now() - t)
        s.version = result.version
      }
    }),
  )
  return latencies.sort((a, b) => a - b)
}

/**
 * A transaction that reads chronicle.sessions and stays open for `ms`, on the baselines' pool:
 * `holding` once it has read, `done` once it has ended.
 */
const longReader = (env: BenchEnv, ms: number) => {
  let held!: () => void
  const holding = new Promise<void>((resolve) => {
    held = resolve
  })
  const done = env.raw.transaction(async (tx) => {
    await tx.query("select count(*) from chronicle.sessions")
    held()
    await new Promise((resolve) => setTimeout(resolve, ms))
  })
  return { holding, done }
}

/**
 * The lock sequence of the swap before it backed off: the log's lock first, then the read
 * model's, waiting for its reader up to a 2 s lock timeout, and again at once after each
 * timeout, until `until` resolves. (Replayed on its own: the function that did it is gone.)
 */
const previousSwapLocks = async (env: BenchEnv, until: Promise<unknown>) => {
  let done = false
  void until.then(() => {
    done = true
  })
  let attempts = 0
  while (!done) {
    attempts++
    await env.raw
      .transaction(async (tx) => {
        await tx.exec("set local lock_timeout = '2s'")
        await tx.exec("lock table chronicle.events in share row exclusive mode")
        await tx.exec("lock table chronicle.sessions in access exclusive mode")
        throw new Error("the reader is gone")
      })
      .catch(() => undefined)
  }
  return attempts
}

/**
 * Appends' latency while a rebuild of `sessions` swaps its tables in and a reader holds
 * chronicle.sessions for `readerMs`: with no swap (the reference), with the lock sequence of
 * the previous swap, and with the engine's swap (the log's lock with a 100 ms timeout, the
 * tables with NOWAIT, jittered back-off between attempts). Postgres only: the embedded
 * database runs one transaction at a time, so a reader there stalls every writer anyway.
 */
export const swapFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  if (env.kind !== "postgres") {
    out.notes.push("Swap beside a reader: not measured on the embedded database (one transaction at a time).")
    return out
  }
  const readerMs = sizes.swapReaderMs
  const writers = 8
  const store = await storeOf(env)
  const projections = await env.runtime.runPromise(
    Effect.gen(function* () {
      return yield* Projections
    }),
  )

  // Each phase's writers have their sessions before its reader starts.
  const sessionsOfWriters = () => Promise.all(Array.from({ length: writers }, () => newSession(env, store)))

  let streams = await sessionsOfWriters()
  const reader = longReader(env, readerMs)
  await reader.holding
  const reference = await appendUntil(env, store, streams, reader.done)

  streams = await sessionsOfWriters()
  const previousReader = longReader(env, readerMs)
  await previousReader.holding
  const previousAttempts = previousSwapLocks(env, previousReader.done)
  const previous = await appendUntil(env, store, streams, previousReader.done)
  const previousTries = await previousAttempts

  // The reader starts once the rebuild has caught up with the log (however long the log), so
  // the swap meets it.
  streams = await sessionsOfWriters()
  let engineReader: ReturnType<typeof longReader> | undefined
  let readerStarted!: (r: ReturnType<typeof longReader>) => void
  const started = new Promise<ReturnType<typeof longReader>>((resolve) => {
    readerStarted = resolve
  })
  const rebuild = env.runtime.runPromise(
    Effect.flatMap(projections.startRebuild({ projections: ["sessions"] }), (run) =>
      projections.execute(run.id, {
        onProgress: async (progress) => {
          if (engineReader !== undefined || progress.phase !== "catching-up") return
          engineReader = longReader(env, readerMs)
          readerStarted(engineReader)
          await engineReader.holding
        },
      }),
    ),
  )
  const { holding, done } = await started
  await holding
  // Appends go on until both the reader has finished and the swap has gone through.
  const engine = await appendUntil(env, store, streams, Promise.all([done, rebuild]))
  const run = await rebuild
  if (run.state !== "completed") throw new Error(`rebuild ended ${run.state}: ${run.error}`)

  const sides = [
    ["reference", "no swap", reference],
    ["previous", "previous swap's locks", previous],
    ["engine", "engine's swap", engine],
  ] as const
  for (const [id, title, latencies] of sides) {
    out.values.push(
      value({
        id: `swap.${id}.p50`,
        title: `Append p50 beside a ${readerMs / 1000} s reader, ${title}`,
        value: percentile(latencies, 50),
        unit: "ms",
      }),
      value({
        id: `swap.${id}.p99`,
        title: `Append p99 beside a ${readerMs / 1000} s reader, ${title}`,
        value: percentile(latencies, 99),
        unit: "ms",
      }),
      value({
        id: `swap.${id}.appends`,
        title: `Appends completed (${writers} writers), ${title}`,
        value: latencies.length,
        unit: "appends",
      }),
    )
  }
  out.values.push(
    value({
      id: "swap.p99.ratio",
      title: "Append p99 during the engine's swap ÷ during the previous swap's locks",
      value: percentile(engine, 99) / percentile(previous, 99),
      unit: "×",
      target: { op: "<=", value: 0.1 },
    }),
    value({
      id: "swap.p99.overReference",
      title: "Append p99 during the engine's swap ÷ with no swap",
      value: percentile(engine, 99) / percentile(reference, 99),
      unit: "×",
    }),
  )
  out.notes.push(
    `Swap beside a reader: the previous swap's lock sequence tried ${previousTries} times in ${readerMs / 1000} s; the engine's swap backed off ${run.swapAttempts} times and went through once the reader had finished.`,
  )
  return out
}

// ----- 7: live tail ---------------------------------------------------------------------------------

export const liveFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  const store = await storeOf(env)
  for (const subscribers of sizes.liveSubscribers) {
    const streamId = `bench-${randomUUID()}`
    const head = await env.runtime.runPromise(store.head())
    const sent = new Map<number, number>()
    const latencies: Array<number> = []
    let waiting: { index: number; remaining: number; done: () => void } | undefined
    const fibers = await Promise.all(
      Array.from({ length: subscribers }, () =>
        env.runtime.runPromise(
          store.subscribe({ after: head.cursor, streamIds: [streamId] }).pipe(
            Stream.runForEach((event) =>
              Effect.sync(() => {
                const index = (event.data as { i: number }).i
                latencies.push(performance.now() - sent.get(index)!)
                if (waiting?.index === index && --waiting.remaining === 0) waiting.done()
              }),
            ),
            Effect.forkDetach,
          ),
        ),
      ),
    )
    // Let every subscriber make its first read before the first probe.
    await new Promise((resolve) => setTimeout(resolve, 300))
    for (let i = 0; i < sizes.liveEvents; i++) {
      const delivered = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`probe ${i} not delivered in 10 s`)), 10_000)
        waiting = {
          index: i,
          remaining: subscribers,
          done: () => {
            clearTimeout(timer)
            resolve()
          },
        }
      })
      sent.set(i, performance.now())
      await env.runtime.runPromise(store.append(streamId, [{ type: "BenchProbe", data: { i } }]))
      await delivered
    }
    await Promise.all(fibers.map((f) => env.runtime.runPromise(Fiber.interrupt(f))))
    latencies.sort((a, b) => a - b)
    out.values.push(
      value({
        id: `live.p50.s${subscribers}`,
        title: `Live tail delivery p50, ${subscribers} subscriber${subscribers > 1 ? "s" : ""}`,
        value: percentile(latencies, 50),
        unit: "ms",
        target: { op: "<", value: 20 },
      }),
      value({
        id: `live.p99.s${subscribers}`,
        title: `Live tail delivery p99, ${subscribers} subscriber${subscribers > 1 ? "s" : ""}`,
        value: percentile(latencies, 99),
        unit: "ms",
      }),
    )
  }
  out.notes.push(
    "Live tail: EventStore.subscribe in the benchmark process (LISTEN/NOTIFY wake-ups); latency runs from the moment the append is sent to the moment each subscriber has the event, so it includes the append's own round trip.",
  )
  return out
}

// ----- 10: scale -------------------------------------------------------------------------------------

/**
 * Single-event append latency now, at the log's current size, interleaved with the raw
 * INSERT (whose table does not grow), which tells how loaded the machine was meanwhile.
 */
export const appendLatencyAt = async (env: BenchEnv, sizes: Sizes) => {
  const store = await storeOf(env)
  const events = await countEvents(env)
  const [chronicle, raw] = await interleave(sizes.rounds, [
    chronicleAppender(env, store, 1, sizes.appendOps),
    rawAppender(env, 1, sizes.appendOps),
  ])
  return { events, result: chronicle!, raw: raw! }
}

/**
 * Grows the log to `target` events fast: rows of the log's shape generated in SQL (streams of
 * 1,000 MessageAppended events in a category no read model follows), with triggers off for
 * the loading session only. The measured appends afterwards take the real path.
 */
export const bulkLoad = async (env: BenchEnv, target: number, log: (line: string) => void) => {
  const chunk = 500_000
  let count = await countEvents(env)
  const started = performance.now()
  while (count < target) {
    const n = Math.min(chunk, target - count)
    const streams = Math.ceil(n / 1000)
    await env.raw.transaction(async (tx) => {
      await tx.exec("set local session_replication_role = replica")
      await tx.query(
        `with s as (
           select i, 'bulk-' || gen_random_uuid() as id from generate_series(1, $1::int) i),
         streams as (
           insert into chronicle.streams (stream_id, stream_type, version, owner_id)
           select id, 'bulk', least(1000, $2::int - (i - 1) * 1000), null from s)
         insert into chronicle.events (stream_id, stream_version, event_id, type, data, metadata)
         select s.id, v, gen_random_uuid(), 'MessageAppended',
                jsonb_build_object('messageId', gen_random_uuid(), 'seq', v, 'role', 'user',
                                   'content', $3::text, 'metadata', '{}'::jsonb, 'createdAt', null),
                '{}'::jsonb
           from s cross join lateral generate_series(1, least(1000, $2::int - (s.i - 1) * 1000)) v`,
        [streams, n, CONTENT],
      )
    })
    count += n
    log(
      `  bulk load: ${count.toLocaleString("en-US")} / ${target.toLocaleString("en-US")} events (${Math.round((performance.now() - started) / 1000)} s)`,
    )
  }
  await sequenceAll(env, log)
  await env.raw.exec("analyze chronicle.events")
  await env.raw.exec("analyze chronicle.event_seq")
  return { seconds: (performance.now() - started) / 1000 }
}

/**
 * Gives every event loaded by SQL its place in the log's order (the sequencer takes them in
 * passes of 100,000), so the readers measured afterwards see the whole log.
 */
export const sequenceAll = async (env: BenchEnv, log: (line: string) => void) => {
  const started = performance.now()
  for (;;) {
    const [row] = await env.raw.query<{ sequenced: number; last_seq: string; more: boolean; fresh: boolean }>(
      "select sequenced, last_seq::text, more, fresh from chronicle.sequence_events(100000)",
    )
    if (row !== undefined && row.sequenced > 0)
      log(
        `  ordered: ${Number(row.last_seq).toLocaleString("en-US")} events (${Math.round((performance.now() - started) / 1000)} s)`,
      )
    if (row === undefined || (!row.more && row.fresh && row.sequenced === 0)) return
  }
}
