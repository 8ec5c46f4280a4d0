/**
 * The published packages as a user gets them: each is packed (`pnpm pack`, which applies its
 * `publishConfig`), the tarballs are installed with npm into an app in a temporary directory
 * outside the workspace, the app is typechecked with the config `tsc --init` writes and run
 * with plain Node against the built server (`node apps/server/dist/cli.mjs serve`) over HTTP,
 * with a token minted by `chronicle token`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL("../../../", import.meta.url))
const PACKAGES = ["client", "langgraph", "openai-agents", "ai-sdk"] as const
const SERVER = join(ROOT, "apps/server/dist/cli.mjs")
const TSC = join(ROOT, "node_modules/.bin/tsc")

/** The versions the workspace pins (pnpm-workspace.yaml), for the adapters' peers. */
const catalogVersion = async (name: string) => {
  const catalog = await readFile(join(ROOT, "pnpm-workspace.yaml"), "utf8")
  const escaped = name.replace(/[/@.-]/g, (c) => `\\${c}`)
  const match = new RegExp(`^\\s+"?${escaped}"?: (\\S+)$`, "m").exec(catalog)
  if (match === null) throw new Error(`${name} is not in the pnpm catalog`)
  return match[1]!
}

/** Runs a command; on failure the error carries its output, so the test failure shows it. */
const sh = async (file: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = {}) => {
  try {
    return await run(file, [...args], {
      cwd,
      env: { ...process.env, ...env },
      maxBuffer: 64 * 1024 * 1024,
    })
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    throw new Error(`${file} ${args.join(" ")} failed in ${cwd}:\n${stdout ?? ""}\n${stderr ?? ""}`)
  }
}

