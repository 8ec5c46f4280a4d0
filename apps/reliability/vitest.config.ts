import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const stress = process.env.CHRONICLE_STRESS === "1"

export default defineConfig({
  test: {
    // Decides whether the Postgres matrix runs and builds one migrated embedded-database template per run.
    globalSetup: [fileURLToPath(import.meta.resolve("@chronicle/store/vitest-global-setup"))],
    include: ["test/**/*.test.ts"],
    testTimeout: stress ? 1_800_000 : 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    // One file at a time: several suites measure the machine (memory, load) or kill processes.
    maxWorkers: 1,
    fileParallelism: false,
  },
})
