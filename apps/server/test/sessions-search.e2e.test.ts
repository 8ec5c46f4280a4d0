import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import { CURRENT_SCHEMA_VERSION } from "@chronicle/events"
import { Database } from "@chronicle/store"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import {
  allPages,
  type Callers,
  callers,
  clientFor,
  refusal,
  startTestServer,
  type TestServer,
  testDatabases,
} from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

type ListInput = Exclude<Parameters<ChronicleClient["sessions"]["list"]["query"]>[0], undefined>

const noDuplicates = (ids: ReadonlyArray<string>) => expect(new Set(ids).size).toBe(ids.length)
describe.each(testDatabases(env))("sessions.list filters, on $name", (database) => {
  let t: TestServer
  let c: Callers
  /** A client for a user of its own, so a list holds only what the test made. */
  let freshUser: () => Promise<{ id: string; client: ChronicleClient }>

  /**
   * A session of `ownerId` started at a chosen time, through the import path (which keeps
   * recorded_at), so date filters can be tried across days.
   */
  const startedAt = async (ownerId: string, recordedAt: string, title: string | null) => {
    const sessionId = randomUUID()
    await t.server.runtime.runPromise(
      Effect.flatMap(Database, (db) =>
        db.query("select * from chronicle.import_events($1, $2::text::jsonb, $3::uuid)", [
          `session-${sessionId}`,
          JSON.stringify([
            {
              version: 1,
              event_id: randomUUID(),
              type: "SessionStarted",
              schema_version: CURRENT_SCHEMA_VERSION,
              data: { sessionId, ownerId, title, metadata: {}, externalKey: null },
              metadata: {},
              recorded_at: recordedAt,
            },
          ]),
          ownerId,
        ]),
      ).pipe(Effect.orDie),
    )
    return sessionId
  }

  /** Every id the filtered list returns, following the cursor with small pages. */
  const listed = async (client: ChronicleClient, filters: ListInput, limit = 2) => {
    const { items } = await allPages((cursor) =>
      client.sessions.list.query({ ...filters, limit, ...(cursor ? { cursor } : {}) }),
    )
    const ids = items.map((s) => s.id)
    noDuplicates(ids)
    return ids
  }

  beforeAll(async () => {
    t = await startTestServer(database)
    c = await callers(t)
    freshUser = async () => {
      const id = randomUUID()
      return { id, client: clientFor(t.server.url, await t.authority.hs256Token({ sub: id })) }
    }
  })
  afterAll(() => t?.close())

  it("finds sessions by title, case-insensitively, taking %, _ and \\ literally", async () => {
    const { client } = await freshUser()
    const make = (title: string) => client.sessions.create.mutate({ title })
    const trip = await make("Plan a TRIP to Lisbon")
    const tripLower = await make("trip notes")
    const percent = await make("100% done")
    const hundred = await make("1000 done")
    const underscore = await make("snake_case")
    const snakes = await make("snakeXcase")
    const backslash = await make("C:\\temp")
    await make("unrelated")

    expect(await listed(client, { search: "Trip" })).toEqual([tripLower.id, trip.id])
    expect(await listed(client, { search: "  LISBON " })).toEqual([trip.id])
    expect(await listed(client, { search: "100%" })).toEqual([percent.id])
    expect(await listed(client, { search: "%" })).toEqual([percent.id])
    expect(await listed(client, { search: "e_c" })).toEqual([underscore.id])
    expect(await listed(client, { search: "_" })).toEqual([underscore.id])
    expect(await listed(client, { search: ":\\t" })).toEqual([backslash.id])
    expect(await listed(client, { search: "\\" })).toEqual([backslash.id])
    expect(await listed(client, { search: "no such title" })).toEqual([])
    // Without the filter, the wildcards' would-be matches are there.
    expect(await listed(client, {}, 50)).toEqual(expect.arrayContaining([hundred.id, snakes.id]))
  })

  it("finds sessions by external key and by the start of their id", async () => {
    const { client } = await freshUser()
    const keyed = await client.sessions.create.mutate({ title: "keyed", externalKey: "Thread-42-ABC" })
    const other = await client.sessions.create.mutate({ title: "other" })
    expect(await listed(client, { search: "thread-42" })).toEqual([keyed.id])

    expect(await listed(client, { search: other.id })).toEqual([other.id])
    expect(await listed(client, { search: other.id.slice(0, 13).toUpperCase() })).toEqual([other.id])
    // A prefix of the id, not any part of it.
    expect(await listed(client, { search: other.id.slice(1, 13) })).not.toContain(other.id)
  })

  it("filters by creation date and time, inclusive at both ends; a date `to` is the whole UTC day", async () => {
    const { id: owner, client } = await freshUser()
    const at = {
      feb28: await startedAt(owner, "2026-02-28T23:59:59.999999Z", "feb 28 late"),
      mar1early: await startedAt(owner, "2026-03-01T00:00:00.000000Z", "mar 1 early"),
      mar1noon: await startedAt(owner, "2026-03-01T12:00:00.123456Z", "mar 1 noon"),
      mar1late: await startedAt(owner, "2026-03-01T23:59:59.999999Z", "mar 1 late"),
      mar2: await startedAt(owner, "2026-03-02T00:00:00.000000Z", "mar 2"),
    }

    expect(await listed(client, { createdFrom: "2026-03-01", createdTo: "2026-03-01" })).toEqual([
      at.mar1late,
      at.mar1noon,
      at.mar1early,
    ])
    expect(await listed(client, { createdFrom: "2026-03-01" })).toEqual([
      at.mar2,
      at.mar1late,
      at.mar1noon,
      at.mar1early,
    ])
    expect(await listed(client, { createdTo: "2026-02-28" })).toEqual([at.feb28])
    // A timestamp bound is inclusive to the precision it is given in: the session shown as
    // created at 12:00:00.123Z (its time cut to milliseconds) is within `to: …12:00:00.123Z`.
    const noon = (await client.sessions.get.query({ id: at.mar1noon })).createdAt
    expect(noon).toBe("2026-03-01T12:00:00.123Z")
    expect(await listed(client, { createdFrom: noon, createdTo: noon })).toEqual([at.mar1noon])
    expect(await listed(client, { createdTo: "2026-03-01T12:00:00.123455Z" })).toEqual([
      at.mar1early,
      at.feb28,
    ])
    expect(await listed(client, { createdFrom: "2026-03-01T12:00:00.123457Z" })).toEqual([
      at.mar2,
      at.mar1late,
    ])
    // Time zones are honoured: 01:00 at +01:00 is midnight UTC.
    expect(
      await listed(client, {
        createdFrom: "2026-03-01T01:00:00+01:00",
        createdTo: "2026-03-01T01:00:00+01:00",
      }),
    ).toEqual([at.mar1early])
    // Combined with the text search.
    expect(await listed(client, { search: "LATE", createdFrom: "2026-03-01" })).toEqual([at.mar1late])
  })

  it("pages through filtered results to the end with no duplicate and no gap", async () => {
    const { id: owner, client } = await freshUser()
    const wanted: Array<{ id: string; time: string }> = []
    // Several sessions share each instant, so the keyset must break ties by id.
    for (let i = 0; i < 9; i++) {
      const time = `2026-05-0${1 + (i % 3)}T08:00:00.000000Z`
      wanted.push({ id: await startedAt(owner, time, `match ${i}`), time })
      await startedAt(owner, time, `noise ${i}`)
    }
    await startedAt(owner, "2026-06-01T08:00:00.000000Z", "match, but too late")
    const live = await Promise.all(
      Array.from({ length: 7 }, (_, i) => client.sessions.create.mutate({ title: `Match live ${i}` })),
    )

    // Newest first, then by id (descending) among sessions of the same instant.
    const expected = [...wanted]
      .sort((a, b) => (a.time === b.time ? (a.id < b.id ? 1 : -1) : a.time < b.time ? 1 : -1))
      .map((s) => s.id)
    for (const limit of [1, 2, 4, 500]) {
      expect(await listed(client, { search: "match", createdTo: "2026-05-31" }, limit)).toEqual(expected)
    }
    const all = await allPages((cursor) =>
      client.sessions.list.query({ search: "MATCH", limit: 3, ...(cursor ? { cursor } : {}) }),
    )
    const ids = all.items.map((s) => s.id)
    noDuplicates(ids)
    expect(ids.length).toBe(wanted.length + 1 + live.length)
    const times = all.items.map((s) => s.createdAt)
    expect(times).toEqual([...times].sort().reverse())
    expect(ids.slice(0, live.length).sort()).toEqual(live.map((s) => s.id).sort())
    expect(ids.slice(live.length + 1)).toEqual(expected)
  })

  it("never returns another user's sessions; the service role acting for a user sees that user's", async () => {
    const tag = `shared-${randomUUID().slice(0, 8)}`
    const mine = await c.asAlice.sessions.create.mutate({ title: `${tag} alice` })
    const theirs = await c.asBob.sessions.create.mutate({ title: `${tag} bob` })
    expect(await listed(c.asAlice, { search: tag })).toEqual([mine.id])
    expect(await listed(c.asBob, { search: tag })).toEqual([theirs.id])
    expect(await listed(c.asAlice, { search: theirs.id })).toEqual([])
    expect(await listed(c.asServiceFor(c.bob), { search: tag })).toEqual([theirs.id])
    // The service role acting for no one lists everyone's.
    expect((await listed(c.asService, { search: tag })).sort()).toEqual([mine.id, theirs.id].sort())
  })

  it("refuses bad filters with BAD_REQUEST naming the field", async () => {
    const me = c.asAlice
    const refused = (input: ListInput, field: string) =>
      refusal(me.sessions.list.query(input), { code: "BAD_REQUEST", message: new RegExp(`^${field}: `) })
    await refused({ search: "" }, "search")
    await refused({ search: "   " }, "search")
    await refused({ search: "x".repeat(201) }, "search")
    await refused({ search: 42 as unknown as string }, "search")
    await refused({ createdFrom: "yesterday" }, "createdFrom")
    await refused({ createdFrom: "2026-02-30" }, "createdFrom")
    await refused({ createdTo: "2026-13-01" }, "createdTo")
    await refused({ createdTo: "2026-03-01T24:00:00Z" }, "createdTo")
    await refused({ createdTo: "2026-03-01T10:00:00" }, "createdTo")
    await refused({ createdFrom: "2026-03-02", createdTo: "2026-03-01" }, "createdFrom")
    await refused(
      { createdFrom: "2026-03-01T12:00:00.001Z", createdTo: "2026-03-01T12:00:00.000Z" },
      "createdFrom",
    )

    // At the edges: 200 characters once trimmed, and a one-day range, are fine.
    const padded = ` ${"y".repeat(200)} `
    expect((await me.sessions.list.query({ search: padded })).items).toEqual([])
    expect(await me.sessions.list.query({ createdFrom: "2026-03-01", createdTo: "2026-03-01" })).toEqual({
      items: [],
      nextCursor: null,
    })
  })
})
