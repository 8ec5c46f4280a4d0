import { Context } from "effect"

export interface DomainConfigShape {
  /** Largest file accepted by files.put, in bytes. */
  readonly maxFileBytes: number
  /** MIME types files.put accepts; `type/*` allows a whole family. */
  readonly allowedMimeTypes: ReadonlyArray<string>
  /** Sessions idle longer than this are expired by the retention sweep; 0 = never. */
  readonly sessionTtlHours: number
  /** How many times a command is re-decided when a concurrent append moved the stream first. */
  readonly conflictRetries: number
  /**
   * Message content and metadata, tool run inputs and outputs larger than this (bytes of JSON)
   * are stored once in the blob table and the event refers to them (large-values.ts).
   */
  readonly largeValueBytes: number
  /**
   * Sessions expired for this many days are purged by the retention sweep (their content
   * erased, irreversibly); 0 = never.
   */
  readonly purgeExpiredAfterDays: number
  /**
   * LangGraph threads keep this many checkpoints per thread and namespace (the newest): the
   * retention sweep prunes the older ones; 0 = keep all.
   */
  readonly graphKeepCheckpoints: number
}

/**
 * Thirty days. Expiry marks a session idle (the next write reopens it), so the TTL only says
 * when a session counts as idle: long enough that a conversation paused over a weekend or a
 * holiday is not marked, and the log holds no expiry and reopening per day of pause.
 */
export const DEFAULT_SESSION_TTL_HOURS = 720

export const DEFAULT_ALLOWED_MIME_TYPES = [
  "text/*",
  "image/*",
  "application/json",
  "application/pdf",
  "application/xml",
  "application/yaml",
  "application/x-ndjson",
  "application/zip",
  "application/gzip",
  "application/octet-stream",
  "application/javascript",
  "application/typescript",
] as const

export const defaultDomainConfig: DomainConfigShape = {
  maxFileBytes: 10 * 1024 * 1024,
  allowedMimeTypes: DEFAULT_ALLOWED_MIME_TYPES,
  sessionTtlHours: DEFAULT_SESSION_TTL_HOURS,
  conflictRetries: 50,
  largeValueBytes: 64 * 1024,
  purgeExpiredAfterDays: 0,
  graphKeepCheckpoints: 0,
}

export const DomainConfig = Context.Reference<DomainConfigShape>("@chronicle/domain/DomainConfig", {
  defaultValue: () => defaultDomainConfig,
})

/** Whether `mimeType` (parameters ignored) is on the allow-list. */
export const mimeAllowed = (mimeType: string, allowed: ReadonlyArray<string>): boolean => {
  const bare = mimeType.split(";")[0]!.trim().toLowerCase()
  const family = `${bare.split("/")[0]}/*`
  return allowed.some((a) => a.toLowerCase() === bare || a.toLowerCase() === family)
}
