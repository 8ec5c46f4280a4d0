/**
 * The server as one built program: `node apps/server/dist/cli.mjs serve`. The workspace's own
 * packages are bundled in; npm dependencies stay imports, installed by `pnpm install --prod`.
 * The migrations (`supabase/migrations`) and the Studio (`apps/studio/dist`) are read from the
 * checkout at run time, at the same relative paths as from the sources.
 */
import { defineConfig } from "tsdown"

export default defineConfig({
  entry: { cli: "src/cli.ts" },
  format: "esm",
  platform: "node",
  target: "node24",
  fixedExtension: true,
  sourcemap: true,
  clean: true,
  dts: false,
  // npm packages stay imports (PGlite finds its WebAssembly beside its own files).
  deps: { alwaysBundle: [/^@chronicle\//], neverBundle: [/^(?!@chronicle\/)[@a-z]/] },
})
