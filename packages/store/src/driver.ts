/**
 * The small port both database drivers implement. It is promise-based and knows nothing
 * of events; `Database` (database.ts) wraps it as an Effect service.
 */
export interface Connection {
  /** One parameterised statement ($1, $2, …). Rows come back as plain objects. */
  query<Row = Record<string, unknown>>(text: string, params?: ReadonlyArray<unknown>): Promise<Array<Row>>
  /** A script of several statements with no parameters (a migration file). */
  exec(script: string): Promise<void>
}

export interface Driver extends Connection {
  readonly kind: "postgres" | "pglite"
  /** A printable description of where the data lives, with no secrets in it. */
  readonly description: string
  /** Runs `f` in one transaction: committed when it resolves, rolled back when it rejects. */
  transaction<A>(f: (tx: Connection) => Promise<A>): Promise<A>
  /**
   * Calls `onNotify` for every NOTIFY on `channel`. Resolves once listening, with a
   * function that stops listening.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>
  close(): Promise<void>
}

/** The shape both drivers give their errors: SQLSTATE code, message, optional detail. */
export interface DriverError {
  readonly code?: string
  readonly message: string
  readonly detail?: string
}
