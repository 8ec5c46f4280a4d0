import { InvalidCommand, MessageRole, type NotFound, SessionStatus } from "@chronicle/events"
import { Database, isUuid } from "@chronicle/store"
import { Context, Effect, Layer, Schema } from "effect"
import { type Actor, listScope } from "./actor.ts"
import { cursorTime, decodePageCursor, type PageRequest, pageLimit, toPage } from "./paging.ts"
import {
  decoder,
  Num,
  num,
  numOrNull,
  OptionalNum,
  OptionalTime,
  pageKey,
  type Row,
  Text,
  Time,
} from "./row-schema.ts"
import { iso, isoOrNull, type Page } from "./rows.ts"
import { loadSession } from "./session/load.ts"

export interface SessionSummary {
  readonly sessionId: string
  readonly ownerId: string
  readonly title: string | null
  readonly status: string
  readonly parentId: string | null
  readonly counts: {
    readonly messages: number
    readonly revisions: number
    readonly drafts: number
    readonly holes: number
    readonly files: number
    readonly toolRuns: number
    readonly jobs: number
  }
  readonly validDrafts: number
  readonly invalidDrafts: number
  readonly draftSuccessRate: number | null
  readonly avgHoleConfidence: number | null
  readonly createdAt: string
  readonly lastActivityAt: string
  readonly activeSeconds: number
  /** The newest effective message, its content cut to 200 characters. */
  readonly lastMessage: { readonly role: string; readonly preview: string; readonly at: string } | null
}

export interface UserAnalytics {
  readonly ownerId: string
  readonly sessions: number
  readonly activeSessions: number
  readonly archivedSessions: number
  readonly messages: number
  readonly revisions: number
  readonly drafts: number
  readonly holes: number
  readonly toolRuns: number
  readonly jobs: number
  readonly completedJobs: number
  readonly failedJobs: number
  readonly lastActivityAt: string | null
  readonly validDrafts: number
  /** Valid drafts / drafts over effective drafts; null without drafts. */
  readonly draftValidityRate: number | null
  readonly jobsByState: {
    readonly queued: number
    readonly running: number
    readonly paused: number
    readonly completed: number
    readonly failed: number
    readonly cancelled: number
  }
}

export interface ActivityItem {
  readonly sessionId: string | null
  readonly kind: "message" | "revision" | "draft" | "tool_run" | "job"
  readonly entityId: string
  readonly summary: string
  readonly at: string
}

export interface DraftValidationStats {
  readonly language: string
  readonly drafts: number
  readonly validDrafts: number
  readonly invalidDrafts: number
  readonly successRate: number
  readonly lastDraftAt: string
}

export interface JobStats {
  readonly jobType: string
  readonly jobs: number
  readonly byState: {
    readonly queued: number
    readonly running: number
    readonly paused: number
    readonly completed: number
    readonly failed: number
    readonly cancelled: number
  }
  readonly avgProcessingSeconds: number | null
  /** 95th percentile of started → finished over completed jobs. */
  readonly p95ProcessingSeconds: number | null
  readonly lastJobAt: string
}

/** One UTC day of activity (the async `activity` projection): what happened, rollbacks included. */
export interface DailyActivity {
  readonly day: string
  readonly sessionsStarted: number
  readonly messages: number
  readonly revisions: number
  readonly drafts: number
  readonly validDrafts: number
  readonly toolRuns: number
  readonly jobsCreated: number
  readonly jobsCompleted: number
  readonly jobsFailed: number
}

export interface DailyDraftValidation {
  readonly day: string
  readonly language: string
  readonly drafts: number
  readonly validDrafts: number
  readonly successRate: number
}

/** A range of UTC days, inclusive; both ends ISO dates (YYYY-MM-DD). */
export interface DayRange {
  readonly from?: string | undefined
  readonly to?: string | undefined
}

/** The longest range a daily query may cover. */
export const MAX_DAYS = 366
const DAY = /^\d{4}-\d{2}-\d{2}$/

const parseDay = (value: string, path: string) => {
  const date = new Date(`${value}T00:00:00Z`)
  return DAY.test(value) && !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value)
    ? Effect.succeed(date)
    : Effect.fail(new InvalidCommand({ path, reason: "must be a date as YYYY-MM-DD" }))
}

