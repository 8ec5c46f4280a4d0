import { execFile, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { createChronicleClient } from "@chronicle/client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url))
const NO_AUTH = { SUPABASE_URL: "", SUPABASE_JWT_SECRET: "", CHRONICLE_SERVICE_KEY: "", DATABASE_URL: "" }
const exec = promisify(execFile)

/** Runs the CLI to completion; never throws, so a test can check a failure's exit code and words. */
const cli = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...NO_AUTH, ...env },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/**
 * Starts `chronicle serve` with `env` (its data directory) on a free port; resolves once it
 * listens, with its process id, its URL and a `stop` that ends it (SIGTERM) and waits for it.
 */
const serve = async (env: Record<string, string>) => {
  const server = spawn(process.execPath, [CLI, "serve"], {
    env: { ...process.env, ...NO_AUTH, ...env, PORT: "0", CHRONICLE_LOG_LEVEL: "none" },
    stdio: ["ignore", "pipe", "pipe"],
  })
  let out = ""
  server.stdout.on("data", (chunk) => {
    out += chunk
  })
  const stop = async () => {
    server.kill("SIGTERM")
    await new Promise((resolve) => server.once("exit", resolve))
  }
  let url: string | undefined
  for (let i = 0; i < 600 && url === undefined; i++) {
    url = /listening on (http:\/\/\S+)/.exec(out)?.[1]
    if (url === undefined) await new Promise((r) => setTimeout(r, 100))
  }
  if (url === undefined) {
    await stop()
    throw new Error(`the server did not start:\n${out}`)
  }
  return { pid: server.pid, url, stop }
}

describe("chronicle export, import and rebuild", () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "chronicle-transfer-"))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it("refuses a second process on a data directory in use, releases it on shutdown, and names a bad id", {
    timeout: 240_000,
  }, async () => {
    const source = { CHRONICLE_DATA_DIR: join(dir, "source") }
    const server = await serve(source)
    const url = server.url
    expect(url).toMatch(/^http:\/\//)
    try {
      // Each command that opens the database is refused with one line naming the process that
      // has it open, how to stop it, and the running server's API to use instead.
      for (const command of [["status"], ["rebuild", "--all"], ["export"]]) {
        const busy = await cli(command, source)
        expect(busy.code).toBe(1)
        const lines = busy.stderr.trim().split("\n")
        expect(lines).toHaveLength(1)
        expect(lines[0]).toMatch(
          new RegExp(
            `^chronicle: the embedded database in .* is open in process ${server.pid} \\(.*cli\\.ts serve\\)`,
          ),
        )
        expect(lines[0]).toContain(`stop that process (Ctrl-C where it runs, or kill ${server.pid})`)
        expect(lines[0]).toContain(`use its API at ${url}: the Studio (${url}/studio/)`)
      }
    } finally {
      await server.stop()
    }
    // The server's address file goes with it.
    expect(existsSync(`${source.CHRONICLE_DATA_DIR}.server`)).toBe(false)
    const free = await cli(["status"], source)
    expect(free.code).toBe(0)
    expect(free.stdout).toContain("head: position")
    const bad = await cli(["export", "not-a-uuid"], source)
    expect(bad.code).toBe(1)
    expect(bad.stderr.trim()).toBe("chronicle: not-a-uuid is not a session id (a UUID)")
  })

  it("round-trips through NDJSON: export, import twice (the second writes nothing), rebuild", {
    timeout: 240_000,
  }, async () => {
    const source = { CHRONICLE_DATA_DIR: join(dir, "rt-source") }
    const target = { CHRONICLE_DATA_DIR: join(dir, "rt-target") }
    const server = await serve(source)
    let childId = ""
    let parentId = ""
    let fileId = ""
    try {
      const client = createChronicleClient({ url: server.url })
      // U+2028 and U+2029 stay inside their line of the export.
      const parent = await client.sessions.create.mutate({ title: "parent\u2028line\u2029paragraph" })
      parentId = parent.id
      await client.messages.append.mutate({ sessionId: parent.id, role: "user", content: "one" })
      const checkpoint = await client.checkpoints.create.mutate({ sessionId: parent.id })
      await client.messages.append.mutate({ sessionId: parent.id, role: "user", content: "later" })
      childId = (await client.sessions.fork.mutate({ id: parent.id, checkpointId: checkpoint.id })).id
      await client.messages.append.mutate({ sessionId: childId, role: "assistant", content: "child" })
      const file = await client.files.put.mutate({
        name: "notes.txt",
        mimeType: "text/plain",
        contentBase64: Buffer.from("the bytes of a file").toString("base64"),
      })
      fileId = file.id
      await client.files.attach.mutate({ sessionId: childId, fileId })
    } finally {
      await server.stop()
    }

    const file = join(dir, "rt.ndjson")
    // Named in upper case: the same session.
    const exported = await cli(["export", childId.toUpperCase(), "--out", file], source)
    expect(exported.code).toBe(0)
    expect(exported.stderr).toContain("Exported 8 event(s) of 2 session stream(s) and 1 file(s)")
    const text = await readFile(file, "utf8")
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { streamId: string; type: string; blob?: { contentBase64: string } })
    expect(
      lines.map((l) =>
        l.blob ? ["blob", Buffer.from(l.blob.contentBase64, "base64").toString()] : [l.streamId, l.type],
      ),
    ).toEqual([
      ["blob", "the bytes of a file"],
      [`file-${fileId}`, "FileUploaded"],
      [`session-${parentId}`, "SessionStarted"],
      [`session-${parentId}`, "MessageAppended"],
      [`session-${parentId}`, "CheckpointCreated"],
      [`session-${parentId}`, "MessageAppended"],
      [`session-${childId}`, "SessionForked"],
      [`session-${childId}`, "MessageAppended"],
      [`session-${childId}`, "FileAttached"],
    ])

    const first = await cli(["import", "--in", file], target)
    expect(first.code).toBe(0)
    expect(first.stderr).toContain(
      "Imported 3 stream(s): 8 event(s) written, 0 already present; 1 file(s) stored",
    )
    const again = await cli(["import", "--in", file], target)
    expect(again.stderr).toContain("Imported 3 stream(s): 0 event(s) written, 8 already present")
    // The copy exports to the same bytes, the file's included.
    const copy = join(dir, "rt-copy.ndjson")
    expect((await cli(["export", childId, "--out", copy], target)).code).toBe(0)
    expect(await readFile(copy, "utf8")).toBe(text)
    const rebuilt = await cli(["rebuild", "--all"], target)
    expect(rebuilt.code).toBe(0)
    expect(rebuilt.stdout).toMatch(
      /^Rebuilt activity, .*sessions from 8 events \(\d+ events\/s\); the new tables are live/,
    )
    expect(rebuilt.stderr).toMatch(/\[#{24}\] 100% {2}8\/8 events/)
    const status = await cli(["status"], target)
    expect(status.stdout).toMatch(/head: position 8 /)
    expect(status.stdout).toMatch(/^sessions +inline +v1 +live +\d+ +0 \(inline\)/m)

    const missing = await cli(["import", "--in", join(dir, "nope.ndjson")], target)
    expect(missing.code).toBe(1)
    expect(missing.stderr.trim()).toMatch(
      /^chronicle: cannot read .*nope\.ndjson: no such file or directory$/,
    )
  })
})
