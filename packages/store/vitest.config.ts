import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    globalSetup: ["./src/vitest-global-setup.ts"],
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
})
