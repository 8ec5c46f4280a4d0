import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // Decides whether the Postgres matrix runs and builds one migrated embedded-database template per run.
    globalSetup: [fileURLToPath(import.meta.resolve("@chronicle/store/vitest-global-setup"))],
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
})
