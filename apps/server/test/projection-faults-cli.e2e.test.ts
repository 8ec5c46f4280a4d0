/**
 * `chronicle rebuild` and `chronicle status` when a rebuild cannot go through: the command
 * ends with the run's error, and status says which projection is failing, why, and when the
 * next attempt is, while its last good tables keep serving.
 */
import { randomUUID } from "node:crypto"
import { Database } from "@chronicle/store"
import { createPostgresDatabase } from "@chronicle/store/testing"
import type {} from "@chronicle/store/vitest-global-setup"
import { Effect } from "effect"
import { afterAll, describe, expect, inject, it } from "vitest"
import { cli, withDatabase } from "./cli-support.ts"

const env = { postgresUrl: inject("postgresUrl") }

describe.runIf(env.postgresUrl !== null)("the chronicle CLI when a rebuild fails, on Postgres", () => {
  const drops: Array<() => Promise<void>> = []
  afterAll(async () => {
    for (const drop of drops) await drop()
  })

  it("reports the run's error, and status shows the failing projection, why, and its next attempt", async () => {
    const db = await createPostgresDatabase(env.postgresUrl!)
    drops.push(db.drop)
    expect((await cli(["migrate"], db.url)).code).toBe(0)
    const session = randomUUID()
    const owner = randomUUID()
    await withDatabase(
      db.url,
      Effect.flatMap(Database, (d) =>
        Effect.all([
          d.query(
            `select chronicle.append_events($1, 'session', -2, jsonb_build_array(jsonb_build_object(
               'event_id', gen_random_uuid(), 'type', 'SessionStarted',
               'data', jsonb_build_object('sessionId', $2::text, 'ownerId', $3::text, 'title', 'kept',
                                          'metadata', '{}'::jsonb, 'externalKey', null))), $3::uuid)`,
            [`session-${session}`, session, owner],
          ),
          d.query("create materialized view chronicle.titles as select id, title from chronicle.sessions"),
          d.query(`select chronicle.register_projection('sessions', 2, 'inline', 'chronicle.project_session',
                     (select tables from chronicle.projections where name = 'sessions'), array['session'])`),
        ]),
      ),
    )
    const rebuilt = await cli(["rebuild", "sessions"], db.url)
    expect(rebuilt.code).toBe(1)
    expect(rebuilt.stderr).toMatch(
      /ended failed: materialized view chronicle\.titles reads chronicle\.sessions/,
    )

    const status = await cli(["status"], db.url)
    expect(status.code).toBe(0)
    expect(status.stdout).toMatch(
      /^sessions +inline +v2 \(built v1\) +failed +[\d,]+ +0 \(inline\) +rebuild to v2 failed \(run [0-9a-f-]{36}\): materialized view chronicle\.titles reads chronicle\.sessions.* \(next attempt \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\)$/m,
    )
    // Its last good tables keep serving, and nothing of the failed build is left.
    const left = await withDatabase(
      db.url,
      Effect.flatMap(Database, (d) =>
        d.query<{ title: string; schemas: number }>(
          `select (select title from chronicle.sessions where id = $1) as title,
                  (select count(*)::int from pg_namespace where nspname like 'chronicle\\_build\\_%') as schemas`,
          [session],
        ),
      ),
    )
    expect(left).toEqual([{ title: "kept", schemas: 0 }])
  })
})
