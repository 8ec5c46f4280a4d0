import postgres from "postgres"
import type { Connection, Driver } from "./driver.ts"

export interface PostgresDriverOptions {
  readonly url: string
  /** Pool size. */
  readonly max?: number
  /**
   * Use prepared statements. Turn off behind a transaction-mode pooler (Supavisor on port
   * 6543, PgBouncer in transaction mode), which cannot keep a prepared statement between
   * transactions.
   */
  readonly prepare?: boolean
  /**
   * Send a query on a connection only once the previous one has answered. postgres.js
   * otherwise pipelines queries onto a busy connection, and a transaction-mode pooler
   * (PgBouncer, Supavisor) forwards only the first one queued behind the running query: the
   * rest never get an answer and the connection hangs for good.
   */
  readonly pipeline?: boolean
  readonly connectTimeoutSeconds?: number
}

/** Prints a connection string with its password masked. */
export const redactUrl = (url: string): string => {
  try {
    const u = new URL(url)
    if (u.password) u.password = "***"
    return u.toString()
  } catch {
    return "postgres://(unparseable url)"
  }
}

const connectionOf = (sql: postgres.Sql | postgres.TransactionSql, prepare: boolean): Connection => ({
  // `unsafe` prepares nothing unless each call asks (the pool's `prepare` does not reach it):
  // a statement with parameters then costs two round trips, its description and then its
  // execution, and a parse every time.
  query: async <Row>(text: string, params: ReadonlyArray<unknown> = []) =>
    (await sql.unsafe(text, params as Array<postgres.ParameterOrJSON<never>>, {
      prepare,
    })) as unknown as Array<Row>,
  exec: async (script) => {
    // Without parameters postgres.js uses the simple protocol, which accepts many statements.
    await sql.unsafe(script)
  },
})

/** The Postgres driver: postgres.js, direct or through a pooler. */
export const makePostgresDriver = (options: PostgresDriverOptions): Driver => {
  const prepare = options.prepare ?? true
  const sql = postgres(options.url, {
    max: options.max ?? 10,
    prepare,
    connect_timeout: options.connectTimeoutSeconds ?? 10,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: "chronicle" },
    // An option of postgres.js its types do not list (default 100).
    ...{ max_pipeline: (options.pipeline ?? true) ? 100 : 0 },
  })
  return {
    kind: "postgres",
    description: redactUrl(options.url),
    ...connectionOf(sql, prepare),
    transaction: (f) => sql.begin((tx) => f(connectionOf(tx, prepare))) as Promise<never>,
    listen: async (channel, onNotify) => {
      const request = await sql.listen(channel, onNotify)
      return () => request.unlisten()
    },
    close: () => sql.end({ timeout: 5 }),
  }
}
