/**
 * The vocabulary the API serves, as plain TypeScript: the shapes the domain returns name these
 * (through `@chronicle/events/types`), not the schemas in primitives.ts. A schema and its type
 * share one name there, so anything naming the type would drag the schema's declaration — and
 * Effect's types behind it — into the router's type, which the published client bundles. The
 * schemas are built from the lists below and annotated with the types, so the two cannot drift.
 */

/** Any JSON value. */
export type Json = null | number | boolean | string | JsonArray | JsonObject
/** A JSON array. */
export interface JsonArray extends ReadonlyArray<Json> {}
/** A JSON object (string keys, JSON values). */
export interface JsonObject {
  readonly [key: string]: Json
}

export const MESSAGE_ROLES = ["user", "assistant", "system", "tool"] as const
export type MessageRole = (typeof MESSAGE_ROLES)[number]

export const SESSION_STATUSES = ["active", "archived", "deleted", "expired"] as const
export type SessionStatus = (typeof SESSION_STATUSES)[number]

export const JOB_STATES = ["queued", "running", "paused", "completed", "failed", "cancelled"] as const
export type JobState = (typeof JOB_STATES)[number]

export const TASK_STATUSES = ["pending", "running", "completed", "failed", "skipped", "cancelled"] as const
export type TaskStatus = (typeof TASK_STATUSES)[number]

export const TOOL_RUN_STATUSES = ["succeeded", "failed", "cancelled"] as const
export type ToolRunStatus = (typeof TOOL_RUN_STATUSES)[number]

export const SANDBOX_STATUSES = ["starting", "running", "stopped", "failed", "expired"] as const
export type SandboxStatus = (typeof SANDBOX_STATUSES)[number]

export const ARTIFACT_KINDS = ["code", "log", "output", "other"] as const
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number]

/** A value as a graph framework's serializer wrote it: its type tag and its bytes in base64. */
export interface SerializedValue {
  readonly type: string
  readonly data: string
}
