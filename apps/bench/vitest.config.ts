import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // Decides whether the Postgres run happens (TEST_DATABASE_URL), as every package's tests do.
    globalSetup: [fileURLToPath(import.meta.resolve("@chronicle/store/vitest-global-setup"))],
    include: ["test/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 1,
  },
})
