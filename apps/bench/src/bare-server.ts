/**
 * The HTTP baseline: node:http and the database driver, nothing else. It serves the same two
 * calls as `messages.append` and `messages.list` with the same statements Chronicle's domain
 * runs (read the session row, append through chronicle.append_events, read the new row back;
 * read the session row, read one page), so the difference to the real server is the
 * framework: tRPC, validation, Effect, auth and the client.
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

const SESSION = `select s.id::text as id, s.version, s.message_count, s.owner_id::text as owner_id
  from chronicle.sessions s where s.id = $1::uuid`

export const makeBareHandler = (db: Driver) => {
  const append = async (input: Record<string, unknown>) => {
    const sessionId = String(input.sessionId)
    const [session] = await db.query<{ version: number; message_count: number }>(SESSION, [sessionId])
    if (session === undefined) return { status: 404, body: { error: "NOT_FOUND" } }
    const messageId = randomUUID()
    const event = {
      event_id: randomUUID(),
      type: "MessageAppended",
      schema_version: 1,
      data: {
        messageId,
        seq: session.message_count + 1,
        role: String(input.role),
        content: String(input.content),
        metadata: {},
        createdAt: null,
      },
      metadata: { actor: "bare" },
    }
    await db.query(
      `select event_id::text, stream_version, global_position, recorded_at, duplicate
         from chronicle.append_events($1, $2, $3, $4::text::jsonb, $5::uuid)`,
      [`session-${sessionId}`, "session", session.version, JSON.stringify([event]), null],
    )
    const [row] = await db.query(
      `select t.*, t.session_id::text as session_id, t.message_id::text as message_id
         from chronicle.messages t where t.session_id = $1::uuid and t.message_id = any($2::uuid[])
        order by t.seq`,
      [sessionId, `{${messageId}}`],
    )
    return { status: 200, body: row }
  }

  const list = async (input: Record<string, unknown>) => {
    const sessionId = String(input.sessionId)
    const limit = Number(input.limit ?? 50)
    const after = input.after === undefined ? null : Number(input.after)
    const [session] = await db.query(SESSION, [sessionId])
    if (session === undefined) return { status: 404, body: { error: "NOT_FOUND" } }
    const rows = await db.query<{ seq: number }>(
      `select t.*, t.session_id::text as session_id, t.message_id::text as message_id
         from chronicle.sessions s join chronicle.messages t on t.session_id = s.id
        where s.id = $1::uuid and s.effective @> t.version and ($2::int is null or t.seq > $2::int)
        order by t.seq limit $3`,
      [sessionId, after, limit + 1],
    )
    return {
      status: 200,
      body: { items: rows.slice(0, limit), nextCursor: rows.length > limit ? rows[limit - 1]!.seq : null },
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
