import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { createServer, type Server, type Socket } from "node:net"
import { fileURLToPath } from "node:url"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url))

const NO_AUTH = { SUPABASE_URL: "", SUPABASE_JWT_SECRET: "", CHRONICLE_SERVICE_KEY: "" }

const children = new Set<ChildProcess>()

const start = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  })
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}

// A test that fails half-way must not leave its server running.
afterEach(() => {
  for (const child of children) child.kill("SIGKILL")
})

const output = (child: ChildProcess) => {
  let text = ""
  child.stdout?.on("data", (chunk) => {
    text += chunk
  })
  child.stderr?.on("data", (chunk) => {
    text += chunk
  })
  return () => text
}

const waitFor = async (read: () => string, pattern: RegExp, child: ChildProcess) => {
  for (let i = 0; i < 600; i++) {
    const match = pattern.exec(read())
    if (match) return match
    if (child.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`never printed ${pattern}; output:\n${read()}`)
}

describe("chronicle CLI", () => {
  it("serves the API in dev mode on the in-memory database, and on SIGTERM ends subscriptions and exits 0", async () => {
    const child = start(["serve"], { ...NO_AUTH, DATABASE_URL: "memory://", PORT: "0" })
    const read = output(child)
    const [, url] = await waitFor(read, /listening on (http:\/\/\S+)/, child)
    expect(read()).toContain("NOTHING PERSISTS")
    expect(read()).toContain("Dev mode: no auth is configured")
    const health = await fetch(`${url}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ ok: true })
    expect((await fetch(`${url}/nope`)).status).toBe(404)
    // Dev mode: no token needed.
    const page = await fetch(`${url}/trpc/events.readAll`)
    expect(page.status).toBe(200)
    expect(await page.json()).toMatchObject({ result: { data: { items: [], nextCursor: null } } })
    // One JSON log line per request.
    await waitFor(read, /"message":"request".*"path":"\/trpc\/events.readAll"/, child)

    const subscription = await fetch(`${url}/trpc/events.subscribe`)
    expect(subscription.headers.get("content-type")).toMatch(/text\/event-stream/)
    const body = subscription.text()
    await new Promise((r) => setTimeout(r, 200))
    child.kill("SIGTERM")
    const [code] = await once(child, "exit")
    expect(code).toBe(0)
    const events = await body
    expect(events).toContain("event: serialized-error")
    expect(events).toContain("The server is shutting down; reconnect to resume from your last event id")
  })

  it("refuses to start in dev mode on an address other machines can reach", async () => {
    const child = start(["serve"], { ...NO_AUTH, DATABASE_URL: "memory://", PORT: "0", HOST: "0.0.0.0" })
    const read = output(child)
    const [code] = await once(child, "exit")
    expect(code).toBe(1)
    expect(read().trim()).toMatch(
      /^chronicle: HOST=0\.0\.0\.0 is not a loopback address, and no auth is configured/,
    )
  })

  it("rejects a bad configuration with one clear line and exit code 1", async () => {
    const child = start(["status"], { DATABASE_URL: "mysql://nope" })
    const read = output(child)
    const [code] = await once(child, "exit")
    expect(code).toBe(1)
    expect(read().trim()).toMatch(/^chronicle: DATABASE_URL must be postgres:\/\/…/)
  })

  describe("a database host that accepts the connection and never answers", () => {
    let silent: Server
    let port: number
    const held: Array<Socket> = []
    beforeAll(async () => {
      // Accepts TCP and says nothing, as a firewall's black hole or a wrong service can.
      silent = createServer((socket) => held.push(socket))
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
      port = (silent.address() as { port: number }).port
    })
    afterAll(async () => {
      for (const socket of held) socket.destroy()
      await new Promise((resolve) => silent.close(resolve))
    })

    it.each([["status"], ["serve"]])(
      "`chronicle %s` gives up with one line naming the host and what to check",
      async (command) => {
        const child = start([command], {
          ...NO_AUTH,
          DATABASE_URL: `postgres://postgres:secret@127.0.0.1:${port}/app`,
          PORT: "0",
        })
        const read = output(child)
        const [code] = await once(child, "exit")
        expect(code).toBe(1)
        const lines = read().trim().split("\n")
        expect(lines).toHaveLength(1)
        expect(lines[0]).toMatch(
          new RegExp(
            `^chronicle: cannot connect to the database at 127\\.0\\.0\\.1:${port}: it accepted the connection but did not answer within 10 s`,
          ),
        )
        expect(lines[0]).toMatch(/check that DATABASE_URL names a PostgreSQL server/)
        expect(lines[0]).not.toContain("secret")
        expect(lines[0]).not.toContain("CONNECT_TIMEOUT")
      },
    )
  })

  it("rejects an unknown command with the usage and exit code 2", async () => {
    const child = start(["frobnicate"], {})
    const read = output(child)
    const [code] = await once(child, "exit")
    expect(code).toBe(2)
    expect(read()).toContain('unknown command "frobnicate"')
    expect(read()).toContain("Usage: chronicle <command>")
  })
})
