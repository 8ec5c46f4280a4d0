import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// The CLI test writes and rebuilds a 100k-event log. Its transactions hold back the commit-safe
// watermark of every reader on the Postgres server (it is server-wide, ARCHITECTURE.md), which
// would delay the live-delivery tests running beside it: it runs after them, on its own.
const HEAVY = ["test/projections-cli.e2e.test.ts"]

export default defineConfig({
  test: {
    // Decides whether the Postgres matrix runs and builds one migrated embedded-database template per run.
    globalSetup: [fileURLToPath(import.meta.resolve("@chronicle/store/vitest-global-setup"))],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: "server",
          include: ["test/**/*.test.ts", "src/**/*.test.ts"],
          exclude: HEAVY,
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: "cli", include: HEAVY, sequence: { groupOrder: 1 } } },
    ],
  },
})
