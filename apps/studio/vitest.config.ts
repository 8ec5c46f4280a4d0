import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    globalSetup: [
      // Decides whether the Postgres matrix runs and builds one migrated embedded-database template.
      fileURLToPath(import.meta.resolve("@chronicle/store/vitest-global-setup")),
      // Builds the studio, so the server under test serves the current sources.
      fileURLToPath(new URL("./test/build.ts", import.meta.url)),
    ],
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
  },
})
