/**
 * The `chronicle` command as the workspace bin runs it (`apps/server/bin/chronicle.mjs`):
 * its version, and on a Node older than 24 one line saying what to do instead of the raw
 * `ERR_UNKNOWN_FILE_EXTENSION ".ts"` stack (the old Node is simulated: the check reads
 * `process.versions.node`, which a preloaded module rewrites).
 */
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import serverPackage from "../package.json" with { type: "json" }

const run = promisify(execFile)
const BIN = fileURLToPath(new URL("../bin/chronicle.mjs", import.meta.url))
const AS_NODE_20 = `data:text/javascript,${encodeURIComponent(
  'Object.defineProperty(process.versions, "node", { value: "20.11.1" }); Object.defineProperty(process, "version", { value: "v20.11.1" })',
)}`

describe("the chronicle bin", () => {
  it("prints its version", async () => {
    const { stdout } = await run(process.execPath, [BIN, "--version"])
    expect(stdout).toBe(`chronicle ${serverPackage.version}\n`)
  })

  it("on a Node older than 24, says so in one line and exits 1", async () => {
    const failed = await run(process.execPath, ["--import", AS_NODE_20, BIN, "status"]).then(
      () => null,
      (error: { code: number; stdout: string; stderr: string }) => error,
    )
    expect(failed?.code).toBe(1)
    expect(failed?.stdout).toBe("")
    expect(failed?.stderr.trim().split("\n")).toHaveLength(1)
    expect(failed?.stderr).toMatch(
      /^chronicle: Node 24 or newer is needed; this is Node v20\.11\.1\. Get it with `nvm install 24`/,
    )
  })
})
