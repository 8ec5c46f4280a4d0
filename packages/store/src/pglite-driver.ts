import { mkdir } from "node:fs/promises"
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

export const makePgliteDriver = async (options: PgliteDriverOptions): Promise<PgliteDriver> => {
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true })
  const db = await PGlite.create({
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
    ...(options.loadDataDir !== undefined ? { loadDataDir: options.loadDataDir } : {}),
  })
  return {
    kind: "pglite",
    description: options.dataDir === undefined ? "embedded (in memory)" : `embedded (${options.dataDir})`,
    ...connectionOf(db),
    transaction: (f) => db.transaction((tx) => f(connectionOf(tx))),
    listen: (channel, onNotify) => db.listen(channel, onNotify).then((stop) => () => stop()),
    close: () => db.close(),
    dumpDataDir: () => db.dumpDataDir("none"),
  }
}
