import { createHash, randomUUID } from "node:crypto"
import {
  type ChronicleClient,
  type ChronicleClientOptions,
  createChronicleClient,
  type RouterOutputs,
  resend,
} from "@chronicle/client"
import type { RunnableConfig } from "@langchain/core/runnables"
import {
  BaseCheckpointSaver,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointListOptions,
  type CheckpointMetadata,
  type CheckpointPendingWrite,
  type CheckpointTuple,
  copyCheckpoint,
  getCheckpointId,
  maxChannelVersion,
  type PendingWrite,
  type SerializerProtocol,
  TASKS,
  WRITES_IDX_MAP,
} from "@langchain/langgraph-checkpoint"

type StoredTuple = NonNullable<RouterOutputs["graphs"]["getTuple"]>
type Serialized = { readonly type: string; readonly data: string }
type ChannelBlob =
  | { readonly channel: string; readonly version: string; readonly value: Serialized }
  | {
      readonly channel: string
      readonly version: string
      readonly list: {
        readonly base: string | null
        readonly keep: number
        readonly items: Array<Serialized>
      }
    }
/** A list channel's value at a version, as the digests of its serialized items. */
type KnownList = { readonly version: string; readonly digests: ReadonlyArray<string> }

/** A channel listed in a checkpoint's new versions but holding no value (LangGraph's convention). */
const EMPTY = "empty"
/** How many writes one `putWrites` request carries at most (the API's batch limit). */
const WRITES_PER_CALL = 500
/** How many checkpoints one `list` request asks for at most. */
const PAGE_SIZE = 100
/** Versions of one list channel remembered as bases for the next ones. */
const KNOWN_VERSIONS = 4
/** List channels (thread, namespace, channel) remembered, the least recently used forgotten first. */
const KNOWN_CHANNELS = 256

/** An item's digest: 128 bits of the SHA-256 of its serialized form (the saver's memory is bounded by these). */
const digestOf = (value: Serialized) =>
  createHash("sha256")
    .update(value.type)
    .update("\0")
    .update(value.data)
    .digest()
    .subarray(0, 16)
    .toString("base64")

/** A value stored item by item: a plain array whose items each serialize on their own. */
const isList = (value: unknown): value is Array<unknown> =>
  Array.isArray(value) &&
  Object.getPrototypeOf(value) === Array.prototype &&
  value.length > 0 &&
  value.every((item, i) => Object.hasOwn(value, i) && item !== undefined && typeof item !== "function")

const isNotFound = (error: unknown) =>
  typeof error === "object" &&
  error !== null &&
  (error as { data?: { code?: unknown } }).data?.code === "NOT_FOUND"
export type ChronicleSaverOptions = ({ readonly client: ChronicleClient } | ChronicleClientOptions) & {
  /** The serializer for checkpoints, channel values and writes; default LangGraph's JsonPlusSerializer. */
  readonly serde?: SerializerProtocol | undefined
}

const missing = (what: string, method: string) =>
  new Error(
    `Failed to ${method}: the RunnableConfig has no "${what}" in its "configurable". ` +
      `Pass one, e.g. graph.invoke(input, { configurable: { thread_id: "my-thread" } }).`,
  )

const threadIdOf = (config: RunnableConfig): string | undefined => {
  const id: unknown = config.configurable?.thread_id
  return id === undefined || id === null ? undefined : String(id)
}

/**
 * A LangGraph checkpointer that keeps every thread in Chronicle: each `put`, `putWrites` and
 * `deleteThread` is an event on the thread's `graph-<id>` stream, so a thread's whole history
 * stays in the log, and the server's read model answers `getTuple` and `list`. It talks to the
 * server through the typed client only, so it runs in any app that can reach the service.
 * A write whose response is lost is sent again, and recorded once (each put carries an
 * idempotency key).
 *
 * A channel holding an array (a conversation's messages) is stored item by item: when its new
 * value starts with the items of a version this saver wrote or read, the put carries only the
 * items after them, so a thread's storage grows with what each step adds, not with its
 * length. The saver remembers the items' digests of the last few versions of each such
 * channel; a saver that remembers nothing (a new process) sends the whole list once.
 *
 *   const checkpointer = new ChronicleSaver({ url: "http://127.0.0.1:4000", token })
 *   const graph = workflow.compile({ checkpointer })
 */
