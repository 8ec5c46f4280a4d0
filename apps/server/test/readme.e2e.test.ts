import { execFile } from "node:child_process"
import { readFile, rm, writeFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { pgliteTestLayer, requireTemplate } from "@chronicle/store/testing"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { serverConfig } from "../src/config.ts"
import { type RunningServer, startServer } from "../src/serve.ts"

const run = promisify(execFile)
const README = new URL("../../../README.md", import.meta.url)

/** The shell block that follows `heading` in the README. */
const block = async (heading: string, language: "sh" | "ts") => {
  const text = await readFile(README, "utf8")
  const section = text.slice(text.indexOf(heading))
  const match = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(section)
  if (!match) throw new Error(`no ${language} block after ${heading}`)
  return match[1]!
}

describe("the README's examples", () => {
  let server: RunningServer
  beforeAll(async () => {
    // Dev mode, as after `pnpm start`: no auth settings.
    server = await startServer(
      { ...serverConfig({ PORT: "0", CHRONICLE_LOG_LEVEL: "none" }), database: { kind: "memory" } },
      { database: pgliteTestLayer(requireTemplate(inject("pgliteTemplate"))) },
    )
  })
  afterAll(() => server.close())

  it("works as written: creates a session, appends a message and lists it", async () => {
    const script = (await block("### With curl", "sh")).replace(
      "URL=http://127.0.0.1:4000",
      `URL=${server.url}`,
    )
    expect(script).toContain(`URL=${server.url}`)
    const { stdout } = await run("bash", ["-euo", "pipefail", "-c", script])
    const lines = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { result: { data: unknown } })
    expect(lines).toHaveLength(3)
    const [appended, listed, sessions] = lines.map((l) => l.result.data) as [
      { sessionId: string; seq: number; content: string },
      { items: Array<{ content: string }>; nextCursor: string | null },
      { items: Array<{ id: string; title: string; counts: { messages: number } }> },
    ]
    expect(appended).toMatchObject({ seq: 1, content: "Count the words in a file" })
    expect(listed.items.map((m) => m.content)).toEqual(["Count the words in a file"])
    expect(listed.nextCursor).toBeNull()
    expect(sessions.items.find((s) => s.id === appended.sessionId)).toMatchObject({
      title: "Plan a CLI",
      counts: { messages: 1 },
    })
  })

  it("runs the TypeScript example as written: checkpoint, as-of read, fork, rollback", async () => {
    const example = (await block("### From TypeScript", "ts")).replace(
      '"http://127.0.0.1:4000"',
      JSON.stringify(server.url),
    )
    expect(example).toContain(server.url)
    const file = fileURLToPath(new URL(`./readme-example-${process.pid}.ts`, import.meta.url))
    await writeFile(file, `${example}\nconsole.log(JSON.stringify({ before, fork, session }))\n`)
    try {
      const { stdout } = await run(process.execPath, [file])
      const { before, fork, session } = JSON.parse(stdout) as {
        before: { items: Array<{ content: string }> }
        fork: { parentId: string; counts: { messages: number } }
        session: { id: string }
      }
      expect(before.items.map((m) => m.content)).toEqual(["Count words"])
      expect(fork).toMatchObject({ parentId: session.id, counts: { messages: 1 } })
    } finally {
      await rm(file, { force: true })
    }
  })
})
