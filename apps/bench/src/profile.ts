/**
 * `pnpm bench:profile [--clients 16] [--seconds 20] [--procedure messages.append]`
 *
 * Where an HTTP call's time goes: starts the real server (its own process, with
 * `--cpu-prof`) on a fresh Postgres database, drives it with the real client from this
 * process, and prints the server's CPU per call with the functions that take it (self time,
 * from the V8 profile), and the Postgres backends' CPU per call (from /proc, for the
 * backends of the benchmark database). DATABASE_URL names the server (default local).
 */
import { spawn } from "node:child_process"
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { createChronicleClient } from "@chronicle/client"
import postgres from "postgres"
import { CONTENT } from "./data.ts"
import { DEFAULT_DATABASE_URL } from "./env.ts"

interface Options {
  readonly clients: number
  readonly seconds: number
  readonly procedure: "messages.append" | "messages.list"
  readonly adminUrl: string
}

const parse = (argv: ReadonlyArray<string>): Options => {
  const get = (name: string) => {
    const i = argv.indexOf(name)
    return i === -1 ? undefined : argv[i + 1]
  }
  const procedure = get("--procedure") ?? "messages.append"
  if (procedure !== "messages.append" && procedure !== "messages.list")
    throw new Error("--procedure must be messages.append or messages.list")
  return {
    clients: Number(get("--clients") ?? 16),
    seconds: Number(get("--seconds") ?? 20),
    procedure,
    adminUrl: process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL,
  }
}

/** utime + stime of a process, in milliseconds (clock ticks of 10 ms on Linux). */
const cpuMs = async (pid: number) => {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined)
  if (stat === undefined) return 0
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
}

/** Self time by function, from a .cpuprofile. */
const topFunctions = (profile: {
  nodes: Array<ProfileNode>
  samples: Array<number>
  timeDeltas: Array<number>
}) => {
  const byNode = new Map<number, number>()
  for (const [i, id] of profile.samples.entries()) {
    byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const byFunction = new Map<string, number>()
  const byPackage = new Map<string, number>()
  let total = 0
  for (const node of profile.nodes) {
    const us = byNode.get(node.id) ?? 0
    total += us
    const { functionName, url, lineNumber } = node.callFrame
    const where =
      url === ""
        ? ""
        : ` ${url.replace(/^.*\/node_modules\/\.pnpm\/([^/]+)\/node_modules\//, "$1 ").replace(/^file:\/\/.*?\/(apps|packages)\//, "$1/")}:${lineNumber + 1}`
    const key = `${functionName || "(anonymous)"}${where}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + us)
    const owner =
      /\/node_modules\/\.pnpm\/(@?[^@/]+(?:\+[^@/]+)?)@/.exec(url)?.[1]?.replace("+", "/") ??
      /\/(apps|packages)\/([^/]+)\//.exec(url)?.slice(1, 3).join("/") ??
      (url.startsWith("node:") ? "node (JavaScript)" : url === "" ? `(native) ${functionName}` : url)
    byPackage.set(owner, (byPackage.get(owner) ?? 0) + us)
  }
  return {
    total,
    top: [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 25),
    packages: [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15),
  }
}

const main = async () => {
  const options = parse(process.argv.slice(2))
  const name = `chronicle_profile_${Date.now().toString(36)}`
  const admin = postgres(options.adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  const url = new URL(options.adminUrl)
  url.pathname = `/${name}`
  const dir = await mkdtemp(join(tmpdir(), "chronicle-profile-"))
  const cli = fileURLToPath(new URL("./cli.ts", import.meta.resolve("@chronicle/server")))
  const child = spawn(process.execPath, ["--cpu-prof", "--cpu-prof-dir", dir, cli, "serve"], {
    env: {
      ...process.env,
      DATABASE_URL: url.toString(),
      PORT: "0",
      HOST: "127.0.0.1",
      CHRONICLE_LOG_LEVEL: "none",
      CHRONICLE_SESSION_TTL_HOURS: "0",
    },
    stdio: ["ignore", "pipe", "inherit"],
  })
  const serverUrl = await new Promise<string>((resolve, reject) => {
    let output = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match) resolve(match[1]!)
    })
    child.once("exit", (code) => reject(new Error(`the server exited (${code}):\n${output}`)))
  })
  try {
    const clients = Array.from({ length: options.clients }, () => createChronicleClient({ url: serverUrl }))
    const sessions = await Promise.all(
      clients.map(async (c) => (await c.sessions.create.mutate({ title: "profile" })).id),
    )
    if (options.procedure === "messages.list")
      await Promise.all(
        clients.map((c, i) =>
          Promise.all(
            Array.from({ length: 50 }, () =>
              c.messages.append.mutate({ sessionId: sessions[i]!, role: "user", content: CONTENT }),
            ),
          ),
        ),
      )
    const call = (i: number) =>
      options.procedure === "messages.append"
        ? clients[i]!.messages.append.mutate({ sessionId: sessions[i]!, role: "user", content: CONTENT })
        : clients[i]!.messages.list.query({ sessionId: sessions[i]!, limit: 50 })
    // Warm up, then measure.
    const until = (ms: number) => Date.now() + ms
    const loop = async (i: number, end: number, counter: { n: number }) => {
      while (Date.now() < end) {
        await call(i)
        counter.n++
      }
    }
    await Promise.all(clients.map((_, i) => loop(i, until(2000), { n: 0 })))
    const backends = async () =>
      (await admin<Array<{ pid: number }>>`select pid from pg_stat_activity where datname = ${name}`).map(
        (r) => r.pid,
      )
    const pids = await backends()
    const serverBefore = await cpuMs(child.pid!)
    const dbBefore = await Promise.all(pids.map(cpuMs))
    const counter = { n: 0 }
    const started = performance.now()
    await Promise.all(clients.map((_, i) => loop(i, until(options.seconds * 1000), counter)))
    const elapsed = (performance.now() - started) / 1000
    const serverCpu = (await cpuMs(child.pid!)) - serverBefore
    const later = await backends()
    const dbAfter = await Promise.all(pids.map(cpuMs))
    const dbCpu = dbAfter.reduce((s, v, i) => s + v - dbBefore[i]!, 0)
    console.log(
      `${options.procedure}, ${options.clients} clients, ${elapsed.toFixed(1)} s: ${counter.n} calls, ${(counter.n / elapsed).toFixed(0)} calls/s`,
    )
    console.log(
      `server process CPU ${(serverCpu / counter.n).toFixed(3)} ms/call; Postgres backends (${pids.length}${later.length !== pids.length ? `, ${later.length} at the end` : ""}) ${(dbCpu / counter.n).toFixed(3)} ms/call`,
    )
  } finally {
    child.kill("SIGTERM")
    await new Promise((resolve) => child.once("exit", resolve))
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end({ timeout: 1 })
  }
  const [file] = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"))
  if (file !== undefined) {
    const { total, top, packages } = topFunctions(JSON.parse(await readFile(join(dir, file), "utf8")))
    console.log(`\nserver self time by package (whole run, ${(total / 1e6).toFixed(1)} s sampled):`)
    for (const [owner, us] of packages)
      console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${owner}`)
    console.log(`\nserver self time by function:`)
    for (const [fn, us] of top) console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${fn}`)
  }
  await rm(dir, { recursive: true, force: true })
}

await main()