export class ChronicleSaver extends BaseCheckpointSaver {
  readonly client: ChronicleClient
  /** The last versions of each list channel, by thread, namespace and channel. */
  private readonly known = new Map<string, Array<KnownList>>()

  constructor(options: ChronicleSaverOptions) {
    super(options.serde)
    this.client = "client" in options ? options.client : createChronicleClient(options)
  }

  private async dump(value: unknown): Promise<Serialized> {
    const [type, bytes] = await this.serde.dumpsTyped(value)
    return { type, data: Buffer.from(bytes).toString("base64") }
  }

  private load(value: Serialized): Promise<unknown> {
    return this.serde.loadsTyped(value.type, new Uint8Array(Buffer.from(value.data, "base64")))
  }

  private knownKey(threadId: string, checkpointNs: string, channel: string) {
    return JSON.stringify([threadId, checkpointNs, channel])
  }

  /** Remembers a list channel's version; the first value stored under a version stays, as on the server. */
  private remember(threadId: string, checkpointNs: string, channel: string, list: KnownList) {
    const key = this.knownKey(threadId, checkpointNs, channel)
    const versions = this.known.get(key) ?? []
    this.known.delete(key)
    if (!versions.some((v) => v.version === list.version)) versions.push(list)
    if (versions.length > KNOWN_VERSIONS) versions.shift()
    this.known.set(key, versions)
    if (this.known.size > KNOWN_CHANNELS) this.known.delete(this.known.keys().next().value!)
  }

  private forgetThread(threadId: string) {
    for (const key of this.known.keys()) {
      if ((JSON.parse(key) as Array<string>)[0] === threadId) this.known.delete(key)
    }
  }

  /**
   * A list channel's value at `version`: the items after the longest run of items it shares
   * with the start of a remembered version, on top of that version.
   */
  private async listBlob(
    threadId: string,
    checkpointNs: string,
    channel: string,
    version: string,
    value: Array<unknown>,
    useBases: boolean,
  ): Promise<{ blob: ChannelBlob; digests: Array<string> }> {
    const items = await Promise.all(value.map((item) => this.dump(item)))
    const digests = items.map(digestOf)
    let base: KnownList | undefined
    let keep = 0
    const known = useBases ? (this.known.get(this.knownKey(threadId, checkpointNs, channel)) ?? []) : []
    for (const candidate of known) {
      if (candidate.version === version) continue
      let shared = 0
      const most = Math.min(candidate.digests.length, digests.length)
      while (shared < most && candidate.digests[shared] === digests[shared]) shared++
      if (shared > keep) {
        base = candidate
        keep = shared
      }
    }
    return {
      blob: {
        channel,
        version,
        list: { base: base?.version ?? null, keep, items: items.slice(keep) },
      },
      digests,
    }
  }

  /** Metadata travels as JSON, so the server can filter on it. */
  private async dumpMetadata(metadata: CheckpointMetadata): Promise<Record<string, never>> {
    const [type, bytes] = await this.serde.dumpsTyped(metadata)
    if (type !== "json") throw new Error(`checkpoint metadata must serialize to JSON, not ${type}`)
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, never>
  }

