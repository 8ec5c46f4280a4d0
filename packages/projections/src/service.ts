import { Database, EventStore, type Head } from "@chronicle/store"
import { Context, Effect, Layer } from "effect"
import { readModelTables, rebuildReadModels } from "./index.ts"

export interface ProjectionStatus {
  /** The head of the log: the newest cursor every reader can see. */
  readonly head: Head
  /** How the read models are kept: inline, in the append's transaction, so never behind. */
  readonly mode: "inline"
  readonly lag: 0
  readonly tables: ReadonlyArray<{ readonly name: string; readonly rows: number }>
}

export interface RebuildReport {
  readonly events: number
  readonly milliseconds: number
  readonly eventsPerSecond: number
}

export interface ProjectionsService {
  readonly status: () => Effect.Effect<ProjectionStatus>
  /**
   * Empties the read models and projects the whole log again in one transaction. Readers
   * keep seeing the old rows until it commits; appends wait for it.
   */
  readonly rebuild: () => Effect.Effect<RebuildReport>
}

/** The built-in read models: their state, and rebuilding them from the log. */
export class Projections extends Context.Service<Projections, ProjectionsService>()(
  "@chronicle/projections/Projections",
) {
  static readonly layer = Layer.effect(
    Projections,
    Effect.gen(function* () {
      const db = yield* Database
      const store = yield* EventStore
      const status = Effect.fn("Projections.status")(function* () {
        const head = yield* store.head()
        const [row] = yield* db
          .query<{ counts: Record<string, number> }>(
            `select jsonb_build_object(${readModelTables
              .map((t) => `'${t}', (select count(*) from chronicle.${t})`)
              .join(", ")}) as counts`,
          )
          .pipe(Effect.orDie)
        return {
          head,
          mode: "inline" as const,
          lag: 0 as const,
          tables: readModelTables.map((name) => ({ name, rows: Number(row?.counts[name] ?? 0) })),
        }
      })
      const rebuild = Effect.fn("Projections.rebuild")(function* () {
        const started = performance.now()
        const events = yield* rebuildReadModels().pipe(Effect.provideService(Database, db), Effect.orDie)
        const milliseconds = Math.round(performance.now() - started)
        return {
          events,
          milliseconds,
          eventsPerSecond: milliseconds === 0 ? events : Math.round((events * 1000) / milliseconds),
        }
      })
      return Projections.of({ status, rebuild })
    }),
  )
}
