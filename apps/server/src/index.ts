export * from "./config.ts"
export { describeDatabase, storeLayer } from "./database.ts"