  /** `remember`: keep the digests of its lists, as bases for the next puts (a graph resuming from it). */
  private async toTuple(stored: StoredTuple, remember = false): Promise<CheckpointTuple> {
    const checkpoint = (await this.load(stored.checkpoint)) as Checkpoint
    const channelValues: Record<string, unknown> = {}
    for (const blob of stored.blobs) {
      if ("items" in blob) {
        channelValues[blob.channel] = await Promise.all(blob.items.map((item) => this.load(item)))
        if (remember)
          this.remember(stored.threadId, stored.checkpointNs, blob.channel, {
            version: blob.version,
            digests: blob.items.map(digestOf),
          })
      } else if (blob.value.type !== EMPTY) {
        channelValues[blob.channel] = await this.load(blob.value)
      }
    }
    checkpoint.channel_values = channelValues
    if (checkpoint.v < 4 && stored.parentCheckpointId !== null) {
      await this.migratePendingSends(checkpoint, stored)
    }
    const pendingWrites: Array<CheckpointPendingWrite> = []
    for (const write of stored.writes) {
      pendingWrites.push([write.taskId, write.channel, await this.load(write.value)])
    }
    const configurable = {
      thread_id: stored.threadId,
      checkpoint_ns: stored.checkpointNs,
      checkpoint_id: stored.checkpointId,
    }
    return {
      config: { configurable },
      checkpoint,
      metadata: (await this.serde.loadsTyped("json", JSON.stringify(stored.metadata))) as CheckpointMetadata,
      pendingWrites,
      ...(stored.parentCheckpointId === null
        ? {}
        : { parentConfig: { configurable: { ...configurable, checkpoint_id: stored.parentCheckpointId } } }),
    }
  }

