import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url))

const start = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
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
  it("serves /healthz on the embedded in-memory database, warns that nothing persists, and stops on SIGTERM", async () => {
    const child = start(["serve"], { DATABASE_URL: "memory://", PORT: "0" })
    const read = output(child)
    const [, url] = await waitFor(read, /listening on (http:\/\/\S+)/, child)
    expect(read()).toContain("NOTHING PERSISTS")
    const health = await fetch(`${url}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ ok: true })
    expect((await fetch(`${url}/nope`)).status).toBe(404)
    child.kill("SIGTERM")
    const [code] = await once(child, "exit")
    expect(code).toBe(0)
  })

  it("rejects a bad configuration with one clear line and exit code 1", async () => {
    const child = start(["status"], { DATABASE_URL: "mysql://nope" })
    const read = output(child)
    const [code] = await once(child, "exit")
    expect(code).toBe(1)
    expect(read().trim()).toMatch(/^chronicle: DATABASE_URL must be postgres:\/\/…/)
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
