import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { createChronicleClient } from "@chronicle/client"
import { serverConfig, startServer } from "@chronicle/server"
import { Database, type Driver } from "@chronicle/store"
import { Effect } from "effect"
import { startBareServer } from "./bare-server.ts"
import { CONTENT } from "./data.ts"
import type { BenchEnv } from "./env.ts"
import { figure, value } from "./report.ts"
import { type Contender, drive, interleave } from "./stats.ts"
import { rawAppender, type Section, type Sizes, section } from "./workloads.ts"

interface Running {
  readonly url: string
  /** Resident memory of the process serving, in MiB. */
  readonly rss: () => number
  readonly inProcess: boolean
  readonly close: () => Promise<void>
}

const SERVER_ENV = {
  PORT: "0",
  HOST: "127.0.0.1",
  CHRONICLE_LOG_LEVEL: "none",
  CHRONICLE_SESSION_TTL_HOURS: "0",
  // The bench's clients stand for many users but all act as the dev user: the per-user limit
  // of concurrent queries would turn its 16 concurrent readers into 429s.
  CHRONICLE_MAX_CONCURRENT_QUERIES: "0",
}

const childRss = (pid: number) => () => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
    return kb / 1024
  } catch {
    return Number.NaN
  }
}

/** Starts a Node script and waits for it to print `listening on <url>`. */
const spawnServer = (args: Array<string>, env: Record<string, string>): Promise<Running> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    })
    let output = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${args.join(" ")} did not start in 60 s:\n${output}`))
    }, 60_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        child.stdout?.off("data", onData)
        resolve({
          url: match[1]!,
          rss: childRss(child.pid!),
          inProcess: false,
          close: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done()
              child.once("exit", () => done())
              child.stdin?.end()
              child.kill("SIGTERM")
            }),
        })
      }
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${args.join(" ")} exited with ${code}:\n${output}`))
    })
  })

const processRss = () => process.memoryUsage().rss / 2 ** 20

/** The real server: its own process on Postgres; in this process on the shared embedded database. */
export const startChronicle = async (env: BenchEnv): Promise<Running> => {
  if (env.url !== null) {
    const cli = fileURLToPath(new URL("./cli.ts", import.meta.resolve("@chronicle/server")))
    return spawnServer([cli, "serve"], { ...SERVER_ENV, DATABASE_URL: env.url })
  }
  const shared: Driver = { ...env.raw, close: async () => {} }
  const server = await startServer(
    { ...serverConfig(SERVER_ENV), database: { kind: "memory" } },
    { database: Database.fromDriver(Effect.succeed(shared)), logSink: () => {} },
  )
  return { url: server.url, rss: processRss, inProcess: true, close: () => server.close() }
}

export const startBare = async (env: BenchEnv): Promise<Running> => {
  if (env.url !== null) {
    const script = fileURLToPath(new URL("./bare-server.ts", import.meta.url))
    return spawnServer([script], { DATABASE_URL: env.url })
  }
  const bare = await startBareServer(env.raw)
  return { url: bare.url, rss: processRss, inProcess: true, close: bare.close }
}

const ok = async (response: Response) => {
  if (!response.ok) throw new Error(`${response.url}: ${response.status} ${await response.text()}`)
  return response.json()
}

