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
/**
 * JSON escaping makes text up to six times longer (a control character is `\u0001`): an
 * event carrying a message at the message limit must still be accepted.
 */
export const JSON_ESCAPE_FACTOR = 6
/** Room an event needs besides its content: ids, role, metadata. */
export const EVENT_ENVELOPE_BYTES = 64 * 1024

const MiB = 1024 * 1024

export interface Limits {
  /** Largest request body, in bytes (CHRONICLE_MAX_BODY_BYTES). Larger bodies get 413. */
  readonly maxBodyBytes: number
  /**
   * Largest message content or metadata, tool run input or output, in UTF-8 bytes (of JSON
   * for JSON values) (CHRONICLE_MAX_MESSAGE_BYTES). Values over the large-value threshold are
   * stored in the blob store, the event keeping a reference; draft code stays inline and is
   * limited to `inlineBytes`.
   */
  readonly maxMessageBytes: number
  /**
   * Message content and metadata, tool run inputs and outputs whose JSON is larger than this
   * (CHRONICLE_LARGE_VALUE_BYTES) are stored once in the blob store; the event keeps a
   * reference. At most MAX_LARGE_VALUE_THRESHOLD, so events stay well inside their limit.
   */
  readonly largeValueBytes: number
  /**
   * Largest file, in bytes (CHRONICLE_MAX_FILE_BYTES). Files travel base64-encoded in JSON,
   * so the body limit must hold 4/3 of this plus the rest of the request.
   */
  readonly maxFileBytes: number
  /** Default and maximum page size of every list. */
  readonly list: { readonly default: number; readonly max: number }
  /** Most items one batch request may carry. */
  readonly maxBatchSize: number
  /**
   * Most bytes of JSON one response may carry (CHRONICLE_MAX_RESPONSE_BYTES): all the calls of
   * a batched request together. The queries of one request run one after the other and draw
   * on it in turn; a call that finds it spent is refused (413, `ResponseTooLarge`), the calls
   * before it keep their answers.
   */
  readonly maxResponseBytes: number
  /**
   * Most bytes of JSON one list page may carry (CHRONICLE_MAX_PAGE_BYTES). A page that
   * reaches it ends early with a `nextCursor`; a page always holds at least one item.
   */
  readonly maxPageBytes: number
  /**
   * Most queries one user may have running at once (CHRONICLE_MAX_CONCURRENT_QUERIES); more
   * are refused with 429. The service role is not limited. 0: no limit.
   */
  readonly maxConcurrentQueries: number
  /**
   * Most open `events.subscribe` streams per user (CHRONICLE_MAX_SUBSCRIPTIONS); more are
   * refused with 429. The service role is not limited. 0: no limit.
   */
  readonly maxSubscriptions: number
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 32 * MiB,
  maxMessageBytes: 16 * MiB,
  largeValueBytes: 64 * 1024,
  maxFileBytes: 10 * MiB,
  list: { default: DEFAULT_LIST_LIMIT, max: MAX_LIST_LIMIT },
  maxBatchSize: MAX_BATCH_SIZE,
  maxResponseBytes: 32 * MiB,
  maxPageBytes: 4 * MiB,
  maxConcurrentQueries: 8,
  maxSubscriptions: 32,
}

/** The highest large-value threshold: two values at it (content and metadata) fit in an event. */
export const MAX_LARGE_VALUE_THRESHOLD = 256 * 1024

/**
 * Text an event carries inline whatever its size, in UTF-8 bytes: draft code and the messages
 * of `imports.conversation` (message content and metadata, tool run inputs and outputs over
 * `CHRONICLE_LARGE_VALUE_BYTES` go to the blob store instead, so their limit can be far larger).
 */
export const MAX_INLINE_TEXT_BYTES = 1 * MiB

/** The largest text an event carries inline: the message limit, at most MAX_INLINE_TEXT_BYTES. */
export const inlineBytes = (limits: Pick<Limits, "maxMessageBytes">): number =>
  Math.min(limits.maxMessageBytes, MAX_INLINE_TEXT_BYTES)

/**
 * The most bytes of JSON (data and metadata) one event may carry: enough for inline text at
 * its limit however it escapes, with room for the rest of the event. Large values are not in
 * the event (only their references), so this stays a guard on what is.
 */
export const maxEventBytes = (limits: Pick<Limits, "maxMessageBytes">): number =>
  Math.max(1 * MiB, JSON_ESCAPE_FACTOR * inlineBytes(limits) + EVENT_ENVELOPE_BYTES)

/** Bytes a file of `bytes` bytes takes once base64-encoded. */
export const base64Length = (bytes: number): number => Math.ceil(bytes / 3) * 4
