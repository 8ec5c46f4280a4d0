/**
 * The API's limits. Two kinds:
 *
 * - **Contract limits** (list page size, batch size) are part of the API: clients code
 *   against them and input schemas check them, so they are constants, not settings.
 * - **Size limits** depend on the deployment and are read from the environment by the
 *   server (`apps/server/src/config.ts`); routers reach them through `ctx.limits`.
 */

/** Items per list page when the request names no limit. */
export const DEFAULT_LIST_LIMIT = 50
/** Most items one list page may hold. */
export const MAX_LIST_LIMIT = 500
/** Most items one batch request (appendMany and the like) may carry. */
export const MAX_BATCH_SIZE = 500
/** Most procedure calls one batched HTTP request may carry (tRPC batching). */
export const MAX_CALLS_PER_BATCH = 100

const MiB = 1024 * 1024

export interface Limits {
  /** Largest request body, in bytes (CHRONICLE_MAX_BODY_BYTES). Larger bodies get 413. */
  readonly maxBodyBytes: number
  /** Largest message content, in UTF-8 bytes (CHRONICLE_MAX_MESSAGE_BYTES). */
  readonly maxMessageBytes: number
  /**
   * Largest file, in bytes (CHRONICLE_MAX_FILE_BYTES). Files travel base64-encoded in JSON,
   * so the body limit must hold 4/3 of this plus the rest of the request.
   */
  readonly maxFileBytes: number
  /** Default and maximum page size of every list. */
  readonly list: { readonly default: number; readonly max: number }
  /** Most items one batch request may carry. */
  readonly maxBatchSize: number
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 16 * MiB,
  maxMessageBytes: 1 * MiB,
  maxFileBytes: 10 * MiB,
  list: { default: DEFAULT_LIST_LIMIT, max: MAX_LIST_LIMIT },
  maxBatchSize: MAX_BATCH_SIZE,
}

/** Bytes a file of `bytes` bytes takes once base64-encoded. */
export const base64Length = (bytes: number): number => Math.ceil(bytes / 3) * 4