/** The built server, started as a user would, on a free port, with HS256 auth. */
const startServer = async (env: NodeJS.ProcessEnv) => {
  const child = spawn(process.execPath, [SERVER, "serve"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  })
  const output: Array<string> = []
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the server did not start:\n${output.join("\n")}`)),
      120_000,
    )
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        output.push(line)
        const match = /^Chronicle listening on (http:\/\/\S+)/.exec(line)
        if (match !== null) {
          clearTimeout(timer)
          resolve(match[1]!)
        }
      })
    }
    child.once("exit", (code) => reject(new Error(`the server exited (${code}):\n${output.join("\n")}`)))
  })
  return { child, url, output }
}

const stop = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    child.once("exit", (code) => resolve(code))
    child.kill("SIGTERM")
  })

describe("the packages installed from their tarballs into an app outside the workspace", () => {
  let work: string
  let app: string
  let server: Awaited<ReturnType<typeof startServer>>
  let token: string
  const userId = randomUUID()
  const env = {
    DATABASE_URL: "memory://",
    PORT: "0",
    CHRONICLE_LOG_LEVEL: "warn",
    SUPABASE_URL: "http://127.0.0.1:9",
    SUPABASE_JWT_SECRET: randomBytes(32).toString("hex"),
  }

  beforeAll(async () => {
    for (const name of PACKAGES) {
      if (!existsSync(join(ROOT, "packages", name, "dist/index.mjs")))
        throw new Error(`packages/${name} is not built: run \`pnpm build\` (turbo runs it before this test)`)
    }
    if (!existsSync(SERVER)) throw new Error("the server is not built: run `pnpm build`")

    work = await mkdtemp(join(tmpdir(), "chronicle-install-"))
    const tarballs = join(work, "tarballs")
    await mkdir(tarballs)
    for (const name of PACKAGES) {
      await sh("pnpm", ["pack", "--pack-destination", tarballs], join(ROOT, "packages", name))
    }
    const files = await readdir(tarballs)
    const tarball = (name: string) =>
      `file:${join(tarballs, files.find((f) => f.startsWith(`chronicle-${name}-`))!)}`

    app = join(work, "app")
    await mkdir(app)
    await writeFile(
      join(app, "package.json"),
      JSON.stringify(
        {
          name: "an-agent-app",
          private: true,
          type: "module",
          dependencies: {
            ...Object.fromEntries(PACKAGES.map((name) => [`@chronicle/${name}`, tarball(name)])),
            "@langchain/core": await catalogVersion("@langchain/core"),
            "@langchain/langgraph-checkpoint": await catalogVersion("@langchain/langgraph-checkpoint"),
            "@openai/agents-core": await catalogVersion("@openai/agents-core"),
            ai: await catalogVersion("ai"),
          },
        },
        null,
        2,
      ),
    )
    await sh("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"], app)
    // The config a new TypeScript project starts from: strict, nodenext, skipLibCheck.
    await sh(TSC, ["--init"], app)

    server = await startServer(env)
    token = (await sh(process.execPath, [SERVER, "token", "--user", userId], ROOT, env)).stdout.trim()
  })

  afterAll(async () => {
    if (server !== undefined) await stop(server.child)
    if (work !== undefined) await rm(work, { recursive: true, force: true })
  })

  it("packs only the built files, with no workspace or catalog references left", async () => {
    for (const name of PACKAGES) {
      const manifest = JSON.parse(
        await readFile(join(app, "node_modules/@chronicle", name, "package.json"), "utf8"),
      ) as Record<string, unknown>
      expect(manifest.private).toBeUndefined()
      expect(manifest.license).toBe("MIT")
      expect(JSON.stringify(manifest.dependencies ?? {})).not.toMatch(/workspace:|catalog:/)
      expect(JSON.stringify(manifest.exports)).toContain("./dist/index.d.mts")
      const shipped = await readdir(join(app, "node_modules/@chronicle", name))
      expect(shipped.sort()).toEqual(["README.md", "dist", "package.json"])
    }
    // The router's type came bundled: nothing of the server was installed.
    for (const internal of ["api", "domain", "events", "store", "projections", "server"])
      expect(existsSync(join(app, "node_modules/@chronicle", internal))).toBe(false)
    expect(existsSync(join(app, "node_modules/effect"))).toBe(false)
  })

  it("typechecks the app with `tsc --init`'s strict config, and refuses a wrong input type", async () => {
    await writeFile(
      join(app, "client-app.ts"),
      `import { createChronicleClient, isChronicleError, type RouterOutputs } from "@chronicle/client"

const chronicle = createChronicleClient({ url: ${JSON.stringify(server?.url)}, token: ${JSON.stringify(token)} })
const session: RouterOutputs["sessions"]["get"] = await chronicle.sessions.create.mutate({ title: "Plan a CLI" })
await chronicle.messages.append.mutate({ sessionId: session.id, role: "user", content: "Count words" })
const page = await chronicle.messages.list.query({ sessionId: session.id })
const status: "active" | "archived" | "deleted" | "expired" = session.status
try {
  await chronicle.sessions.get.query({ id: "${randomUUID()}" })
  throw new Error("a missing session was found")
} catch (error) {
  if (!isChronicleError(error) || error.data?.code !== "NOT_FOUND") throw error
}
console.log(JSON.stringify({ owner: session.ownerId, status, messages: page.items.map((m) => m.content) }))
`,
    )
    await writeFile(
      join(app, "adapters-app.ts"),
      `import { ChronicleChatStore } from "@chronicle/ai-sdk"
import { ChronicleSaver } from "@chronicle/langgraph"
import { ChronicleSession } from "@chronicle/openai-agents"
import { emptyCheckpoint, uuid6 } from "@langchain/langgraph-checkpoint"
import type { UIMessage } from "ai"

const options = { url: ${JSON.stringify(server?.url)}, token: ${JSON.stringify(token)} }

const saver = new ChronicleSaver(options)
const config = { configurable: { thread_id: "thread-1", checkpoint_ns: "" } }
const checkpoint = { ...emptyCheckpoint(), id: uuid6(-1) }
await saver.put(config, checkpoint, { source: "input", step: -1, parents: {} }, {})
const tuple = await saver.getTuple(config)

const session = new ChronicleSession({ ...options, key: "ticket-1" })
await session.addItems([{ role: "user", content: "Where is my order?" }])
const items = await session.getItems()

const chats = new ChronicleChatStore(options)
const chatId = await chats.createChat()
const messages: Array<UIMessage> = [{ id: "m1", role: "user", parts: [{ type: "text", text: "Hello" }] }]
await chats.saveChat({ chatId, messages })
const loaded = await chats.loadChat(chatId)

console.log(JSON.stringify({ checkpoint: tuple?.checkpoint.id === checkpoint.id, items: items.length, chat: loaded.length }))
`,
    )
    await writeFile(
      join(app, "cjs-app.cjs"),
      `const { createChronicleClient } = require("@chronicle/client")
const chronicle = createChronicleClient({ url: ${JSON.stringify(server?.url)}, token: ${JSON.stringify(token)} })
chronicle.sessions.list.query({}).then((page) => console.log(JSON.stringify({ sessions: page.items.length })))
`,
    )
    await sh(TSC, ["-p", "."], app)

    // Without skipLibCheck too: the bundled declarations stand alone.
    await writeFile(
      join(app, "tsconfig.libcheck.json"),
      JSON.stringify({
        extends: "./tsconfig.json",
        compilerOptions: { skipLibCheck: false, noEmit: true },
        files: ["client-app.ts"],
      }),
    )
    await sh(TSC, ["-p", "tsconfig.libcheck.json"], app)

    await writeFile(
      join(app, "wrong-input.ts"),
      `import { createChronicleClient } from "@chronicle/client"

const chronicle = createChronicleClient({ url: "http://127.0.0.1:4000" })
await chronicle.sessions.create.mutate({ title: 42 })
`,
    )
    const refused = await run(TSC, ["-p", ".", "--noEmit"], { cwd: app }).then(
      () => null,
      (error: { stdout: string }) => error.stdout,
    )
    await rm(join(app, "wrong-input.ts"))
    expect(refused).not.toBeNull()
    expect(refused).toMatch(
      /wrong-input\.ts\(4,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/,
    )
  })

  it("runs the compiled app with plain Node against the built server, as the token's user", async () => {
    const client = JSON.parse((await sh(process.execPath, ["client-app.js"], app)).stdout) as Record<
      string,
      unknown
    >
    expect(client).toEqual({ owner: userId, status: "active", messages: ["Count words"] })

    const adapters = JSON.parse((await sh(process.execPath, ["adapters-app.js"], app)).stdout) as Record<
      string,
      unknown
    >
    expect(adapters).toEqual({ checkpoint: true, items: 1, chat: 1 })

    const cjs = JSON.parse((await sh(process.execPath, ["cjs-app.cjs"], app)).stdout) as Record<
      string,
      unknown
    >
    // The client's session, the OpenAI Agents session and the AI SDK chat (a LangGraph thread is a graph).
    expect(cjs).toEqual({ sessions: 3 })
  })

  it("the built server printed the Studio URL, and exits on SIGTERM", async () => {
    // Built or not (it says how to build it), the Studio's address is printed at start.
    expect(
      server.output.some(
        (line) => line.startsWith("Chronicle Studio") && line.includes(`${server.url}/studio/`),
      ),
    ).toBe(true)
    const code = await stop(server.child)
    expect(code).toBe(0)
  })
})