  /**
   * Checkpoints older than format 4 kept pending sends as writes to TASKS on their parent;
   * format 4 keeps them as a channel. Reads convert, as LangGraph's own savers do.
   */
  private async migratePendingSends(checkpoint: Checkpoint, stored: StoredTuple) {
    const parent = await this.client.graphs.getTuple.query({
      threadId: stored.threadId,
      checkpointNs: stored.checkpointNs,
      checkpointId: stored.parentCheckpointId!,
    })
    const sends: Array<unknown> = []
    for (const write of parent?.writes ?? []) {
      if (write.channel === TASKS) sends.push(await this.load(write.value))
    }
    checkpoint.channel_values[TASKS] = sends
    const versions = Object.values(checkpoint.channel_versions)
    checkpoint.channel_versions[TASKS] =
      versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined)
  }

  /**
   * Channel versions are a counter plus a random fraction below one half: a channel's value is
   * stored once per version, and two branches of a thread (a fork from an earlier checkpoint)
   * must never give different values the same version, which plain counters would (both
   * branches count 4, 5, …). Each version is still greater than the one before it.
   */
  override getNextVersion(current: number | undefined): number {
    const counter = current === undefined ? 0 : Math.trunc(Number(current)) || 0
    return counter + 1 + Math.random() / 2
  }

  override async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const threadId = threadIdOf(config)
    if (threadId === undefined) return undefined
    const checkpointId = getCheckpointId(config)
    const stored = await this.client.graphs.getTuple.query({
      threadId,
      checkpointNs: config.configurable?.checkpoint_ns ?? "",
      ...(checkpointId ? { checkpointId } : {}),
    })
    return stored === null ? undefined : this.toTuple(stored, true)
  }

  override async *list(
    config: RunnableConfig,
    options: CheckpointListOptions = {},
  ): AsyncGenerator<CheckpointTuple> {
    const { limit, before, filter } = options
    const threadId = threadIdOf(config)
    const checkpointNs: string | undefined = config.configurable?.checkpoint_ns
    const checkpointId: string | undefined = config.configurable?.checkpoint_id
    const beforeId: string | undefined = before?.configurable?.checkpoint_id
    let remaining = limit ?? Number.POSITIVE_INFINITY
    let cursor: string | null = null
    while (remaining > 0) {
      const page: RouterOutputs["graphs"]["list"] = await this.client.graphs.list.query({
        ...(threadId === undefined ? {} : { threadId }),
        ...(checkpointNs === undefined ? {} : { checkpointNs }),
        ...(checkpointId ? { checkpointId } : {}),
        ...(beforeId ? { before: beforeId } : {}),
        ...(filter === undefined ? {} : { filter }),
        limit: Math.min(remaining, PAGE_SIZE),
        cursor,
      })
      for (const stored of page.items) {
        yield await this.toTuple(stored)
        remaining -= 1
      }
      if (page.nextCursor === null) return
      cursor = page.nextCursor
    }
  }

  override async put(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions,
  ): Promise<RunnableConfig> {
    if (config.configurable === undefined) throw missing("configurable", "put a checkpoint")
    const threadId = threadIdOf(config)
    if (threadId === undefined) throw missing("thread_id", "put a checkpoint")
    const checkpointNs: string = config.configurable.checkpoint_ns ?? ""
    const parentCheckpointId: string | undefined = config.configurable.checkpoint_id
    // The checkpoint is stored without its values; each channel's value is stored once per
    // version, and only for the channels that changed (newVersions); a list as what it added.
    const { channel_values: values, ...rest } = copyCheckpoint(checkpoint)
    const blobsOf = (useBases: boolean) =>
      Promise.all(
        Object.entries(newVersions).map(async ([channel, version]) => {
          const value = Object.hasOwn(values, channel) ? values[channel] : undefined
          if (isList(value)) {
            return this.listBlob(threadId, checkpointNs, channel, String(version), value, useBases)
          }
          const blob: ChannelBlob = {
            channel,
            version: String(version),
            value: value === undefined ? { type: EMPTY, data: "" } : await this.dump(value),
          }
          return { blob, digests: undefined }
        }),
      )
    const put = {
      threadId,
      checkpointNs,
      checkpointId: checkpoint.id,
      parentCheckpointId: parentCheckpointId ?? null,
      checkpoint: await this.dump(rest),
      metadata: await this.dumpMetadata(metadata),
      channelVersions: Object.fromEntries(
        Object.entries(checkpoint.channel_versions).map(([channel, version]) => [channel, String(version)]),
      ),
    }
    const send = async (useBases: boolean) => {
      const blobs = await blobsOf(useBases)
      const idempotencyKey = randomUUID()
      await resend(() =>
        this.client.graphs.putCheckpoint.mutate({ ...put, blobs: blobs.map((b) => b.blob), idempotencyKey }),
      )
      return blobs
    }
    // A base the server no longer holds (the thread was deleted meanwhile): send whole lists.
    const blobs = await send(true).catch((error: unknown) => {
      if (!isNotFound(error)) throw error
      this.forgetThread(threadId)
      return send(false)
    })
    for (const { blob, digests } of blobs) {
      if (digests !== undefined)
        this.remember(threadId, checkpointNs, blob.channel, { version: blob.version, digests })
    }
    return {
      configurable: { thread_id: threadId, checkpoint_ns: checkpointNs, checkpoint_id: checkpoint.id },
    }
  }

  override async putWrites(
    config: RunnableConfig,
    writes: Array<PendingWrite>,
    taskId: string,
    taskPath?: string,
  ): Promise<void> {
    const threadId = threadIdOf(config)
    if (threadId === undefined) throw missing("thread_id", "put writes")
    const checkpointId: string | undefined = config.configurable?.checkpoint_id
    if (checkpointId === undefined) throw missing("checkpoint_id", "put writes")
    if (writes.length === 0) return
    const stored = await Promise.all(
      writes.map(async ([channel, value], i) => ({
        idx: WRITES_IDX_MAP[channel] ?? i,
        channel,
        value: await this.dump(value),
      })),
    )
    for (let start = 0; start < stored.length; start += WRITES_PER_CALL) {
      const put = {
        threadId,
        checkpointNs: config.configurable?.checkpoint_ns ?? "",
        checkpointId,
        taskId,
        taskPath: taskPath ?? "",
        writes: stored.slice(start, start + WRITES_PER_CALL),
      }
      const idempotencyKey = randomUUID()
      await resend(() => this.client.graphs.putWrites.mutate({ ...put, idempotencyKey }))
    }
  }

  override async deleteThread(threadId: string): Promise<void> {
    this.forgetThread(String(threadId))
    await resend(() => this.client.graphs.deleteThread.mutate({ threadId: String(threadId) }))
  }
}
