import { resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { ConfigError, databaseConfig, serverConfig } from "../src/config.ts"

describe("configuration from the environment", () => {
  it("defaults to the embedded database in ./.chronicle/data on 127.0.0.1:4000", () => {
    expect(serverConfig({})).toEqual({
      database: { kind: "embedded", dataDir: resolve(".chronicle/data") },
      host: "127.0.0.1",
      port: 4000,
    })
  })

  it("honours CHRONICLE_DATA_DIR, memory:// and postgres URLs", () => {
    expect(databaseConfig({ CHRONICLE_DATA_DIR: "/tmp/x" })).toEqual({ kind: "embedded", dataDir: "/tmp/x" })
    expect(databaseConfig({ DATABASE_URL: "memory://" })).toEqual({ kind: "memory" })
    expect(databaseConfig({ DATABASE_URL: "postgresql://u:p@db:5432/app" })).toEqual({
      kind: "postgres",
      url: "postgresql://u:p@db:5432/app",
      prepare: true,
      listen: true,
    })
  })

  it("turns prepared statements and LISTEN off for a transaction-mode pooler unless told otherwise", () => {
    expect(databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6543/app" })).toMatchObject({
      prepare: false,
      listen: false,
    })
    expect(
      databaseConfig({ DATABASE_URL: "postgres://u:p@pooler:6543/app", CHRONICLE_PG_PREPARE: "true" }),
    ).toMatchObject({ prepare: true, listen: false })
  })

  it("refuses a malformed setting with a message naming it", () => {
    expect(() => databaseConfig({ DATABASE_URL: "mysql://x" })).toThrow(ConfigError)
    expect(() => databaseConfig({ DATABASE_URL: "mysql://x" })).toThrow(/DATABASE_URL must be/)
    expect(() => serverConfig({ PORT: "http" })).toThrow(/PORT must be/)
    expect(() =>
      databaseConfig({ DATABASE_URL: "postgres://x:5432/a", CHRONICLE_PG_LISTEN: "maybe" }),
    ).toThrow(/CHRONICLE_PG_LISTEN must be true or false/)
  })
})
