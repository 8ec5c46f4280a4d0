import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // npm install of the packed packages and their peers (from the npm cache after the first run).
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
})
