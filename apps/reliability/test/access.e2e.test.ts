/**
 * The ownership matrix where apps/server/test/ownership.e2e.test.ts stops: the raw log
 * (readStream, readAll, subscriptions), as-of reads, export, fork and rollback, for user A,
 * user B, the service role, no token, an expired token, a token signed with the wrong key,
 * and an unsigned `alg: none` token.
 */
import { randomUUID } from "node:crypto"
import type { ChronicleClient } from "@chronicle/client"
import {
  type Callers,
  callers,
  clientFor,
  startTestServer,
  type TestServer,
  testDatabases,
} from "@chronicle/server/testing"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { report, sleep } from "./support.ts"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

/** A's claims, unsigned: `alg: none` with an empty signature. */
const unsignedToken = (sub: string, issuer: string) =>
  `${b64url({ alg: "none", typ: "JWT" })}.${b64url({
    sub,
    role: "authenticated",
    aud: "authenticated",
    iss: issuer,
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 3600,
  })}.`

const SECRET = `alice-secret-${randomUUID()}`

/** What one subscription delivered within a short window, or how it was refused. */
const subscribeBriefly = (client: ChronicleClient, input: { sessionId?: string }) =>
  new Promise<{ events: Array<string>; error?: { code?: string; httpStatus?: number } }>((resolve) => {
    const events: Array<string> = []
    const subscription = client.events.subscribe.subscribe(input, {
      onData: (event) => events.push(JSON.stringify(event.data)),
      onError: (error) => {
        subscription.unsubscribe()
        resolve({ events, error: (error as { data?: { code?: string; httpStatus?: number } }).data ?? {} })
      },
    })
    void sleep(800).then(() => {
      subscription.unsubscribe()
      resolve({ events })
    })
  })

