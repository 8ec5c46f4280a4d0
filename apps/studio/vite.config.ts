import react from "@vitejs/plugin-react"
import { defineConfig } from "vite"

/**
 * The studio is served by the Chronicle server under /studio (apps/server/src/studio.ts),
 * from `dist/`. `pnpm dev` serves it with hot reload and forwards the API to a server on
 * :4000 (`pnpm start` in another terminal).
 */
export default defineConfig({
  base: "/studio/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Hashed names under assets/ are cached for a year by the server; index.html never is.
    assetsDir: "assets",
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: { "/trpc": { target: process.env.CHRONICLE_URL ?? "http://127.0.0.1:4000", ws: false } },
  },
})