/** The range asked for: by default the 30 days up to today (UTC). */
export const resolveDayRange = Effect.fn("Analytics.resolveDayRange")(function* (range: DayRange) {
  const day = 86_400_000
  const to =
    range.to === undefined ? new Date(Math.floor(Date.now() / day) * day) : yield* parseDay(range.to, "to")
  const from =
    range.from === undefined ? new Date(to.getTime() - 29 * day) : yield* parseDay(range.from, "from")
  if (from.getTime() > to.getTime())
    return yield* new InvalidCommand({ path: "from", reason: "must not be after `to`" })
  if ((to.getTime() - from.getTime()) / day + 1 > MAX_DAYS)
    return yield* new InvalidCommand({ path: "from", reason: `the range may cover at most ${MAX_DAYS} days` })
  return { from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10) }
})

// ----- the rows of the analytics views (05_analytics.sql), decoded -----------------------------

const decodeSummary = decoder(
  "session summary",
  "session_id",
  Schema.Struct({
    session_id: Schema.String,
    owner_id: Schema.String,
    title: Text,
    status: SessionStatus,
    parent_id: Text,
    message_count: Num,
    revision_count: Num,
    draft_count: Num,
    hole_count: Num,
    file_count: Num,
    tool_run_count: Num,
    job_count: Num,
    valid_drafts: Num,
    invalid_drafts: Num,
    draft_success_rate: OptionalNum,
    avg_hole_confidence: OptionalNum,
    created_at: Time,
    last_activity_at: Time,
    active_seconds: Num,
    last_message_at: OptionalTime,
  }),
)

/** The newest message's columns, read when there is one (null, all three, when there is none). */
const decodeLastMessage = decoder(
  "session summary",
  "session_id",
  Schema.Struct({
    last_message_role: MessageRole,
    last_message_preview: Schema.String,
    last_message_at: Time,
  }),
)

/** A row of `chronicle.session_summary`. */
export const toSessionSummary = (row: Row): SessionSummary => {
  const r = decodeSummary(row)
  return {
    sessionId: r.session_id,
    ownerId: r.owner_id,
    title: r.title ?? null,
    status: r.status,
    parentId: r.parent_id ?? null,
    counts: {
      messages: num(r.message_count),
      revisions: num(r.revision_count),
      drafts: num(r.draft_count),
      holes: num(r.hole_count),
      files: num(r.file_count),
      toolRuns: num(r.tool_run_count),
      jobs: num(r.job_count),
    },
    validDrafts: num(r.valid_drafts),
    invalidDrafts: num(r.invalid_drafts),
    draftSuccessRate: numOrNull(r.draft_success_rate),
    avgHoleConfidence: numOrNull(r.avg_hole_confidence),
    createdAt: iso(r.created_at),
    lastActivityAt: iso(r.last_activity_at),
    activeSeconds: num(r.active_seconds),
    lastMessage: r.last_message_at === null || r.last_message_at === undefined ? null : lastMessageOf(row),
  }
}
const lastMessageOf = (row: Row): NonNullable<SessionSummary["lastMessage"]> => {
  const m = decodeLastMessage(row)
  return { role: m.last_message_role, preview: m.last_message_preview, at: iso(m.last_message_at) }
}
const summaryKey = pageKey("session summary", { cursor_at: "text", session_id: "text" })

const decodeUser = decoder(
  "user analytics",
  "owner_id",
  Schema.Struct({
    owner_id: Schema.String,
    sessions: Num,
    active_sessions: Num,
    archived_sessions: Num,
    messages: Num,
    revisions: Num,
    drafts: Num,
    holes: Num,
    tool_runs: Num,
    jobs: Num,
    completed_jobs: Num,
    failed_jobs: Num,
    last_activity_at: OptionalTime,
    valid_drafts: Num,
    draft_validity_rate: OptionalNum,
    queued_jobs: Num,
    running_jobs: Num,
    paused_jobs: Num,
    cancelled_jobs: Num,
  }),
)

const toUserAnalytics = (row: Row): UserAnalytics => {
  const r = decodeUser(row)
  return {
    ownerId: r.owner_id,
    sessions: num(r.sessions),
    activeSessions: num(r.active_sessions),
    archivedSessions: num(r.archived_sessions),
    messages: num(r.messages),
    revisions: num(r.revisions),
    drafts: num(r.drafts),
    holes: num(r.holes),
    toolRuns: num(r.tool_runs),
    jobs: num(r.jobs),
    completedJobs: num(r.completed_jobs),
    failedJobs: num(r.failed_jobs),
    lastActivityAt: isoOrNull(r.last_activity_at),
    validDrafts: num(r.valid_drafts),
    draftValidityRate: numOrNull(r.draft_validity_rate),
    jobsByState: {
      queued: num(r.queued_jobs),
      running: num(r.running_jobs),
      paused: num(r.paused_jobs),
      completed: num(r.completed_jobs),
      failed: num(r.failed_jobs),
      cancelled: num(r.cancelled_jobs),
    },
  }
}
const userKey = pageKey("user analytics", { owner_id: "text" })

