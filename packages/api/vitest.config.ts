import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // The API's own tests need no database: they run the router over a stub store.
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 30_000,
    pool: "forks",
    maxWorkers: 2,
  },
})
