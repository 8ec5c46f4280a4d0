import { Database, EventStore } from "@chronicle/store"
import { Context, Effect, Layer, Schema } from "effect"
import { serviceActor } from "./actor.ts"
import { DomainConfig } from "./config.ts"
import { Purge } from "./purge.ts"
import { decoder, Num, Time } from "./row-schema.ts"
import { executeSessionCommand } from "./session/command.ts"

export interface SweepReport {
  /** Sessions expired by this sweep. */
  readonly expired: number
  /** Sessions purged by this sweep (expired longer than the retention policy allows, with their forks). */
  readonly purged: number
  /** Sessions that moved (a new event) between the scan and the expiry, and were left alone. */
  readonly skipped: number
  /** LangGraph checkpoints pruned by this sweep (beyond the last CHRONICLE_GRAPH_KEEP_CHECKPOINTS). */
  readonly checkpointsPruned: number
}

export interface RetentionService {
  /**
   * Expires active sessions with no event for longer than the TTL (0 = never), in batches,
   * by appending SessionExpired. A session that moves concurrently is left alone. Then, when
   * a retention policy is set, purges the sessions expired for longer than it, and, when graph
   * threads keep a number of checkpoints, prunes the older ones.
   */
  readonly sweep: (now?: Date) => Effect.Effect<SweepReport>
}

/** An active session idle since before the cutoff. */
const decodeIdle = decoder(
  "idle session",
  "id",
  Schema.Struct({ id: Schema.String, version: Num, last_activity_at: Time }),
)

/** Retention: the TTL sweep of idle sessions. */
export class Retention extends Context.Service<Retention, RetentionService>()("@chronicle/domain/Retention") {
  static readonly layer = Layer.effect(
    Retention,
    Effect.gen(function* () {
      const db = yield* Database
      const store = yield* EventStore
      const layerConfig = yield* DomainConfig
      const purger = yield* Purge
      const sweep = Effect.fn("Retention.sweep")(
        function* (now: Date = new Date()) {
          const config = yield* DomainConfig
          const purged =
            config.purgeExpiredAfterDays > 0
              ? (yield* purger
                  .purge(
                    serviceActor(),
                    { expiredForDays: config.purgeExpiredAfterDays, now },
                    { reason: `retention: expired for more than ${config.purgeExpiredAfterDays} day(s)` },
                  )
                  .pipe(Effect.orDie)).sessions.length
              : 0
          const checkpointsPruned =
            config.graphKeepCheckpoints > 0
              ? (yield* purger
                  .pruneGraphCheckpoints(serviceActor(), { keep: config.graphKeepCheckpoints })
                  .pipe(Effect.orDie)).checkpoints
              : 0
          if (config.sessionTtlHours <= 0) return { expired: 0, skipped: 0, purged, checkpointsPruned }
          const cutoff = new Date(now.getTime() - config.sessionTtlHours * 3_600_000)
          let expired = 0
          let skipped = 0
          for (;;) {
            const rows = yield* db
              .query(
                `select id::text, version, last_activity_at from chronicle.sessions
                where status = 'active' and last_activity_at < $1::timestamptz
                order by last_activity_at limit 200`,
                [cutoff.toISOString()],
              )
              .pipe(Effect.orDie)
            if (rows.length === 0) break
            for (const row of rows.map(decodeIdle)) {
              const idleSince = new Date(row.last_activity_at).toISOString()
              const outcome = yield* executeSessionCommand(
                serviceActor(),
                row.id,
                () =>
                  Effect.succeed({
                    type: "ExpireSession" as const,
                    idleSince,
                    ttlHours: config.sessionTtlHours,
                  }),
                { expectedVersion: Number(row.version) },
              ).pipe(
                Effect.as("expired" as const),
                // It moved (a new message) or changed status since the scan: not idle after all.
                Effect.catch(() => Effect.succeed("skipped" as const)),
              )
              if (outcome === "expired") expired++
              else skipped++
            }
            if (rows.length < 200 || expired + skipped > 100_000) break
            if (skipped >= rows.length) break
          }
          return { expired, skipped, purged, checkpointsPruned }
        },
        Effect.provideService(Database, db),
        Effect.provideService(EventStore, store),
        Effect.provideService(DomainConfig, layerConfig),
      )
      return Retention.of({ sweep })
    }),
  )
}
