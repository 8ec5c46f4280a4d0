import { mkdir, open, readFile, rm } from "node:fs/promises"
import { PGlite, type Transaction } from "@electric-sql/pglite"
import type { Connection, Driver } from "./driver.ts"

export interface PgliteDriverOptions {
  /** A directory for the data, or undefined for an in-memory database that keeps nothing. */
  readonly dataDir: string | undefined
  /** A dump made by `dumpDataDir` to start from (tests clone a migrated template this way). */
  readonly loadDataDir?: Blob
}

const connectionOf = (db: PGlite | Transaction): Connection => ({
  query: async <Row>(text: string, params: ReadonlyArray<unknown> = []) =>
    (await db.query<Row>(text, params as Array<unknown>)).rows,
  exec: async (script) => {
    await db.exec(script)
  },
})

/**
 * The embedded driver: PGlite in this process, through its own API. One PGlite instance is
 * one session; PGlite queues statements so a transaction runs alone.
 */
export interface PgliteDriver extends Driver {
  readonly kind: "pglite"
  /** A dump of the whole database, to start other instances from (see `loadDataDir`). */
  dumpDataDir(): Promise<Blob>
}

/** Two processes opening one data directory would corrupt it; the second is refused. */
export class DataDirInUse extends Error {
  override readonly name = "DataDirInUse"
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Takes `<dataDir>.lock` (holding this process's pid) for as long as the database is open.
 * A lock left by a process that is gone is taken over.
 */
const lockDataDir = async (dataDir: string): Promise<() => Promise<void>> => {
  const path = `${dataDir.replace(/[\\/]+$/, "")}.lock`
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, "wx")
      await file.writeFile(String(process.pid))
      await file.close()
      return () => rm(path, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
      const holder = Number((await readFile(path, "utf8").catch(() => "")).trim())
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new DataDirInUse(
          `The embedded database in ${dataDir} is in use by process ${holder}. Stop it first, or set CHRONICLE_DATA_DIR to another directory.`,
        )
      }
      // Stale: its process is gone.
      await rm(path, { force: true })
    }
  }
  throw new DataDirInUse(`Could not lock the embedded database in ${dataDir} (${path})`)
}

export const makePgliteDriver = async (options: PgliteDriverOptions): Promise<PgliteDriver> => {
  let unlock = async () => {}
  if (options.dataDir !== undefined) {
    await mkdir(options.dataDir, { recursive: true })
    unlock = await lockDataDir(options.dataDir)
  }
  let db: PGlite
  try {
    db = await PGlite.create({
      ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
      ...(options.loadDataDir !== undefined ? { loadDataDir: options.loadDataDir } : {}),
    })
  } catch (error) {
    await unlock()
    throw error
  }
  return {
    kind: "pglite",
    description: options.dataDir === undefined ? "embedded (in memory)" : `embedded (${options.dataDir})`,
    ...connectionOf(db),
    transaction: (f) => db.transaction((tx) => f(connectionOf(tx))),
    listen: (channel, onNotify) => db.listen(channel, onNotify).then((stop) => () => stop()),
    close: async () => {
      try {
        await db.close()
      } finally {
        await unlock()
      }
    },
    dumpDataDir: () => db.dumpDataDir("none"),
  }
}
