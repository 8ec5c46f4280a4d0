import { resolve } from "node:path"

/** Where the data lives: the embedded database (on disk or in memory) or a Postgres server. */
export type DatabaseConfig =
  | { readonly kind: "embedded"; readonly dataDir: string }
  | { readonly kind: "memory" }
  | { readonly kind: "postgres"; readonly url: string; readonly prepare: boolean; readonly listen: boolean }

export interface ServerConfig {
  readonly database: DatabaseConfig
  readonly host: string
  readonly port: number
}

export class ConfigError extends Error {
  override readonly name = "ConfigError"
}

const DEFAULT_DATA_DIR = ".chronicle/data"

const flag = (env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean => {
  const raw = env[name]
  if (raw === undefined || raw === "") return fallback
  if (["1", "true", "yes", "on"].includes(raw.toLowerCase())) return true
  if (["0", "false", "no", "off"].includes(raw.toLowerCase())) return false
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(raw)}`)
}

/**
 * Reads the database settings from the environment:
 * - DATABASE_URL unset: the embedded database in CHRONICLE_DATA_DIR (default ./.chronicle/data)
 * - DATABASE_URL=memory://: the embedded database in memory; nothing persists
 * - DATABASE_URL=postgres://… (or postgresql://…): Postgres or Supabase. Behind a
 *   transaction-mode pooler set CHRONICLE_PG_PREPARE=false and CHRONICLE_PG_LISTEN=false.
 */
export const databaseConfig = (env: NodeJS.ProcessEnv = process.env): DatabaseConfig => {
  const url = env.DATABASE_URL?.trim()
  if (url === undefined || url === "") {
    return { kind: "embedded", dataDir: resolve(env.CHRONICLE_DATA_DIR?.trim() || DEFAULT_DATA_DIR) }
  }
  if (url === "memory://" || url === "memory:") return { kind: "memory" }
  if (/^postgres(ql)?:\/\//.test(url)) {
    try {
      new URL(url)
    } catch {
      throw new ConfigError("DATABASE_URL is not a valid URL")
    }
    // Supavisor's transaction mode listens on 6543: prepared statements and LISTEN do not work there.
    const pooled = new URL(url).port === "6543"
    return {
      kind: "postgres",
      url,
      prepare: flag(env, "CHRONICLE_PG_PREPARE", !pooled),
      listen: flag(env, "CHRONICLE_PG_LISTEN", !pooled),
    }
  }
  throw new ConfigError(
    `DATABASE_URL must be postgres://…, postgresql://… or memory://, got a URL starting ${JSON.stringify(url.split(":")[0])}`,
  )
}

export const serverConfig = (env: NodeJS.ProcessEnv = process.env): ServerConfig => {
  const port = env.PORT === undefined || env.PORT === "" ? 4000 : Number(env.PORT)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`PORT must be a whole number from 0 to 65535, got ${JSON.stringify(env.PORT)}`)
  }
  return { database: databaseConfig(env), host: env.HOST?.trim() || "127.0.0.1", port }
}
