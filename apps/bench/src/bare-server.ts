/**
 * The HTTP baseline: node:http and the database driver, nothing else. It serves the same two
 * calls as `messages.append` and `messages.list` with the statements Chronicle's domain runs
 * for them: an append is one call of chronicle.append_events expecting the session's version,
 * which it reads once and then keeps, as the domain's command cache does (the answer is built
 * from what the append returned, not read back); a page is one statement that finds the
 * session and its first rows together. The difference to the real server is the framework:
 * tRPC, validation, Effect, authorization, the byte budget and the client.
 */
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { type Driver, makePostgresDriver } from "@chronicle/store"

const body = async (req: IncomingMessage) => {
  const chunks: Array<Buffer> = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>
}

const SESSION = `select s.version, s.message_count from chronicle.sessions s where s.id = $1::uuid`

/** A page: the session's row (none: no such session) with its first rows, or those after a seq. */
const page = (cursor: boolean) => `select s.id::text as session, t.*, t.session_id::text as session_id,
         t.message_id::text as message_id
    from chronicle.sessions s
    left join lateral (
      select t.* from chronicle.messages t
       where t.session_id = s.id and s.effective @> t.version ${cursor ? "and t.seq > $3::int" : ""}
       order by t.seq limit $2) t on true
   where s.id = $1::uuid
   order by t.seq`

export const makeBareHandler = (db: Driver) => {
  // Each session's version and message count as its last append left them.
  const known = new Map<string, { version: number; messages: number }>()

  const append = async (input: Record<string, unknown>) => {
    const sessionId = String(input.sessionId)
    let state = known.get(sessionId)
    if (state === undefined) {
      const [session] = await db.query<{ version: number; message_count: number }>(SESSION, [sessionId])
      if (session === undefined) return { status: 404, body: { error: "NOT_FOUND" } }
      state = { version: Number(session.version), messages: Number(session.message_count) }
    }
    const message = {
      messageId: randomUUID(),
      seq: state.messages + 1,
      role: String(input.role),
      content: String(input.content),
      metadata: {},
      createdAt: null,
    }
    const event = {
      event_id: randomUUID(),
      type: "MessageAppended",
      schema_version: 1,
      data: message,
      metadata: { actor: "bare" },
    }
    try {
      const [row] = await db.query<{ stream_version: number; recorded_at: Date }>(
        `select event_id::text, stream_version, global_position::text, recorded_at, duplicate
           from chronicle.append_events($1, $2, $3, $4::text::jsonb, $5::uuid)`,
        [`session-${sessionId}`, "session", state.version, JSON.stringify([event]), null],
      )
      known.set(sessionId, { version: row!.stream_version, messages: message.seq })
      const { messageId, createdAt: _, ...rest } = message
      return {
        status: 200,
        body: {
          id: messageId,
          sessionId,
          ...rest,
          version: row!.stream_version,
          createdAt: row!.recorded_at,
        },
      }
    } catch (error) {
      known.delete(sessionId)
      throw error
    }
  }

  const list = async (input: Record<string, unknown>) => {
    const sessionId = String(input.sessionId)
    const limit = Number(input.limit ?? 50)
    const after = input.after === undefined ? null : Number(input.after)
    const rows = await db.query<{ seq: number | null }>(
      page(after !== null),
      after === null ? [sessionId, limit + 1] : [sessionId, limit + 1, after],
    )
    if (rows.length === 0) return { status: 404, body: { error: "NOT_FOUND" } }
    const items = rows.filter((r) => r.seq !== null)
    return {
      status: 200,
      body: { items: items.slice(0, limit), nextCursor: items.length > limit ? items[limit - 1]!.seq : null },
    }
  }

  return (req: IncomingMessage, res: import("node:http").ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost")
    const reply = (status: number, payload: unknown) => {
      const text = JSON.stringify(payload)
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
      res.end(text)
    }
    const handle = async () => {
      if (req.method === "POST" && url.pathname === "/append") return append(await body(req))
      if (req.method === "GET" && url.pathname === "/list")
        return list(JSON.parse(url.searchParams.get("input") ?? "{}") as Record<string, unknown>)
      return { status: 404, body: { error: "no such route" } }
    }
    handle().then(
      (r) => reply(r.status, r.body),
      (error: unknown) => reply(500, { error: String(error) }),
    )
  }
}

/** Listens on a free loopback port; resolves with the URL and a way to stop. */
export const startBareServer = async (
  db: Driver,
): Promise<{ url: string; server: Server; close: () => Promise<void> }> => {
  const server = createServer(makeBareHandler(db))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

// Run as its own process (the Postgres benchmark): print the URL, serve until stdin closes.
if (import.meta.main) {
  const url = process.env.DATABASE_URL
  if (!url) throw new Error("DATABASE_URL is required")
  const db = makePostgresDriver({ url, max: 10 })
  const running = await startBareServer(db)
  console.log(`listening on ${running.url}`)
  process.stdin.resume()
  process.stdin.on("end", async () => {
    await running.close()
    await db.close()
    process.exit(0)
  })
}
