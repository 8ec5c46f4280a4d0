import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // Decides whether the Postgres matrix runs and builds one migrated embedded-database template per run.
    globalSetup: [fileURLToPath(import.meta.resolve("@chronicle/store/vitest-global-setup"))],
    // LangGraph's conformance suite calls describe/it/expect as globals.
    globals: true,
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
})
