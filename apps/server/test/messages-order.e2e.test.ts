/**
 * `messages.list({ order: "desc" })` over HTTP on both databases: newest first, paged backwards
 * with its own cursors, over the same effective history as the default oldest-first order
 * (rollbacks, forks, `asOf`), and never continued by a cursor of the other order.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient, RouterOutputs } from "@chronicle/client"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { allPages, clientFor, refusal, startTestServer, type TestServer, testDatabases } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

type Message = RouterOutputs["messages"]["list"]["items"][number]
type AsOf = { version: number } | { checkpointId: string }

const cursorOf = (key: unknown) => Buffer.from(JSON.stringify(key)).toString("base64url")

describe.each(testDatabases(env))("messages.list in both orders, on $name", (database) => {
  let t: TestServer
  let me: ChronicleClient

  beforeAll(async () => {
    t = await startTestServer(database)
    me = clientFor(t.server.url, await t.authority.hs256Token({ sub: randomUUID() }))
  })
  afterAll(() => t?.close())

  /** Every page of a listing in one order, checking each page's size and the last cursor. */
  const listing = async (
    sessionId: string,
    order: "asc" | "desc" | undefined,
    limit: number,
    asOf?: AsOf,
  ): Promise<{ items: Array<Message>; pages: number }> => {
    const pages = await allPages((cursor) =>
      me.messages.list.query({
        sessionId,
        limit,
        ...(order === undefined ? {} : { order }),
        ...(asOf === undefined ? {} : { asOf }),
        ...(cursor === undefined ? {} : { cursor }),
      }),
    )
    return pages
  }

  /** Both orders, paged at `limit`: desc must be asc reversed, with no id twice. */
  const expectBothOrders = async (sessionId: string, limit: number, asOf?: AsOf) => {
    const asc = await listing(sessionId, "asc", limit, asOf)
    const desc = await listing(sessionId, "desc", limit, asOf)
    expect(desc.items.map((m) => m.id)).toEqual(asc.items.map((m) => m.id).reverse())
    expect(desc.items).toEqual([...asc.items].reverse())
    expect(new Set(desc.items.map((m) => m.id)).size).toBe(desc.items.length)
    // A full last page hands out no cursor to an empty one.
    expect(desc.pages).toBe(Math.max(1, Math.ceil(desc.items.length / limit)))
    expect(asc.pages).toBe(desc.pages)
    return asc.items
  }

  const contents = (items: ReadonlyArray<Message>) => items.map((m) => m.content)
  const say = (sessionId: string, ...texts: Array<string>) =>
    me.messages.appendMany.mutate({
      sessionId,
      messages: texts.map((content) => ({ role: "user" as const, content })),
    })

  it("pages newest first to the end: asc reversed, no duplicate, no gap, at limits 1, 2, 7 and 500", async () => {
    const s = await me.sessions.create.mutate({})
    const texts = Array.from({ length: 503 }, (_, i) => `m${i + 1}`)
    await say(s.id, ...texts.slice(0, 500))
    await say(s.id, ...texts.slice(500))

    const first = await me.messages.list.query({ sessionId: s.id, order: "desc", limit: 3 })
    expect(first.items.map((m) => [m.seq, m.content])).toEqual([
      [503, "m503"],
      [502, "m502"],
      [501, "m501"],
    ])
    // The default order is still oldest first.
    expect(contents((await me.messages.list.query({ sessionId: s.id, limit: 2 })).items)).toEqual([
      "m1",
      "m2",
    ])

    for (const limit of [7, 500]) {
      const items = await expectBothOrders(s.id, limit)
      expect(contents(items), `limit ${limit}`).toEqual(texts)
    }
    const undeclared = await listing(s.id, undefined, 500)
    expect(contents(undeclared.items)).toEqual(texts)

    // The smallest pages on a shorter conversation (one request per message).
    const short = await me.sessions.create.mutate({})
    await say(short.id, ...texts.slice(0, 25))
    for (const limit of [1, 2, 7]) {
      const items = await expectBothOrders(short.id, limit)
      expect(contents(items), `limit ${limit}`).toEqual(texts.slice(0, 25))
    }
  })

  it("lists the effective history newest first after rollbacks, in a fork, and as of a version or checkpoint", async () => {
    const s = await me.sessions.create.mutate({}) // v1
    await say(s.id, "a1", "a2", "a3") // v2–v4
    const checkpoint = await me.checkpoints.create.mutate({ sessionId: s.id }) // v5 (version 4)
    await say(s.id, "b1", "b2") // v6–v7
    await me.sessions.rollback.mutate({ id: s.id, toVersion: 3 }) // v8: a3, b1, b2 reverted
    await say(s.id, "c1", "c2", "c3") // v9–v11
    await me.sessions.rollback.mutate({ id: s.id, toVersion: 7 }) // v12: back onto the abandoned branch
    await say(s.id, "d1") // v13

    const now = ["a1", "a2", "a3", "b1", "b2", "d1"]
    for (const limit of [1, 2, 7]) expect(contents(await expectBothOrders(s.id, limit))).toEqual(now)
    const desc = await listing(s.id, "desc", 4)
    expect(contents(desc.items)).toEqual([...now].reverse())

    // As of a version or a checkpoint: exactly what asc lists then, reversed.
    const asOfs: ReadonlyArray<[AsOf, Array<string>]> = [
      [{ version: 4 }, ["a1", "a2", "a3"]],
      [{ checkpointId: checkpoint.id }, ["a1", "a2", "a3"]],
      [{ version: 7 }, ["a1", "a2", "a3", "b1", "b2"]],
      [{ version: 10 }, ["a1", "a2", "c1", "c2"]],
      [{ version: 11 }, ["a1", "a2", "c1", "c2", "c3"]],
      [{ version: 12 }, ["a1", "a2", "a3", "b1", "b2"]],
    ]
    for (const [asOf, expected] of asOfs) {
      for (const limit of [1, 2, 500]) {
        expect(contents(await expectBothOrders(s.id, limit, asOf)), JSON.stringify(asOf)).toEqual(expected)
      }
    }

    // A fork lists what it inherited, then its own, newest first.
    const fork = await me.sessions.fork.mutate({ id: s.id, atVersion: 10 })
    await say(fork.id, "e1", "e2")
    const forked = ["a1", "a2", "c1", "c2", "e1", "e2"]
    for (const limit of [1, 2, 7]) expect(contents(await expectBothOrders(fork.id, limit))).toEqual(forked)
    expect(contents(await expectBothOrders(fork.id, 1, { version: 1 }))).toEqual(["a1", "a2", "c1", "c2"])
    await me.sessions.rollback.mutate({ id: fork.id, toVersion: 2 }) // e2 reverted
    expect(contents((await listing(fork.id, "desc", 2)).items)).toEqual(["e1", "c2", "c1", "a2", "a1"])
  })

  it("refuses a cursor of the other order with BAD_REQUEST naming the cursor, and an unknown order", async () => {
    const s = await me.sessions.create.mutate({})
    await say(s.id, "one", "two", "three")
    const asc = await me.messages.list.query({ sessionId: s.id, limit: 1 })
    const desc = await me.messages.list.query({ sessionId: s.id, order: "desc", limit: 1 })
    expect(asc.nextCursor).toEqual(expect.any(String))
    expect(desc.nextCursor).toEqual(expect.any(String))

    const ascCursorInDesc = await refusal(
      me.messages.list.query({ sessionId: s.id, order: "desc", cursor: asc.nextCursor! }),
      {
        code: "BAD_REQUEST",
        tag: "InvalidCommand",
        message: 'cursor: was handed out by a listing in asc order; continue it with order "asc"',
      },
    )
    expect(ascCursorInDesc.data?.fields).toMatchObject({ path: "cursor" })
    for (const order of ["asc", undefined] as const) {
      await refusal(
        me.messages.list.query({
          sessionId: s.id,
          cursor: desc.nextCursor!,
          ...(order === undefined ? {} : { order }),
        }),
        {
          code: "BAD_REQUEST",
          tag: "InvalidCommand",
          message: 'cursor: was handed out by a listing in desc order; continue it with order "desc"',
        },
      )
    }
    // Lists that take no order have handed out no newest-first cursor.
    await refusal(me.revisions.list.query({ sessionId: s.id, cursor: desc.nextCursor! }), {
      code: "BAD_REQUEST",
      message: "cursor: is not a cursor this list handed out",
    })
    // A tampered newest-first cursor is no cursor at all.
    for (const cursor of [cursorOf(["desc"]), cursorOf(["desc", -1]), cursorOf(["desc", 1, 2])]) {
      await refusal(me.messages.list.query({ sessionId: s.id, order: "desc", cursor }), {
        code: "BAD_REQUEST",
        message: "cursor: is not a cursor this list handed out",
      })
    }
    await refusal(me.messages.list.query({ sessionId: s.id, order: "newest" as "desc" }), {
      code: "BAD_REQUEST",
      tag: "InvalidInput",
      message: /^order: /,
    })
    // Each cursor continues its own listing.
    expect(
      contents((await me.messages.list.query({ sessionId: s.id, cursor: asc.nextCursor! })).items),
    ).toEqual(["two", "three"])
    expect(
      contents(
        (await me.messages.list.query({ sessionId: s.id, order: "desc", cursor: desc.nextCursor! })).items,
      ),
    ).toEqual(["two", "one"])
  })

  it("lists newest first exactly asc reversed, for any sequence of appends and rollbacks (property)", async () => {
    type Op =
      | { readonly op: "append"; readonly n: number }
      | { readonly op: "rollback"; readonly back: number }
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({ op: fc.constant("append" as const), n: fc.integer({ min: 1, max: 4 }) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ op: fc.constant("rollback" as const), back: fc.nat({ max: 1_000 }) }),
      },
    )
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 5 }),
        fc.nat({ max: 1_000 }),
        async (ops, limit, asOfPick) => {
          const s = await me.sessions.create.mutate({})
          let version = 1
          let written = 0
          for (const op of ops) {
            if (op.op === "append") {
              const texts = Array.from({ length: op.n }, () => `m${++written}`)
              const { items } = await say(s.id, ...texts)
              version = items.at(-1)!.version
            } else if (version > 1) {
              const rolled = await me.sessions.rollback.mutate({
                id: s.id,
                toVersion: 1 + (op.back % (version - 1)),
              })
              version = rolled.version
            }
          }
          const current = await expectBothOrders(s.id, limit)
          expect(current).toHaveLength((await me.sessions.get.query({ id: s.id })).counts.messages)
          const asOf = { version: 1 + (asOfPick % version) }
          const then = await expectBothOrders(s.id, limit, asOf)
          expect(then).toHaveLength((await me.sessions.get.query({ id: s.id, asOf })).counts.messages)
        },
      ),
      { numRuns: 15 },
    )
  })
})
