import { randomUUID } from "node:crypto"
import {
  allPages,
  type ChronicleClient,
  type ChronicleClientOptions,
  createChronicleClient,
  isChronicleError,
  type RouterOutputs,
  resend,
} from "@chronicle/client"
import type { AgentInputItem, Session } from "@openai/agents-core"

type Message = RouterOutputs["messages"]["list"]["items"][number]
type Role = "user" | "assistant" | "system" | "tool"

/** Largest page of messages one request reads, and largest batch one append writes. */
const PAGE = 500
/** Attempts of a pop or clear that lost a race with another writer. */
const CONFLICT_ATTEMPTS = 5

export type ChronicleSessionOptions = ({ readonly client: ChronicleClient } | ChronicleClientOptions) & {
  /**
   * The conversation's key, unique per owner: the Chronicle session is found or created by it
   * (`sessions.ensure`), so the same key reaches the same history from any process.
   * Default: a new random key.
   */
  readonly key?: string | undefined
  /** Title of the Chronicle session when it is created. */
  readonly title?: string | undefined
}

/** Where a piece of a message's text comes from in its item: `content.slice(start, start + length)`. */
interface TextSlot {
  readonly path: ReadonlyArray<string | number>
  readonly start: number
  readonly length: number
}

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/**
 * How an item reads as a Chronicle message: a role, a readable text, and where in the item
 * each piece of that text came from (so the item can be stored without it, and the text is
 * kept once).
 */
const readingOf = (item: AgentInputItem): { role: Role; content: string; slots: Array<TextSlot> } => {
  const it = item as { type?: string; role?: string; content?: unknown; name?: string; arguments?: unknown }
  if (it.role === "user" || it.role === "assistant" || it.role === "system") {
    if (typeof it.content === "string") {
      return {
        role: it.role,
        content: it.content,
        slots: [{ path: ["content"], start: 0, length: it.content.length }],
      }
    }
    let content = ""
    const slots: Array<TextSlot> = []
    if (Array.isArray(it.content)) {
      for (const [i, part] of it.content.entries()) {
        if (typeof part !== "object" || part === null) continue
        const key =
          "text" in part && typeof part.text === "string"
            ? "text"
            : "refusal" in part && typeof part.refusal === "string"
              ? "refusal"
              : undefined
        if (key === undefined) continue
        const text = (part as Record<string, string>)[key]!
        slots.push({ path: ["content", i, key], start: content.length, length: text.length })
        content += text
      }
    }
    return { role: it.role, content, slots }
  }
  switch (it.type) {
    case "function_call": {
      const name = it.name ?? "tool"
      if (typeof it.arguments !== "string") return { role: "assistant", content: `${name}()`, slots: [] }
      return {
        role: "assistant",
        content: `${name}(${it.arguments})`,
        slots: [{ path: ["arguments"], start: name.length + 1, length: it.arguments.length }],
      }
    }
    case "function_call_result": {
      const output = (item as { output?: unknown }).output
      if (typeof output === "string") {
        return {
          role: "tool",
          content: output,
          slots: [{ path: ["output"], start: 0, length: output.length }],
        }
      }
      if (
        typeof output === "object" &&
        output !== null &&
        "text" in output &&
        typeof output.text === "string"
      ) {
        return {
          role: "tool",
          content: output.text,
          slots: [{ path: ["output", "text"], start: 0, length: output.text.length }],
        }
      }
      const text =
        typeof output === "object" && output !== null && "text" in output
          ? String(output.text)
          : JSON.stringify(output ?? null)
      return { role: "tool", content: text, slots: [] }
    }
    default:
      return { role: "assistant", content: "", slots: [] }
  }
}

/** How an item reads as a Chronicle message: a role and a readable text. */
export const messageOf = (item: AgentInputItem): { role: Role; content: string } => {
  const { role, content } = readingOf(item)
  return { role, content }
}

/** A copy of `value` with the string at `path` replaced by `replace(old)`. */
const withAt = (value: Json, path: ReadonlyArray<string | number>, replace: (old: Json) => Json): Json => {
  if (path.length === 0) return replace(value)
  const [head, ...rest] = path
  if (Array.isArray(value) && typeof head === "number") {
    return value.map((v, i) => (i === head ? withAt(v, rest, replace) : v))
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value) && typeof head === "string") {
    const record = value as { readonly [key: string]: Json }
    return { ...record, [head]: withAt(record[head] ?? null, rest, replace) }
  }
  return value
}

/**
 * The message that stores an item: its text once, in `content`; the item without that text
 * in `metadata.item`, and where the text goes back in `metadata.itemText`.
 */
const storedMessage = (item: AgentInputItem) => {
  const { role, content, slots } = readingOf(item)
  let stored = JSON.parse(JSON.stringify(item)) as Json
  for (const slot of slots) stored = withAt(stored, slot.path, () => "")
  return {
    role,
    content,
    metadata: { item: stored, ...(slots.length === 0 ? {} : { itemText: slots }) } as unknown as Record<
      string,
      never
    >,
  }
}

/** The item a message stores, its text put back where it came from. */
const itemOf = (message: Message): AgentInputItem => {
  const metadata = message.metadata as unknown as { item: Json; itemText?: ReadonlyArray<TextSlot> }
  let item = metadata.item
  for (const slot of metadata.itemText ?? []) {
    item = withAt(item, slot.path, () => message.content.slice(slot.start, slot.start + slot.length))
  }
  return item as unknown as AgentInputItem
}

