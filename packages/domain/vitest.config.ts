import { databaseProjects } from "@chronicle/store/vitest-projects"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    // The embedded database and the local Postgres, then each newer Postgres major (private clusters).
    projects: databaseProjects({
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      integration: ["test/**/*.int.test.ts"],
    }),
  },
})