const ACTIVITY_KINDS = ["message", "revision", "draft", "tool_run", "job"] as const satisfies ReadonlyArray<
  ActivityItem["kind"]
>

const decodeActivity = decoder(
  "recent activity",
  "entity_id",
  Schema.Struct({
    session_id: Text,
    kind: Schema.Literals(ACTIVITY_KINDS),
    entity_id: Schema.String,
    summary: Schema.String,
    at: Time,
  }),
)

/** A row of `chronicle.recent_activity`. */
export const toActivityItem = (row: Row): ActivityItem => {
  const r = decodeActivity(row)
  return {
    sessionId: r.session_id ?? null,
    kind: r.kind,
    entityId: r.entity_id,
    summary: r.summary,
    at: iso(r.at),
  }
}
// A fork copies its parent's content with the same ids and times: the session breaks the tie.
const activityKey = pageKey("recent activity", {
  cursor_at: "text",
  entity_id: "text",
  cursor_session: "text",
})

const decodeDraftValidation = decoder(
  "draft validation",
  "language",
  Schema.Struct({
    language: Schema.String,
    drafts: Num,
    valid_drafts: Num,
    invalid_drafts: Num,
    last_draft_at: Time,
  }),
)

const toDraftValidation = (row: Row): DraftValidationStats => {
  const r = decodeDraftValidation(row)
  const drafts = num(r.drafts)
  const validDrafts = num(r.valid_drafts)
  return {
    language: r.language,
    drafts,
    validDrafts,
    invalidDrafts: num(r.invalid_drafts),
    successRate: drafts === 0 ? 0 : validDrafts / drafts,
    lastDraftAt: iso(r.last_draft_at),
  }
}

const decodeJobStats = decoder(
  "job stats",
  "job_type",
  Schema.Struct({
    job_type: Schema.String,
    jobs: Num,
    queued: Num,
    running: Num,
    paused: Num,
    completed: Num,
    failed: Num,
    cancelled: Num,
    avg_processing_seconds: OptionalNum,
    p95_processing_seconds: OptionalNum,
    last_job_at: Time,
  }),
)

const toJobStats = (row: Row): JobStats => {
  const r = decodeJobStats(row)
  return {
    jobType: r.job_type,
    jobs: num(r.jobs),
    byState: {
      queued: num(r.queued),
      running: num(r.running),
      paused: num(r.paused),
      completed: num(r.completed),
      failed: num(r.failed),
      cancelled: num(r.cancelled),
    },
    avgProcessingSeconds: numOrNull(r.avg_processing_seconds),
    p95ProcessingSeconds: numOrNull(r.p95_processing_seconds),
    lastJobAt: iso(r.last_job_at),
  }
}

const decodeDaily = decoder(
  "daily activity",
  "day",
  Schema.Struct({
    day: Schema.String,
    sessions_started: Num,
    messages: Num,
    revisions: Num,
    drafts: Num,
    valid_drafts: Num,
    tool_runs: Num,
    jobs_created: Num,
    jobs_completed: Num,
    jobs_failed: Num,
  }),
)

const toDailyActivity = (row: Row): DailyActivity => {
  const r = decodeDaily(row)
  return {
    day: r.day,
    sessionsStarted: num(r.sessions_started),
    messages: num(r.messages),
    revisions: num(r.revisions),
    drafts: num(r.drafts),
    validDrafts: num(r.valid_drafts),
    toolRuns: num(r.tool_runs),
    jobsCreated: num(r.jobs_created),
    jobsCompleted: num(r.jobs_completed),
    jobsFailed: num(r.jobs_failed),
  }
}

const decodeDailyDraftValidation = decoder(
  "daily draft validation",
  "day",
  Schema.Struct({ day: Schema.String, language: Schema.String, drafts: Num, valid_drafts: Num }),
)

const toDailyDraftValidation = (row: Row): DailyDraftValidation => {
  const r = decodeDailyDraftValidation(row)
  const drafts = num(r.drafts)
  const validDrafts = num(r.valid_drafts)
  return {
    day: r.day,
    language: r.language,
    drafts,
    validDrafts,
    successRate: drafts === 0 ? 0 : validDrafts / drafts,
  }
}

export type AnalyticsError = NotFound | InvalidCommand

