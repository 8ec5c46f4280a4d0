import { randomUUID } from "node:crypto"
import { getPostgreSQLEventStore } from "@event-driven-io/emmett-postgresql"
import pg from "pg"
import { messageAppended } from "./data.ts"
import type { BenchEnv } from "./env.ts"
import { POOL_SIZE } from "./env.ts"
import { figure } from "./report.ts"
import { drive, interleave } from "./stats.ts"
import { type Section, type Sizes, section, storeOf, writeSession } from "./workloads.ts"

/** An event as Emmett takes it: the same type and data Chronicle stores. */
const emmettEvent = (seq: number) => {
  const e = messageAppended(seq)
  return { type: e.type, data: e.data as Record<string, unknown> }
}

/** The same append and read workloads through Emmett's PostgreSQL event store, on the same server. */
export const peerFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  if (env.peerUrl === null) {
    out.notes.push(
      "Peer (Emmett): not run on the embedded database (Emmett's PostgreSQL store needs a server).",
    )
    return out
  }
  const pool = new pg.Pool({ connectionString: env.peerUrl, max: POOL_SIZE })
  const emmett = getPostgreSQLEventStore(env.peerUrl, {
    connectionOptions: { connectionString: env.peerUrl, pool },
  })
  const store = await storeOf(env)
  try {
    await emmett.schema.migrate()

    for (const writers of [1, 16]) {
      const [chronicle, bare, peer] = await interleave(sizes.rounds, [
        {
          name: "Chronicle EventStore.append",
          run: async () => {
            const streams = await Promise.all(
              Array.from({ length: writers }, () => writeSession(env, store, 1)),
            )
            return drive(sizes.appendOps, writers, async (w) => {
              const s = streams[w]!
              const result = await env.runtime.runPromise(
                store.append(s.streamId, [messageAppended(s.version)], { expectedVersion: s.version }),
              )
              s.version = result.version
            })
          },
        },
        {
          // Like for like: a stream of a category no projection reads, so the append writes the
          // log and nothing else, as Emmett's does.
          name: "Chronicle EventStore.append, no read model",
          run: async () => {
            const streams = Array.from({ length: writers }, () => ({
              id: `bench-${randomUUID()}`,
              version: 0,
            }))
            return drive(sizes.appendOps, writers, async (w) => {
              const s = streams[w]!
              const result = await env.runtime.runPromise(
                store.append(s.id, [messageAppended(s.version + 1)], {
                  expectedVersion: s.version === 0 ? "no_stream" : s.version,
                }),
              )
              s.version = result.version
            })
          },
        },
        {
          name: "Emmett appendToStream",
          run: async () => {
            const streams = Array.from({ length: writers }, () => ({
              name: `session-${randomUUID()}`,
              version: 0n,
            }))
            return drive(sizes.appendOps, writers, async (w) => {
              const s = streams[w]!
              const result = await emmett.appendToStream(s.name, [emmettEvent(Number(s.version) + 1)], {
                expectedStreamVersion: s.version === 0n ? "STREAM_DOES_NOT_EXIST" : s.version,
              })
              s.version = result.nextExpectedStreamVersion
            })
          },
        },
      ])
      out.figures.push(
        figure({
          id: `peer.append.w${writers}`,
          title: `vs Emmett: append 1 event/call, ${writers} writer${writers > 1 ? "s" : ""}`,
          unit: "events/s",
          chronicle: chronicle!,
          baseline: peer!,
          target: { op: ">=", value: 1 },
        }),
        figure({
          id: `peer.append.noreadmodel.w${writers}`,
          title: `vs Emmett, like for like (no read model): append 1 event/call, ${writers} writer${writers > 1 ? "s" : ""}`,
          unit: "events/s",
          chronicle: bare!,
          baseline: peer!,
          target: { op: ">=", value: 1 },
        }),
      )
    }

    const size = 100
    const [batch, peerBatch] = await interleave(sizes.rounds, [
      {
        name: "Chronicle EventStore.append ×100",
        run: async () => {
          const s = await writeSession(env, store, 1)
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
        name: "Emmett appendToStream ×100",
        run: async () => {
          const name = `session-${randomUUID()}`
          let version = 0
          const sample = await drive(sizes.batches, 1, async () => {
            const events = Array.from({ length: size }, (_, i) => emmettEvent(version + i + 1))
            const result = await emmett.appendToStream(name, events)
            version = Number(result.nextExpectedStreamVersion)
          })
          return { ...sample, ops: sample.ops * size }
        },
      },
    ])
    out.figures.push(
      figure({
        id: "peer.batch100",
        title: "vs Emmett: append batches of 100 events",
        unit: "events/s",
        chronicle: batch!,
        baseline: peerBatch!,
        target: { op: ">=", value: 1 },
      }),
    )

    const session = await writeSession(env, store, 1000)
    const peerStream = `session-${randomUUID()}`
    for (let v = 0; v < 1000; v += 500) {
      await emmett.appendToStream(
        peerStream,
        Array.from({ length: 500 }, (_, i) => emmettEvent(v + i + 1)),
      )
    }
    const [read, peerRead] = await interleave(sizes.rounds, [
      {
        name: "Chronicle EventStore.readStream",
        run: () =>
          drive(sizes.reads, 1, async () => {
            const page = await env.runtime.runPromise(store.readStream(session.streamId, { limit: 1000 }))
            if (page.events.length !== 1000) throw new Error(`read ${page.events.length} events`)
          }),
      },
      {
        name: "Emmett readStream",
        run: () =>
          drive(sizes.reads, 1, async () => {
            const result = await emmett.readStream(peerStream)
            if (result.events.length !== 1000) throw new Error(`Emmett read ${result.events.length} events`)
          }),
      },
    ])
    out.figures.push(
      figure({
        id: "peer.read1000",
        title: "vs Emmett: read a stream of 1,000 events",
        unit: "reads/s",
        chronicle: read!,
        baseline: peerRead!,
        target: { op: ">=", value: 1 },
      }),
    )
  } finally {
    await emmett.close()
    await pool.end().catch(() => undefined)
  }
  out.notes.push(
    "Peer: @event-driven-io/emmett-postgresql 0.42.0 through its public API (getPostgreSQLEventStore, appendToStream, readStream), in its own database on the same server, pool of 20 like Chronicle's; Chronicle's appends include its inline read models, Emmett's have none registered; the 'no read model' rows append to a stream category no projection reads.",
  )
  return out
}
