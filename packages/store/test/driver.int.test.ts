/**
 * The Postgres driver survives a new connection whose first, internal statement fails.
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