export interface AnalyticsService {
  /** One session's summary, or a page of the caller's session summaries (newest activity first). */
  readonly sessionSummary: (
    actor: Actor,
    input: PageRequest & { readonly sessionId?: string | undefined },
  ) => Effect.Effect<Page<SessionSummary>, AnalyticsError>
  /** Usage per owner: the caller's own row, or every owner's for the service role. */
  readonly users: (actor: Actor, page: PageRequest) => Effect.Effect<Page<UserAnalytics>, AnalyticsError>
  /** Newest first: messages, revisions, drafts, tool runs and job changes. */
  readonly recentActivity: (
    actor: Actor,
    input: PageRequest & { readonly sessionId?: string | undefined },
  ) => Effect.Effect<Page<ActivityItem>, AnalyticsError>
  readonly draftValidation: (
    actor: Actor,
  ) => Effect.Effect<ReadonlyArray<DraftValidationStats>, AnalyticsError>
  readonly jobStats: (actor: Actor) => Effect.Effect<ReadonlyArray<JobStats>, AnalyticsError>
  /** Activity per UTC day, every day of the range (zeros where nothing happened). */
  readonly daily: (
    actor: Actor,
    range: DayRange,
  ) => Effect.Effect<ReadonlyArray<DailyActivity>, AnalyticsError>
  /** Draft validation per UTC day and language (days with drafts only). */
  readonly draftValidationByDay: (
    actor: Actor,
    range: DayRange,
  ) => Effect.Effect<ReadonlyArray<DailyDraftValidation>, AnalyticsError>
}

