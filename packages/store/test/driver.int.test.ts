/**
 * The Postgres driver prepares its statements (unless told not to, for a transaction-mode
 * pooler): postgres.js's `unsafe`, which the driver runs every statement through, prepares
 * nothing unless asked per call, and a statement with parameters then costs two round trips
 * (parse and describe, then bind and execute) and a parse on every call.
 *
 * It also survives a new connection whose first, internal statement fails.
 * postgres.js 3.4.9 reads the array types from the catalog on every new connection and left
 * that query's promise unobserved: when it failed (a database restarting, a backend
 * terminated or cancelled while the connection starts up) the rejection went unhandled, and
 * Node ends a process on an unhandled rejection. `patches/postgres@3.4.9.patch` observes it.
 * Here a statement timeout of 1 ms, set at start-up, cancels that query every time.
 */
import { afterEach, describe, expect, inject, it } from "vitest"
import { makePostgresDriver } from "../src/postgres-driver.ts"

const postgresUrl = inject("postgresUrl")

describe.runIf(postgresUrl !== null)("the Postgres driver (Postgres)", () => {
  const unhandled: Array<unknown> = []
  const record = (reason: unknown) => unhandled.push(reason)
  afterEach(() => {
    process.off("unhandledRejection", record)
  })

  const preparedCount = (driver: ReturnType<typeof makePostgresDriver>, text: string) =>
    driver
      .query<{ n: number }>("select count(*)::int as n from pg_prepared_statements where statement = $1", [
        text,
      ])
      .then(([row]) => row!.n)

  it("prepares a statement with parameters once per connection and reuses it", async () => {
    const text = "select $1::int + 1 as n"
    const driver = makePostgresDriver({ url: postgresUrl!, max: 1 })
    try {
      for (let i = 0; i < 3; i++) expect(await driver.query(text, [i])).toEqual([{ n: i + 1 }])
      expect(await preparedCount(driver, text)).toBe(1)
      // In a transaction too (its connection is the pool's one connection).
      const inTx = "select $1::int + 2 as n"
      await driver.transaction(async (tx) => {
        await tx.query(inTx, [1])
        await tx.query(inTx, [2])
      })
      expect(await preparedCount(driver, inTx)).toBe(1)
    } finally {
      await driver.close()
    }
  })

  it("prepares nothing when prepared statements are off", async () => {
    const text = "select $1::int + 3 as n"
    const driver = makePostgresDriver({ url: postgresUrl!, max: 1, prepare: false })
    try {
      expect(await driver.query(text, [1])).toEqual([{ n: 4 }])
      expect(await driver.query(text, [2])).toEqual([{ n: 5 }])
      expect(await preparedCount(driver, text)).toBe(0)
    } finally {
      await driver.close()
    }
  })

  it("fails the query, not the process, when a new connection's catalog query fails", async () => {
    process.on("unhandledRejection", record)
    const url = new URL(postgresUrl!)
    url.searchParams.set("statement_timeout", "1")
    for (let i = 0; i < 5; i++) {
      const driver = makePostgresDriver({ url: url.toString(), max: 1 })
      const outcome = await driver.query("select 1 as one").then(
        () => "answered",
        (error: { code?: string }) => error.code,
      )
      // Cancelled by the 1 ms timeout too, or answered: either way the caller hears of it.
      expect(["answered", "57014"]).toContain(outcome)
      await driver.close()
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(unhandled).toEqual([])
  })
})
