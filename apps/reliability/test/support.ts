/**
 * What the reliability suites share: the size knob (bounded in `pnpm test`, long under
 * CHRONICLE_STRESS=1), figures printed for docs/reliability.md, a private PostgreSQL
 * cluster that may be restarted without disturbing anyone else's tests, and the real server
 * as a child process that may be killed.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { chmod, chown, mkdtemp, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import postgres from "postgres"

/** Long runs (`pnpm test:stress`) set CHRONICLE_STRESS=1; `pnpm test` runs the bounded size. */
export const STRESS = process.env.CHRONICLE_STRESS === "1"

/** The bounded figure in `pnpm test`, the long one under stress. */
export const scale = (bounded: number, stress: number) => (STRESS ? stress : bounded)

/** Prints a suite's figures as one line, for the record in docs/reliability.md. */
export const report = (suite: string, figures: Record<string, unknown>) => {
  console.log(`[reliability] ${suite} ${STRESS ? "(stress)" : "(bounded)"} ${JSON.stringify(figures)}`)
}

const run = promisify(execFile)

/** The repository root, where `apps/server/src/cli.ts` lives. */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url))

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it returns a value other than undefined, or fails after `attempts`. */
export const eventually = async <A>(
  what: string,
  check: () => Promise<A | undefined>,
  {
    attempts = 600,
    everyMs = 100,
    status,
  }: {
    readonly attempts?: number
    readonly everyMs?: number
    /** How far things got, for the message when they did not get there. */
    readonly status?: () => string
  } = {},
): Promise<A> => {
  let last: unknown
  for (let i = 0; i < attempts; i++) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    await sleep(everyMs)
  }
  throw new Error(
    `${what}: not reached after ${attempts} attempts${status ? `; ${status()}` : ""}${last ? ` (last error: ${last})` : ""}`,
  )
}

// ----- a private PostgreSQL cluster -------------------------------------------------------

/** The newest installed PostgreSQL's programs (Debian's layout), unless CHRONICLE_PG_BIN says. */
export const PG_BIN =
  process.env.CHRONICLE_PG_BIN ??
  (() => {
    const versions = existsSync("/usr/lib/postgresql")
      ? readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b))
      : []
    return `/usr/lib/postgresql/${versions.at(-1) ?? "15"}/bin`
  })()

/** runuser lives in sbin, which a minimal PATH (CI's, say) may not name. */
const RUNUSER = ["/usr/sbin/runuser", "/sbin/runuser"].find((path) => existsSync(path)) ?? "runuser"

/** PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user. */
const asPostgres = (command: string, args: ReadonlyArray<string>) =>
  process.getuid?.() === 0
    ? run(RUNUSER, ["-u", "postgres", "--", command, ...args])
    : run(command, [...args])

export interface PrivateCluster {
  /** The superuser connection string of the `postgres` database. */
  readonly url: string
  readonly port: number
  /** A connection string for another database of the cluster. */
  readonly urlOf: (database: string) => string
  /** Stops the server (`immediate` is a crash: no checkpoint, recovery from the WAL at start). */
  readonly stop: (mode?: "fast" | "immediate") => Promise<void>
  readonly start: () => Promise<void>
  /** Stops and removes the cluster. */
  readonly destroy: () => Promise<void>
}

/**
 * A throwaway PostgreSQL cluster (initdb in a temporary directory, a free port, trust
 * auth), for tests that restart the database or create cluster-wide roles: the shared
 * server others test against is never touched.
 */
