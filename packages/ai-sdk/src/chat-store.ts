import { createHash, randomUUID } from "node:crypto"
import {
  allPages,
  type ChronicleClient,
  type ChronicleClientOptions,
  createChronicleClient,
  isChronicleError,
  type RouterOutputs,
} from "@chronicle/client"
import { type UIMessage, validateUIMessages } from "ai"

type Message = RouterOutputs["messages"]["list"]["items"][number]
type Session = RouterOutputs["sessions"]["get"]
type ValidateOptions = Omit<Parameters<typeof validateUIMessages>[0], "messages">

/** Largest page of messages one request reads, and largest batch one append writes. */
const PAGE = 500
/** Attempts of a save that lost a race with another writer of the same chat. */
const CONFLICT_ATTEMPTS = 5

export type ChronicleChatStoreOptions = ({ readonly client: ChronicleClient } | ChronicleClientOptions) & {
  /**
   * What `loadChat` validates stored messages against (`validateUIMessages`): your
   * `metadataSchema`, `dataSchemas` and `tools`. Without them only the messages' shape is checked.
   */
  readonly validation?: ValidateOptions | undefined
}

const externalKey = (chatId: string) => `ai-sdk-chat:${chatId}`

/** The readable text of a message: its text parts, end to end. */
const textOf = (message: UIMessage) =>
  message.parts
    .filter((p): p is Extract<UIMessage["parts"][number], { type: "text" }> => p.type === "text")
    .map((p) => p.text)
    .join("")

type StoredMetadata = {
  readonly uiMessage: { readonly parts?: ReadonlyArray<Record<string, unknown>> }
  /** Lengths of the text parts' texts, in order, which `content` holds end to end. */
  readonly textLengths?: ReadonlyArray<number>
}

/**
 * A message as stored: its text parts' text goes in `content`, once; the rest of the message
 * (every other part, where the text parts sit, ids, metadata) in `metadata.uiMessage`.
 */
const toStored = (message: UIMessage) => {
  const textLengths: Array<number> = []
  const parts = message.parts.map((part) => {
    if (part.type !== "text") return part
    const { text, ...rest } = part
    textLengths.push(text.length)
    return rest
  })
  return {
    role: message.role,
    content: textOf(message),
    metadata: {
      uiMessage: JSON.parse(JSON.stringify({ ...message, parts })) as Record<string, never>,
      textLengths,
    },
  }
}

/** The UIMessage a stored message holds (one stored before `textLengths` has its text inside). */
const fromStored = (message: Message): unknown => {
  const { uiMessage, textLengths } = message.metadata as unknown as StoredMetadata
  if (!Array.isArray(textLengths)) return uiMessage
  let at = 0
  let index = 0
  const parts = (uiMessage.parts ?? []).map((part) => {
    if (part.type !== "text") return part
    const length = textLengths[index++] ?? 0
    const text = message.content.slice(at, at + length)
    at += length
    return { ...part, text }
  })
  return { ...uiMessage, parts }
}

/** JSON as stored: what the message is, key order aside. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )

/**
 * Chat persistence for the Vercel AI SDK in Chronicle: each chat is a Chronicle session (found
 * by the chat id), each `UIMessage` a message: its text in the content, the rest of it (the
 * other parts, where the text parts sit) in the metadata, so the text is stored once.
 *
 * `saveChat` makes the stored chat equal the list it is given: messages already stored are
 * left alone (saving the same list twice records nothing), new ones are appended, and when the
 * list diverges from what is stored (a regenerated answer, an edited message) the session is
 * rolled back to where they part and the rest appended: the replaced messages stay in the log.
 */
export class ChronicleChatStore {
  readonly client: ChronicleClient
  private readonly validation: ValidateOptions | undefined

  constructor(options: ChronicleChatStoreOptions) {
    this.client = "client" in options ? options.client : createChronicleClient(options)
    this.validation = options.validation
  }

  /** A message id for `toUIMessageStreamResponse({ generateMessageId })`: ids assigned on the server. */
  readonly generateMessageId = (): string => randomUUID()

  /** A new, empty chat; returns its id. */
  async createChat(): Promise<string> {
    const id = randomUUID()
    await this.session(id)
    return id
  }

  /** The Chronicle session that holds the chat (created when first needed). */
  async session(chatId: string): Promise<Session> {
    const { session } = await this.client.sessions.ensure.mutate({ externalKey: externalKey(chatId) })
    return session
  }

  private stored(sessionId: string, version: number): Promise<Array<Message>> {
    return allPages((cursor) =>
      this.client.messages.list.query({ sessionId, asOf: { version }, limit: PAGE, cursor }),
    )
  }

  /** The chat's messages, validated with `validateUIMessages`; [] for a chat with none. */
  async loadChat<M extends UIMessage = UIMessage>(chatId: string): Promise<Array<M>> {
    let session: RouterOutputs["sessions"]["getByKey"]
    try {
      session = await this.client.sessions.getByKey.query({ externalKey: externalKey(chatId) })
    } catch (error) {
      if (isChronicleError(error) && error.data?.code === "NOT_FOUND") return []
      throw error
    }
    const messages = (await this.stored(session.id, session.version)).map(fromStored)
    if (messages.length === 0) return []
    // The schemas are the app's, for its own message type M.
    return validateUIMessages<M>({ ...this.validation, messages } as Parameters<
      typeof validateUIMessages<M>
    >[0])
  }

  /** Makes the stored chat equal `messages`; returns how many messages it appended. */
  async saveChat({
    chatId,
    id,
    messages,
  }: {
    readonly chatId?: string
    readonly id?: string
    readonly messages: ReadonlyArray<UIMessage>
  }): Promise<{ readonly appended: number; readonly replaced: number }> {
    const key = chatId ?? id
    if (key === undefined) throw new Error("saveChat needs the chat's id")
    // A message the client sent without an id gets one here, so it can be recognised next time.
    const wanted = messages.map((m) => (m.id ? m : { ...m, id: this.generateMessageId() }))
    for (let attempt = 1; ; attempt++) {
      const session = await this.session(key)
      const stored = await this.stored(session.id, session.version)
      let common = 0
      while (
        common < stored.length &&
        common < wanted.length &&
        canonical(fromStored(stored[common]!)) === canonical(wanted[common])
      ) {
        common++
      }
      const replaced = stored.length - common
      const fresh = wanted.slice(common)
      if (replaced === 0 && fresh.length === 0) return { appended: 0, replaced: 0 }
      try {
        let version = session.version
        if (replaced > 0) {
          // Back to just before the first stored message that differs; the log keeps it.
          const rolled = await this.client.sessions.rollback.mutate({
            id: session.id,
            toVersion: stored[common]!.version - 1,
            expectedVersion: version,
          })
          version = rolled.version
        }
        for (let start = 0; start < fresh.length; start += PAGE) {
          const batch = fresh.slice(start, start + PAGE)
          const result = await this.client.messages.appendMany.mutate({
            sessionId: session.id,
            messages: batch.map(toStored),
            expectedVersion: version,
            // A retry of this very append (same chat state, same messages) records nothing twice.
            idempotencyKey: createHash("sha256")
              .update(`${session.id}\u0000${version}\u0000${canonical(batch)}`)
              .digest("hex"),
          })
          version = Math.max(version, ...result.items.map((m) => m.version))
        }
        return { appended: fresh.length, replaced }
      } catch (error) {
        const conflict = isChronicleError(error) && error.data?.code === "CONFLICT"
        if (!conflict || attempt >= CONFLICT_ATTEMPTS) throw error
      }
    }
  }
}
