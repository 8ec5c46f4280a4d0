import { randomBytes, randomUUID } from "node:crypto"
import { Database, EventStore, migrate } from "@chronicle/store"
import { createPostgresDatabase } from "@chronicle/store/testing"
import { Effect, Layer, ManagedRuntime } from "effect"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Projections } from "../src/index.ts"
import { appendEffect, env, ev, sessionStream } from "./support.ts"

// Supabase provides auth.uid() from the request's JWT; this is the minimal shim the policies
// need on plain Postgres: the `sub` claim PostgREST puts in request.jwt.claim.sub.
const AUTH_SHIM = `
  create schema auth;
  create function auth.uid() returns uuid language sql stable as
    $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;`

describe.runIf(env.postgresUrl !== null)(
  "row-level security for direct readers (Postgres with an auth shim)",
  () => {
    const role = `chronicle_rls_${randomBytes(4).toString("hex")}`
    let created: Awaited<ReturnType<typeof createPostgresDatabase>>
    let sql: postgres.Sql
    const alice = randomUUID()
    const bob = randomUUID()
    const aliceSession = randomUUID()
    const bobSession = randomUUID()

    beforeAll(async () => {
      created = await createPostgresDatabase(env.postgresUrl!)
      sql = postgres(created.url, { max: 1, onnotice: () => {} })
      await sql.unsafe(AUTH_SHIM)
      const runtime = ManagedRuntime.make(
        EventStore.layer().pipe(
          Layer.provideMerge(Database.layerPostgres({ url: created.url, max: 2 }).pipe(Layer.orDie)),
        ),
      )
      await runtime.runPromise(
        Effect.gen(function* () {
          yield* migrate().pipe(Effect.orDie)
          yield* appendEffect(
            sessionStream(aliceSession),
            [ev.started(aliceSession, alice), ev.message(1, "alice's")],
            {
              ownerId: alice,
            },
          )
          yield* appendEffect(
            sessionStream(bobSession),
            [ev.started(bobSession, bob), ev.message(1, "bob's")],
            {
              ownerId: bob,
            },
          )
        }),
      )
      await runtime.dispose()
      // A reader like Supabase's `authenticated` role: may select, is subject to the policies.
      await sql.unsafe(`create role ${role} nologin`)
      await sql.unsafe(`grant usage on schema chronicle, auth to ${role}`)
      await sql.unsafe(`grant select on all tables in schema chronicle to ${role}`)
      await sql.unsafe(`grant execute on function auth.uid() to ${role}`)
    })

    afterAll(async () => {
      await sql?.end({ timeout: 1 })
      await created?.drop()
      const admin = postgres(env.postgresUrl!, { max: 1, onnotice: () => {} })
      await admin.unsafe(`drop role if exists ${role}`)
      await admin.end({ timeout: 1 })
    })

    /** Runs `query` as the reader role with `sub` as the JWT's subject. */
    const asUser = (sub: string | null, query: string) =>
      sql.begin(async (tx) => {
        await tx.unsafe(`set local role ${role}`)
        await tx.unsafe("select set_config('request.jwt.claim.sub', $1, true)", [sub ?? ""])
        return tx.unsafe(query)
      })

    it("lets each user read only their own sessions, messages, events and analytics", async () => {
      const sessions = await asUser(alice, "select id::text from chronicle.sessions")
      expect(sessions.map((r) => r.id)).toEqual([aliceSession])
      const messages = await asUser(alice, "select content from chronicle.messages")
      expect(messages.map((r) => r.content)).toEqual(["alice's"])
      const events = await asUser(bob, "select stream_id from chronicle.events")
      expect(new Set(events.map((r) => r.stream_id))).toEqual(new Set([sessionStream(bobSession)]))
      const summary = await asUser(alice, "select session_id::text from chronicle.session_summary")
      expect(summary.map((r) => r.session_id)).toEqual([aliceSession])
      const users = await asUser(bob, "select owner_id::text from chronicle.user_analytics")
      expect(users.map((r) => r.owner_id)).toEqual([bob])
    })

    it("shows an anonymous reader nothing, and refuses writes", async () => {
      expect(await asUser(null, "select * from chronicle.sessions")).toHaveLength(0)
      expect(await asUser(null, "select * from chronicle.events")).toHaveLength(0)
      await expect(asUser(alice, `delete from chronicle.messages`)).rejects.toThrow(/permission denied/)
    })

    it("leaves the service (the tables' owner) unrestricted", async () => {
      const all = await sql.unsafe("select count(*)::int as n from chronicle.sessions")
      expect(all[0]!.n).toBe(2)
    })

    it("keeps every policy and grant through a rebuild of every projection, and each reader their rows", async () => {
      const policies = () =>
        sql.unsafe(`select tablename, policyname, permissive, roles::text, cmd, qual, with_check
                      from pg_policies where schemaname = 'chronicle' order by tablename, policyname`)
      const grants = () =>
        sql.unsafe(`select c.relname, coalesce(c.relacl::text, '') as acl, c.relrowsecurity
                      from pg_class c where c.relnamespace = 'chronicle'::regnamespace and c.relkind in ('r', 'v')
                     order by c.relname`)
      const before = { policies: await policies(), grants: await grants() }
      expect(before.policies.length).toBeGreaterThan(25)
      const runtime = ManagedRuntime.make(
        Projections.layer.pipe(
          Layer.provideMerge(EventStore.layer()),
          Layer.provideMerge(Database.layerPostgres({ url: created.url, max: 4 }).pipe(Layer.orDie)),
        ),
      )
      const label = `rls_${randomBytes(3).toString("hex")}`
      try {
        const run = await runtime.runPromise(
          Effect.flatMap(Projections, (p) => Effect.flatMap(p.startRebuild(), (r) => p.execute(r.id))),
        )
        expect(run.state).toBe("completed")
        // A snapshot's tables are the service's: no grant to a direct reader.
        const snapshot = await runtime.runPromise(
          Effect.flatMap(Projections, (p) =>
            Effect.flatMap(p.startSnapshot({ label, asOf: { timestamp: new Date().toISOString() } }), (r) =>
              p.execute(r.id),
            ),
          ),
        )
        expect(snapshot.state).toBe("completed")
        await expect(asUser(alice, `select * from analytics_asof_${label}.messages`)).rejects.toThrow(
          /permission denied/,
        )
        await runtime.runPromise(Effect.flatMap(Projections, (p) => p.dropSnapshot(label)))
      } finally {
        await runtime.dispose()
      }
      // The tables are new (the swap moved copies in), and everything on them is as before.
      expect({ policies: await policies(), grants: await grants() }).toEqual(before)
      const messages = await asUser(alice, "select content from chronicle.messages")
      expect(messages.map((r) => r.content)).toEqual(["alice's"])
      const sessions = await asUser(bob, "select id::text from chronicle.sessions")
      expect(sessions.map((r) => r.id)).toEqual([bobSession])
    })
  },
)