export const httpFigures = async (env: BenchEnv, sizes: Sizes): Promise<Section> => {
  const out = section()
  const chronicle = await startChronicle(env)
  const bare = await startBare(env)
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const idle = chronicle.rss()
    const clients = Array.from({ length: 16 }, () => createChronicleClient({ url: chronicle.url }))
    // Every caller gets its own sessions, one per side, created through the real API.
    const sessions = await Promise.all(
      clients.map(async (client) => ({
        chronicle: (await client.sessions.create.mutate({ title: "bench" })).id,
        bare: (await client.sessions.create.mutate({ title: "bench" })).id,
        server: (await client.sessions.create.mutate({ title: "bench" })).id,
      })),
    )
    let peak = idle
    const sampler = setInterval(() => {
      peak = Math.max(peak, chronicle.rss())
    }, 50)

    for (const callers of [1, 16]) {
      const append: Array<Contender> = [
        {
          name: "Chronicle server + client",
          run: () =>
            drive(sizes.httpOps, callers, (w) =>
              clients[w]!.messages.append.mutate({
                sessionId: sessions[w]!.chronicle,
                role: "user",
                content: CONTENT,
              }),
            ),
        },
        {
          name: "bare node:http + same SQL",
          run: () =>
            drive(sizes.httpOps, callers, (w) =>
              fetch(`${bare.url}/append`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ sessionId: sessions[w]!.bare, role: "user", content: CONTENT }),
              }).then(ok),
            ),
        },
        {
          name: "Chronicle server, plain fetch",
          run: () =>
            drive(sizes.httpOps, callers, (w) =>
              fetch(`${chronicle.url}/trpc/messages.append`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ sessionId: sessions[w]!.server, role: "user", content: CONTENT }),
              }).then(ok),
            ),
        },
        // The yardstick: the insert an append wraps, one row per transaction, from as
        // many callers (the same row shape, straight to Postgres, in this process).
        rawAppender(env, callers, sizes.httpOps),
      ]
      const [viaClient, baseline, viaFetch, raw] = await interleave(sizes.rounds, append)
      out.figures.push(
        figure({
          id: `http.append.c${callers}`,
          title: `HTTP messages.append, ${callers} client${callers > 1 ? "s" : ""}`,
          unit: "calls/s",
          chronicle: viaClient!,
          baseline: baseline!,
          metric: "p50",
          target: callers === 1 ? { op: "<=", value: 1.5 } : null,
        }),
        figure({
          id: `http.append.raw.c${callers}`,
          title: `HTTP messages.append, ${callers} client${callers > 1 ? "s" : ""}, vs raw single-row INSERT`,
          unit: "calls/s",
          chronicle: viaClient!,
          baseline: raw!,
          ...(callers === 1
            ? { metric: "p50" as const, target: { op: "<=" as const, value: 2 } }
            : { target: { op: ">=" as const, value: 0.5 } }),
        }),
        figure({
          id: `http.append.server.c${callers}`,
          title: `HTTP messages.append, ${callers} client${callers > 1 ? "s" : ""}, server only (plain fetch)`,
          unit: "calls/s",
          chronicle: viaFetch!,
          baseline: baseline!,
          metric: "p50",
        }),
      )

      const list: Array<Contender> = [
        {
          name: "Chronicle server + client",
          run: () =>
            drive(sizes.httpOps, callers, (w) =>
              clients[w]!.messages.list.query({ sessionId: sessions[w]!.chronicle, limit: 50 }),
            ),
        },
        {
          name: "bare node:http + same SQL",
          run: () =>
            drive(sizes.httpOps, callers, (w) =>
              fetch(
                `${bare.url}/list?input=${encodeURIComponent(JSON.stringify({ sessionId: sessions[w]!.chronicle, limit: 50 }))}`,
              ).then(ok),
            ),
        },
      ]
      const [listed, listBaseline] = await interleave(sizes.rounds, list)
      out.figures.push(
        figure({
          id: `http.list.c${callers}`,
          title: `HTTP messages.list (50), ${callers} client${callers > 1 ? "s" : ""}`,
          unit: "calls/s",
          chronicle: listed!,
          baseline: listBaseline!,
          metric: "p50",
        }),
      )
    }
    clearInterval(sampler)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const where = chronicle.inProcess ? "benchmark process (server in-process)" : "server process"
    out.values.push(
      value({ id: "memory.idle", title: `RSS at idle, ${where}`, value: idle, unit: "MiB" }),
      value({
        id: "memory.load",
        title: `RSS peak under 1–16 HTTP clients, ${where}`,
        value: peak,
        unit: "MiB",
      }),
      value({
        id: "memory.after",
        title: `RSS after the load, ${where}`,
        value: chronicle.rss(),
        unit: "MiB",
      }),
    )
  } finally {
    await chronicle.close()
    await bare.close()
  }
  out.notes.push(
    "HTTP: the Chronicle client batches calls (httpBatchLink); the 'server only' rows call the same server with plain fetch to separate the client's share from the server's.",
  )
  return out
}
