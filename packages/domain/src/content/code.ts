/** The code a session works on: IR revisions, code drafts and typed-hole resolutions. */
import type { SessionCommand } from "@chronicle/events"
import type { Json, JsonObject } from "@chronicle/events/types"
import { Effect, Schema } from "effect"
import { v7 as uuidv7 } from "uuid"
import type { Actor } from "../actor.ts"
import type { CommandOptions } from "../command.ts"
import { decoder, Num } from "../row-schema.ts"
import { draftOf, holeResolutionOf, revisionOf, toDraft, toHoleResolution, toRevision } from "../rows.ts"
import { executeSessionCommand } from "../session/command.ts"
import { type ListInput, listVisible, query } from "./read.ts"
import { created, one } from "./recorded.ts"

export interface RevisionInput {
  readonly ir: Json
  readonly note?: string | null
}

export interface DraftInput {
  readonly code: string
  readonly language: string
  readonly valid: boolean
  readonly metrics?: JsonObject
  /** The number of the effective revision the draft came from. */
  readonly revisionNumber?: number | null
}

export interface HoleInput {
  readonly holeId: string
  readonly value: Json
  readonly confidence: number
}

export const addRevision = Effect.fn("Content.addRevision")(function* (
  actor: Actor,
  sessionId: string,
  input: RevisionInput,
  options?: CommandOptions,
) {
  const result = yield* executeSessionCommand(
    actor,
    sessionId,
    () =>
      Effect.succeed<SessionCommand>({
        type: "AddRevision",
        revisionId: uuidv7(),
        ir: input.ir,
        note: input.note ?? null,
      }),
    options,
    input,
  )
  return yield* one(created(result, "RevisionAdded", (e, r) => revisionOf(sessionId, e, r)))
})

export const recordDraft = Effect.fn("Content.recordDraft")(function* (
  actor: Actor,
  sessionId: string,
  input: DraftInput,
  options?: CommandOptions,
) {
  const result = yield* executeSessionCommand(
    actor,
    sessionId,
    () =>
      Effect.succeed<SessionCommand>({
        type: "RecordDraft",
        draftId: uuidv7(),
        code: input.code,
        language: input.language,
        valid: input.valid,
        metrics: input.metrics ?? {},
        revisionNumber: input.revisionNumber ?? null,
      }),
    options,
    input,
  )
  return yield* one(created(result, "DraftRecorded", (e, r) => draftOf(sessionId, e, r)))
})

/** The confidence of a hole's current resolution. */
const decodeConfidence = decoder("hole resolution", "hole_id", Schema.Struct({ confidence: Num }))

export const resolveHole = Effect.fn("Content.resolveHole")(function* (
  actor: Actor,
  sessionId: string,
  input: HoleInput,
  options?: CommandOptions,
) {
  const result = yield* executeSessionCommand(
    actor,
    sessionId,
    () =>
      Effect.gen(function* () {
        // The hole's current effective resolution, which a new one may not undercut.
        const rows = yield* query(
          `select h.confidence from chronicle.sessions s
             join chronicle.hole_resolutions h on h.session_id = s.id
            where s.id = $1::uuid and h.hole_id = $2 and s.effective @> h.version
            order by h.version desc, h.created_at desc limit 1`,
          [sessionId, input.holeId],
        )
        return {
          type: "ResolveHole",
          resolutionId: uuidv7(),
          holeId: input.holeId,
          value: input.value,
          confidence: input.confidence,
          current:
            rows[0] === undefined ? null : { confidence: Number(decodeConfidence(rows[0]).confidence) },
        } satisfies SessionCommand
      }),
    options,
    input,
  )
  return yield* one(created(result, "HoleResolved", (e, r) => holeResolutionOf(sessionId, e, r)))
})

export const listRevisions = (actor: Actor, sessionId: string, input: ListInput) =>
  listVisible(actor, sessionId, input, {
    table: "revisions",
    keys: ["number"],
    map: toRevision,
    size: "octet_length(t.ir::text) + coalesce(octet_length(t.note), 0)",
  })

export const listDrafts = (actor: Actor, sessionId: string, input: ListInput) =>
  listVisible(actor, sessionId, input, {
    table: "drafts",
    keys: ["version", "draft_id"],
    map: toDraft,
    size: "octet_length(t.code) + octet_length(t.metrics::text)",
  })

export const listHoles = (
  actor: Actor,
  sessionId: string,
  input: ListInput & { readonly holeId?: string | undefined },
) =>
  listVisible(actor, sessionId, input, {
    table: "hole_resolutions",
    keys: ["version", "resolution_id"],
    map: toHoleResolution,
    size: "octet_length(t.value::text) + octet_length(t.hole_id)",
    holeId: input.holeId,
  })