describe.each(testDatabases(env))(
  "access to the log, as-of reads, export, fork and rollback, on $name",
  (database) => {
    let t: TestServer
    let c: Callers
    let unsigned: ChronicleClient
    let sessionId: string
    let checkpointId: string
    const tally = { calls: 0, allowed: 0, refused: 0 }

    beforeAll(async () => {
      t = await startTestServer(database)
      c = await callers(t)
      unsigned = clientFor(t.server.url, unsignedToken(c.alice, t.authority.issuer))
      const session = await c.asAlice.sessions.create.mutate({ title: SECRET })
      sessionId = session.id
      await c.asAlice.messages.append.mutate({ sessionId, role: "user", content: SECRET })
      checkpointId = (await c.asAlice.checkpoints.create.mutate({ sessionId })).id
      await c.asAlice.messages.append.mutate({ sessionId, role: "assistant", content: "later" })
    })
    afterAll(async () => {
      report(`access (${database.name})`, tally)
      await t?.close()
    })

    const calls: ReadonlyArray<[string, (x: ChronicleClient) => Promise<unknown>]> = [
      ["events.readStream", (x) => x.events.readStream.query({ streamId: `session-${sessionId}` })],
      [
        "sessions.get asOf checkpoint",
        (x) => x.sessions.get.query({ id: sessionId, asOf: { checkpointId } }),
      ],
      ["sessions.get asOf version", (x) => x.sessions.get.query({ id: sessionId, asOf: { version: 2 } })],
      ["messages.list asOf", (x) => x.messages.list.query({ sessionId, asOf: { checkpointId } })],
      ["files.listAttached asOf", (x) => x.files.listAttached.query({ sessionId, asOf: { version: 2 } })],
      ["sessions.export", (x) => x.sessions.export.query({ id: sessionId })],
      ["sessions.timeline", (x) => x.sessions.timeline.query({ id: sessionId })],
      ["sessions.fork", (x) => x.sessions.fork.mutate({ id: sessionId, checkpointId })],
      ["sessions.rollback", (x) => x.sessions.rollback.mutate({ id: sessionId, checkpointId })],
    ]

    it("refuses every caller without valid credentials, an unsigned `alg: none` token included", async () => {
      const strangers: ReadonlyArray<[string, ChronicleClient]> = [
        ["no token", c.anonymous],
        ["expired", c.expired],
        ["wrong key", c.wrongSecret],
        ["forged ES256", c.forged],
        ["alg none", unsigned],
      ]
      for (const [who, client] of strangers) {
        for (const [name, call] of calls) {
          tally.calls++
          const error = await call(client).then(
            () => undefined,
            (e: { data?: { code?: string; httpStatus?: number }; message: string }) => e,
          )
          expect(error?.data, `${who}: ${name}`).toMatchObject({ code: "UNAUTHORIZED", httpStatus: 401 })
          expect(error?.message).not.toContain(SECRET)
          tally.refused++
        }
        for (const input of [{}, { sessionId }]) {
          tally.calls++
          const result = await subscribeBriefly(client, input)
          expect(result.events, `${who}: subscribe`).toEqual([])
          expect(result.error, `${who}: subscribe`).toMatchObject({ code: "UNAUTHORIZED" })
          tally.refused++
        }
        tally.calls++
        const all = await client.events.readAll.query().then(
          () => undefined,
          (e: { data?: { code?: string } }) => e.data,
        )
        expect(all, `${who}: readAll`).toMatchObject({ code: "UNAUTHORIZED" })
        tally.refused++
      }
      // Raw, too: the header as sent, with no client in between.
      const raw = await fetch(
        `${t.server.url}/trpc/sessions.get?input=${encodeURIComponent(JSON.stringify({ id: sessionId }))}`,
        {
          headers: { authorization: `Bearer ${unsignedToken(c.alice, t.authority.issuer)}` },
        },
      )
      expect(raw.status).toBe(401)
      expect(await raw.text()).not.toContain(SECRET)
    })

    it("shows B none of A's log, as-of state or exports, and lets B fork or roll back nothing", async () => {
      const before = await c.asService.sessions.get.query({ id: sessionId })
      for (const [name, call] of calls) {
        tally.calls++
        const error = await call(c.asBob).then(
          () => undefined,
          (e: { data?: { code?: string }; message: string }) => e,
        )
        expect(error?.data, `B: ${name}`).toMatchObject({ code: "NOT_FOUND" })
        expect(error?.message).not.toContain(SECRET)
        tally.refused++
      }
      expect(await c.asService.sessions.get.query({ id: sessionId })).toEqual(before)
      expect(await c.asService.sessions.list.query({ parentId: sessionId })).toMatchObject({ items: [] })

      // B's view of the whole log and its live tail holds none of A's events.
      tally.calls += 3
      const page = await c.asBob.events.readAll.query({ limit: 500 })
      expect(JSON.stringify(page)).not.toContain(SECRET)
      expect(page.items.filter((e) => e.streamId === `session-${sessionId}`)).toEqual([])
      const tail = await subscribeBriefly(c.asBob, {})
      expect(tail.events.join("")).not.toContain(SECRET)
      const own = await subscribeBriefly(c.asBob, { sessionId })
      expect(own.events).toEqual([])
      tally.allowed += 3
    })

    it("gives A and the service role the log, as-of reads, export, fork and rollback of A's session", async () => {
      for (const [who, client] of [
        ["A", c.asAlice],
        ["service", c.asService],
      ] as const) {
        for (const [name, call] of calls) {
          tally.calls++
          await expect(call(client), `${who}: ${name}`).resolves.toBeDefined()
          tally.allowed++
        }
        tally.calls++
        const tail = await subscribeBriefly(client, { sessionId })
        expect(tail.error).toBeUndefined()
        expect(tail.events.join("")).toContain(SECRET)
        tally.allowed++
      }
      const asOf = await c.asAlice.messages.list.query({ sessionId, asOf: { checkpointId } })
      expect(asOf.items.map((m) => m.content)).toEqual([SECRET])
    })
  },
)
