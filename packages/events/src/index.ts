export * from "./catalog.ts"
export * from "./codec.ts"
export * from "./errors.ts"
export * from "./primitives.ts"