/**
 * An OpenAI Agents SDK `Session` kept in Chronicle. Each item is a message of a Chronicle
 * session: its readable text in `content`, stored once, and the rest of the item's JSON in
 * `metadata.item` (with `metadata.itemText` saying where the text goes back), so history
 * reloads exactly as the SDK wrote it. Text over the server's large-value threshold (a big
 * tool output) is kept in Chronicle's blob store and read back transparently. `popItem` and `clearSession` are rollbacks: events that revert
 * the session's content; the log keeps everything, and the session can still be read as of
 * any earlier version, or forked from one.
 *
 *   const session = new ChronicleSession({ url, token, key: "support-ticket-4711" })
 *   await run(agent, "Where is my order?", { session })
 */
export class ChronicleSession implements Session {
  readonly client: ChronicleClient
  readonly key: string
  private readonly title: string | undefined
  private sessionId: Promise<string> | undefined

  constructor(options: ChronicleSessionOptions = { url: "http://127.0.0.1:4000" }) {
    this.client = "client" in options ? options.client : createChronicleClient(options)
    this.key = options.key ?? randomUUID()
    this.title = options.title
  }

  /** The Chronicle session's id, found or created by key on first use. */
  getSessionId(): Promise<string> {
    this.sessionId ??= this.client.sessions.ensure
      .mutate({ externalKey: this.key, ...(this.title === undefined ? {} : { title: this.title }) })
      .then((r) => r.session.id)
      .catch((error: unknown) => {
        this.sessionId = undefined
        throw error
      })
    return this.sessionId
  }

  /**
   * The session's effective messages, oldest first, with the version they were read as of:
   * all of them, or only the last `last`, read newest first (`order: "desc"`) page by page
   * until there are enough, so the cost follows `last`, not the conversation's length.
   */
  private async messages(
    last?: number,
  ): Promise<{ readonly items: ReadonlyArray<Message>; readonly version: number }> {
    const sessionId = await this.getSessionId()
    // The version first: a message appended while we page cannot make the rollback below it stale.
    const { version } = await this.client.sessions.get.query({ id: sessionId })
    if (last === undefined) {
      const items = await allPages((cursor) =>
        this.client.messages.list.query({ sessionId, asOf: { version }, limit: PAGE, cursor }),
      )
      return { items, version }
    }
    const newestFirst: Array<Message> = []
    let cursor: string | null = null
    do {
      const page: { readonly items: ReadonlyArray<Message>; readonly nextCursor: string | null } =
        await this.client.messages.list.query({
          sessionId,
          asOf: { version },
          order: "desc",
          limit: Math.min(PAGE, last - newestFirst.length),
          cursor,
        })
      newestFirst.push(...page.items)
      cursor = page.nextCursor
    } while (cursor !== null && newestFirst.length < last)
    return { items: newestFirst.reverse(), version }
  }

  async getItems(limit?: number): Promise<Array<AgentInputItem>> {
    if (limit !== undefined && limit <= 0) return []
    const { items } = await this.messages(
      limit === undefined || !Number.isFinite(limit) ? undefined : Math.floor(limit),
    )
    return items.map(itemOf)
  }

  async addItems(items: Array<AgentInputItem>): Promise<void> {
    if (items.length === 0) return
    const sessionId = await this.getSessionId()
    for (let start = 0; start < items.length; start += PAGE) {
      const batch = items.slice(start, start + PAGE)
      const messages = batch.map(storedMessage)
      // One key per batch: a retry after a lost response records nothing twice.
      const idempotencyKey = randomUUID()
      await resend(() => this.client.messages.appendMany.mutate({ sessionId, messages, idempotencyKey }))
    }
  }

  /**
   * Rolls the session back to the version `to` picks from the last item (nothing when it
   * picks none), expecting the session not to have moved since it was read; another writer's
   * append makes it read and decide again.
   */
  private async rollBack(
    to: (last: Message | undefined) => { readonly toVersion: number; readonly item?: Message } | undefined,
  ) {
    const sessionId = await this.getSessionId()
    for (let attempt = 1; ; attempt++) {
      // Both moves need only the last item (whether there is one, and its version).
      const { items, version } = await this.messages(1)
      const target = to(items.at(-1))
      if (target === undefined) return undefined
      try {
        await this.client.sessions.rollback.mutate({
          id: sessionId,
          toVersion: target.toVersion,
          expectedVersion: version,
        })
        return target.item
      } catch (error) {
        const conflict = isChronicleError(error) && error.data?.code === "CONFLICT"
        if (!conflict || attempt >= CONFLICT_ATTEMPTS) throw error
      }
    }
  }

  async popItem(): Promise<AgentInputItem | undefined> {
    // The version before the last item's: exactly that item is reverted.
    const popped = await this.rollBack((last) =>
      last === undefined ? undefined : { toVersion: last.version - 1, item: last },
    )
    return popped === undefined ? undefined : itemOf(popped)
  }

  async clearSession(): Promise<void> {
    // Version 1 is the session's start: no item is effective as of it.
    await this.rollBack((last) => (last === undefined ? undefined : { toVersion: 1 }))
  }
}
