/**
 * Shared by the engine tests: a harness holding a varied log and a few sessions, a projection
 * engine with its own worker id over a harness's database, and the oracles its results are
 * compared with (a stop-the-world fold of the whole log, and the `activity` projection's rows
 * computed straight from the log).
 */
import { randomUUID } from "node:crypto"
import { Database, EventStore } from "@chronicle/store"
import type { TestDatabase } from "@chronicle/store/testing"
import { Effect, Layer, ManagedRuntime } from "effect"
import { dumpReadModels, Projections, type ProjectionsService } from "../src/index.ts"
import { ev, type Harness, harnessFor, sessionStream } from "./support.ts"
import { fillLog } from "./workload.ts"

/** Starts `count` sessions with one message each (owned by `ownerId`, or each by a new user); their ids. */
export const startSessions = async (h: Harness, count: number, ownerId?: string) => {
  const sessions: Array<string> = []
  for (let i = 0; i < count; i++) {
    const id = randomUUID()
    await h.append(sessionStream(id), [ev.started(id, ownerId ?? randomUUID()), ev.message(1, "first")])
    sessions.push(id)
  }
  return sessions
}

/**
 * A harness for the enclosing `describe` block (see `harnessFor`) whose log holds every kind of
 * stream and content (`fillLog`), with `count` sessions started on top: their ids are in
 * `sessions` once the tests run.
 */
export const engineHarnessFor = (database: TestDatabase, count: number) => {
  const sessions: Array<string> = []
  const h = harnessFor(database, {}, async (made) => {
    await fillLog(made)
    sessions.push(...(await startSessions(made, count)))
  })
  return { h, sessions }
}

/** Reads every 25 ms until `done` holds of what it read; fails, naming `what`, after `tries` reads. */
export const waitFor = async <A>(
  read: () => Promise<A>,
  done: (a: A) => boolean,
  what: string,
  tries = 2_000,
): Promise<A> => {
  for (let i = 0; i < tries; i++) {
    const value = await read()
    if (done(value)) return value
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** A projection engine of its own (its own worker id) over the harness's database. */
export const engineOf = async (h: Harness) => {
  const [db, store] = await h.run(Effect.all([Database, EventStore]))
  const runtime = ManagedRuntime.make(
    Projections.layer.pipe(
      Layer.provide(Layer.mergeAll(Layer.succeed(Database, db), Layer.succeed(EventStore, store))),
    ),
  )
  const run = <A, E>(f: (p: ProjectionsService) => Effect.Effect<A, E>) =>
    runtime.runPromise(Effect.flatMap(Projections, f))
  /** The typed error an operation fails with (a success fails the test). */
  const refusal = <A, E>(f: (p: ProjectionsService) => Effect.Effect<A, E>) => run((p) => Effect.flip(f(p)))
  return { runtime, run, refusal, dispose: () => runtime.dispose() }
}

/**
 * The built-in read models as a from-scratch fold of the whole log makes them: rebuilt in a
 * transaction that is then rolled back, so the live tables stay as they are.
 */
export const scratchFold = (h: Harness) =>
  h.run(
    Effect.gen(function* () {
      const db = yield* Database
      let dump: Effect.Success<ReturnType<typeof dumpReadModels>> | undefined
      yield* db
        .transaction(
          Effect.gen(function* () {
            yield* db.query("select chronicle.rebuild_read_models()")
            dump = yield* dumpReadModels()
            return yield* Effect.fail("roll back" as const)
          }),
        )
        .pipe(Effect.ignore)
      return dump!
    }),
  )

/** What the async `activity` projection must hold, computed straight from the log. */
export const activityFromLog = (h: Harness) =>
  h.query<Record<string, unknown>>(
    `with owners as (
       select stream_id, (data ->> 'ownerId')::uuid as owner_id
         from chronicle.events
        where stream_version = 1 and type in ('SessionStarted', 'SessionForked', 'JobCreated'))
     select o.owner_id::text, to_char((e.recorded_at at time zone 'UTC')::date, 'YYYY-MM-DD') as day,
            (count(*) filter (where e.type in ('SessionStarted', 'SessionForked')))::int as sessions_started,
            (count(*) filter (where e.type = 'MessageAppended'))::int as messages,
            (count(*) filter (where e.type = 'RevisionAdded'))::int as revisions,
            (count(*) filter (where e.type = 'DraftRecorded'))::int as drafts,
            (count(*) filter (where e.type = 'DraftRecorded' and (e.data ->> 'valid')::boolean))::int as valid_drafts,
            (count(*) filter (where e.type = 'ToolRunRecorded'))::int as tool_runs,
            (count(*) filter (where e.type = 'JobCreated'))::int as jobs_created,
            (count(*) filter (where e.type = 'JobCompleted'))::int as jobs_completed,
            (count(*) filter (where e.type = 'JobFailed'))::int as jobs_failed
       from chronicle.events e join owners o using (stream_id)
      where e.type in ('SessionStarted', 'SessionForked', 'MessageAppended', 'RevisionAdded', 'DraftRecorded',
                       'ToolRunRecorded', 'JobCreated', 'JobCompleted', 'JobFailed')
      group by 1, 2 order by 1, 2`,
  )
/** The query that reads the `activity` projection's rows in `schema`, as `activityFromLog` computes them. */
export const activityRows = (schema: string) =>
  `select owner_id::text, to_char(day, 'YYYY-MM-DD') as day, sessions_started, messages, revisions, drafts,
          valid_drafts, tool_runs, jobs_created, jobs_completed, jobs_failed
     from "${schema}".activity_daily order by 1, 2`
export const activityTable = (h: Harness, schema = "chronicle") =>
  h.query<Record<string, unknown>>(activityRows(schema))

/**
 * Appends a message and a draft at a time to `sessions`, round robin, until stopped; `stop()`
 * resolves to how many events it appended. Message numbers start at `firstSeq`.
 */
export const writer = (h: Harness, sessions: ReadonlyArray<string>, firstSeq: number) => {
  let stop = false
  let appended = 0
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      const id = sessions[i % sessions.length]!
      await h.append(sessionStream(id), [
        ev.message(firstSeq + i, `live ${i}`),
        ev.draft({ valid: i % 3 === 0 }),
      ])
      appended += 2
    }
    return appended
  })()
  return {
    stop: () => {
      stop = true
      return done
    },
  }
}
