export * from "./config.ts"
export { describeDatabase, storeLayer } from "./database.ts"
export { type RunningServer, type StartOptions, startServer } from "./serve.ts"
