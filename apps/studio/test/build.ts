/** Vitest global setup: builds the studio into dist/ (as `pnpm build` does) before any test. */
import { fileURLToPath } from "node:url"
import { build } from "vite"

export default async function setup() {
  await build({ root: fileURLToPath(new URL("..", import.meta.url)), logLevel: "warn" })
}
