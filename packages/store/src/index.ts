export { type Cursor, decodeCursor, encodeCursor, START } from "./cursor.ts"
export { CurrentTransaction, Database, type DatabaseService, makeDatabase } from "./database.ts"
export type { Connection, Driver } from "./driver.ts"
export * from "./errors.ts"
export * from "./event-store.ts"
export { findNonJson, isJsonObject, type Json } from "./json.ts"
export {
  BASELINE_VERSION,
  defaultMigrationsDir,
  loadMigrations,
  type Migration,
  type MigrationReport,
  migrate,
} from "./migrations.ts"
export { makePgliteDriver, type PgliteDriver, type PgliteDriverOptions } from "./pglite-driver.ts"
export { makePostgresDriver, type PostgresDriverOptions, redactUrl } from "./postgres-driver.ts"
export type { SequencerOptions } from "./sequencer.ts"
export { isUuid, makeStreamId, type ParsedStreamId, parseStreamId, STREAM_ID_FORMAT } from "./stream-id.ts"