/** The analytics views (supabase/migrations/*_analytics_views.sql), limited to what the caller owns. */
export class Analytics extends Context.Service<Analytics, AnalyticsService>()("@chronicle/domain/Analytics") {
  static readonly layer = Layer.effect(
    Analytics,
    Effect.gen(function* () {
      const db = yield* Database
      const query = (text: string, params: ReadonlyArray<unknown>) =>
        db.query(text, params).pipe(Effect.orDie)

      const sessionSummary = Effect.fn("Analytics.sessionSummary")(function* (
        actor: Actor,
        input: PageRequest & { readonly sessionId?: string | undefined },
      ) {
        if (input.sessionId !== undefined) {
          yield* loadSession(actor, input.sessionId)
          const rows = yield* query("select * from chronicle.session_summary where session_id = $1::uuid", [
            input.sessionId,
          ])
          return { items: rows.map(toSessionSummary), nextCursor: null }
        }
        const limit = yield* pageLimit(input.limit)
        const after = yield* decodePageCursor(input.cursor, ["timestamp", "uuid"] as const)
        const rows = yield* query(
          `select *, ${cursorTime("last_activity_at")} as cursor_at from chronicle.session_summary
            where ($1::uuid is null or owner_id = $1::uuid) and status <> 'deleted'
              and ($2::text is null or (last_activity_at, session_id) < ($2::text::timestamptz, $3::uuid))
            order by last_activity_at desc, session_id desc limit $4`,
          [listScope(actor), after?.[0] ?? null, after?.[1] ?? null, limit + 1],
        )
        return toPage(rows, limit, toSessionSummary, summaryKey, "asc", input.maxBytes)
      })

      const users = Effect.fn("Analytics.users")(function* (actor: Actor, page: PageRequest) {
        const limit = yield* pageLimit(page.limit)
        const after = yield* decodePageCursor(page.cursor, ["uuid"] as const)
        const rows = yield* query(
          `select * from chronicle.user_analytics
            where ($1::uuid is null or owner_id = $1::uuid) and ($2::uuid is null or owner_id > $2::uuid)
            order by owner_id limit $3`,
          [listScope(actor), after?.[0] ?? null, limit + 1],
        )
        return toPage(rows, limit, toUserAnalytics, userKey, "asc", page.maxBytes)
      })

      const recentActivity = Effect.fn("Analytics.recentActivity")(function* (
        actor: Actor,
        input: PageRequest & { readonly sessionId?: string | undefined },
      ) {
        if (input.sessionId !== undefined) yield* loadSession(actor, input.sessionId)
        const limit = yield* pageLimit(input.limit)
        const after = yield* decodePageCursor(input.cursor, ["timestamp", "uuid", "uuid"] as const)
        const rows = yield* query(
          `select session_id::text, kind, entity_id::text, summary, at, ${cursorTime("at")} as cursor_at,
                  coalesce(session_id, '00000000-0000-0000-0000-000000000000')::text as cursor_session
             from chronicle.recent_activity
            where ($1::uuid is null or owner_id = $1::uuid)
              and ($2::uuid is null or session_id = $2::uuid)
              and ($3::text is null or (at, entity_id, coalesce(session_id, '00000000-0000-0000-0000-000000000000'))
                                     < ($3::text::timestamptz, $4::uuid, $6::uuid))
            order by at desc, entity_id desc, coalesce(session_id, '00000000-0000-0000-0000-000000000000') desc
            limit $5`,
          [
            listScope(actor),
            input.sessionId !== undefined && isUuid(input.sessionId) ? input.sessionId : null,
            after?.[0] ?? null,
            after?.[1] ?? null,
            limit + 1,
            after?.[2] ?? null,
          ],
        )
        return toPage(rows, limit, toActivityItem, activityKey, "asc", input.maxBytes)
      })

      const draftValidation = Effect.fn("Analytics.draftValidation")(function* (actor: Actor) {
        const rows = yield* query(
          `select language, sum(drafts) as drafts, sum(valid_drafts) as valid_drafts,
                  sum(invalid_drafts) as invalid_drafts, max(last_draft_at) as last_draft_at
             from chronicle.draft_validation_stats
            where $1::uuid is null or owner_id = $1::uuid
            group by language order by language`,
          [listScope(actor)],
        )
        return rows.map(toDraftValidation)
      })

      const jobStats = Effect.fn("Analytics.jobStats")(function* (actor: Actor) {
        const rows = yield* query(
          `select job_type, count(*) as jobs,
                  count(*) filter (where state = 'queued') as queued,
                  count(*) filter (where state = 'running') as running,
                  count(*) filter (where state = 'paused') as paused,
                  count(*) filter (where state = 'completed') as completed,
                  count(*) filter (where state = 'failed') as failed,
                  count(*) filter (where state = 'cancelled') as cancelled,
                  avg(extract(epoch from (finished_at - started_at))) filter (where state = 'completed')
                    as avg_processing_seconds,
                  percentile_cont(0.95) within group (order by extract(epoch from (finished_at - started_at)))
                    filter (where state = 'completed') as p95_processing_seconds,
                  max(created_at) as last_job_at
             from chronicle.jobs
            where $1::uuid is null or owner_id = $1::uuid
            group by job_type order by job_type`,
          [listScope(actor)],
        )
        return rows.map(toJobStats)
      })

      const daily = Effect.fn("Analytics.daily")(function* (actor: Actor, range: DayRange) {
        const { from, to } = yield* resolveDayRange(range)
        const rows = yield* query(
          `select to_char(d.day, 'YYYY-MM-DD') as day,
                  coalesce(sum(a.sessions_started), 0) as sessions_started, coalesce(sum(a.messages), 0) as messages,
                  coalesce(sum(a.revisions), 0) as revisions, coalesce(sum(a.drafts), 0) as drafts,
                  coalesce(sum(a.valid_drafts), 0) as valid_drafts, coalesce(sum(a.tool_runs), 0) as tool_runs,
                  coalesce(sum(a.jobs_created), 0) as jobs_created, coalesce(sum(a.jobs_completed), 0) as jobs_completed,
                  coalesce(sum(a.jobs_failed), 0) as jobs_failed
             from generate_series($2::date, $3::date, interval '1 day') as d(day)
             left join chronicle.activity_daily a
               on a.day = d.day::date and ($1::uuid is null or a.owner_id = $1::uuid)
            group by d.day order by d.day`,
          [listScope(actor), from, to],
        )
        return rows.map(toDailyActivity)
      })

      const draftValidationByDay = Effect.fn("Analytics.draftValidationByDay")(function* (
        actor: Actor,
        range: DayRange,
      ) {
        const { from, to } = yield* resolveDayRange(range)
        const rows = yield* query(
          `select to_char(day, 'YYYY-MM-DD') as day, language, sum(drafts) as drafts, sum(valid_drafts) as valid_drafts
             from chronicle.activity_daily_drafts
            where ($1::uuid is null or owner_id = $1::uuid) and day between $2::date and $3::date
            group by day, language order by day, language`,
          [listScope(actor), from, to],
        )
        return rows.map(toDailyDraftValidation)
      })

      const provide = <A, E>(effect: Effect.Effect<A, E, Database>) =>
        Effect.provideService(effect, Database, db)
      return Analytics.of({
        sessionSummary: (a, i) => provide(sessionSummary(a, i)),
        users: (a, p) => provide(users(a, p)),
        recentActivity: (a, i) => provide(recentActivity(a, i)),
        draftValidation: (a) => provide(draftValidation(a)),
        jobStats: (a) => provide(jobStats(a)),
        daily: (a, r) => provide(daily(a, r)),
        draftValidationByDay: (a, r) => provide(draftValidationByDay(a, r)),
      })
    }),
  )
}