export const startPrivateCluster = async (): Promise<PrivateCluster> => {
  const dir = await mkdtemp(join(tmpdir(), "chronicle-cluster-"))
  if (process.getuid?.() === 0) {
    const { stdout } = await run("id", ["-u", "postgres"])
    const { stdout: gid } = await run("id", ["-g", "postgres"])
    await chown(dir, Number(stdout.trim()), Number(gid.trim()))
  }
  await chmod(dir, 0o700)
  const data = join(dir, "data")
  const port = await freePort()
  await asPostgres(join(PG_BIN, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "-E",
    "UTF8",
    "--no-sync",
  ])
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300`
  const start = async () => {
    await asPostgres(join(PG_BIN, "pg_ctl"), [
      "-D",
      data,
      "-o",
      options,
      "-l",
      join(dir, "log"),
      "-w",
      "start",
    ])
  }
  const stop = async (mode: "fast" | "immediate" = "fast") => {
    await asPostgres(join(PG_BIN, "pg_ctl"), ["-D", data, "-m", mode, "-w", "stop"])
  }
  await start()
  const urlOf = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`
  return {
    url: urlOf("postgres"),
    port,
    urlOf,
    stop,
    start,
    destroy: async () => {
      await stop("immediate").catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** A short-lived admin connection. */
export const withSql = async <A>(url: string, f: (sql: postgres.Sql) => Promise<A>): Promise<A> => {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  try {
    return await f(sql)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

// ----- PgBouncer ----------------------------------------------------------------------------

export interface PgBouncer {
  readonly port: number
  readonly urlOf: (database: string) => string
  readonly stop: () => Promise<void>
}

/**
 * Debian's PgBouncer (`apt-get install pgbouncer`) on a free port in front of a cluster: by
 * default in transaction mode with a small pool, as Supabase's pooler serves it on port 6543;
 * in session mode (a server connection per client connection, as on Supabase's port 5432
 * pooler) the pool must hold every connection of the client's pool. PgBouncer refuses to run
 * as root: as root, it runs as the `postgres` user.
 */
export const startPgBouncer = async (
  cluster: PrivateCluster,
  poolSize = 4,
  mode: "transaction" | "session" = "transaction",
): Promise<PgBouncer> => {
  const binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((path) => existsSync(path))
  if (binary === undefined)
    throw new Error("pgbouncer is not installed: apt-get install -y pgbouncer (.ci/run does)")
  const dir = await mkdtemp(join(tmpdir(), "chronicle-pgbouncer-"))
  const port = await freePort()
  const { writeFile } = await import("node:fs/promises")
  await writeFile(join(dir, "users.txt"), '"postgres" ""\n')
  await writeFile(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `* = host=127.0.0.1 port=${cluster.port}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "users.txt")}`,
      `pool_mode = ${mode}`,
      `default_pool_size = ${poolSize}`,
      "max_client_conn = 500",
      "ignore_startup_parameters = extra_float_digits,options",
      `logfile = ${join(dir, "pgbouncer.log")}`,
      `pidfile = ${join(dir, "pgbouncer.pid")}`,
      "",
    ].join("\n"),
  )
  if (process.getuid?.() === 0) {
    const { stdout: uid } = await run("id", ["-u", "postgres"])
    const { stdout: gid } = await run("id", ["-g", "postgres"])
    for (const file of ["", "users.txt", "pgbouncer.ini"])
      await chown(join(dir, file), Number(uid.trim()), Number(gid.trim()))
  }
  await asPostgres(binary, ["-d", join(dir, "pgbouncer.ini")])
  const urlOf = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`
  await eventually("pgbouncer to accept connections", () =>
    withSql(urlOf("postgres"), (sql) => sql`select 1`),
  )
  return {
    port,
    urlOf,
    stop: async () => {
      const { readFile } = await import("node:fs/promises")
      const pid = Number((await readFile(join(dir, "pgbouncer.pid"), "utf8").catch(() => "")).trim())
      if (pid > 0) {
        try {
          process.kill(pid, "SIGTERM")
        } catch {}
        await eventually("pgbouncer to stop", async () => {
          try {
            process.kill(pid, 0)
            return undefined
          } catch {
            return true
          }
        })
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}

// ----- the real server as a child process -------------------------------------------------

export interface ChildServer {
  readonly url: string
  readonly process: ChildProcess
  /** Everything the process wrote to stdout and stderr. */
  readonly output: () => string
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<number | NodeJS.Signals | null>
  readonly kill: (signal?: NodeJS.Signals) => Promise<number | NodeJS.Signals | null>
}

/** `node apps/server/src/cli.ts <args>` with `env`, from the repository root. */
export const spawnCli = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const child = spawn(process.execPath, ["apps/server/src/cli.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ?? code)),
  )
  return { child, output: () => output, exited }
}

/**
 * Starts `chronicle serve` on a free port and resolves once it prints the address it
 * listens on.
 */
export const startChildServer = async (env: Record<string, string>): Promise<ChildServer> => {
  const { child, output, exited } = spawnCli(["serve"], {
    HOST: "127.0.0.1",
    PORT: "0",
    CHRONICLE_LOG_LEVEL: "warn",
    ...env,
  })
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const match = /Chronicle listening on (http:\/\/\S+)/.exec(output())
      if (match) {
        child.stdout.off("data", onData)
        resolve(match[1]!)
      }
    }
    child.stdout.on("data", onData)
    void exited.then((code) =>
      reject(new Error(`the server exited (${code}) before listening:\n${output()}`)),
    )
  })
  return {
    url,
    process: child,
    output,
    exited,
    kill: (signal = "SIGKILL") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

/** Resident set size of a process in bytes, from /proc. */
export const rssOf = async (pid: number): Promise<number> => {
  const { readFile } = await import("node:fs/promises")
  const status = await readFile(`/proc/${pid}/status`, "utf8")
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)
  if (!kb) throw new Error(`no VmRSS for process ${pid}`)
  return Number(kb[1]) * 1024
}
