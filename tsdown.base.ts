/**
 * The one build of the publishable packages (`@chronicle/client` and the framework adapters):
 * ESM and CommonJS JavaScript with bundled type declarations, into `dist/`. Inside the
 * workspace every package still resolves to its `src/` (the `exports` of its package.json);
 * `pnpm pack` and `pnpm publish` swap in `publishConfig`, which points at `dist/`.
 */
import { defineConfig, type UserConfig } from "tsdown"

export const library = (overrides: UserConfig = {}) =>
  defineConfig({
    entry: ["src/index.ts"],
    format: ["esm", "cjs"],
    platform: "node",
    target: "node20",
    sourcemap: true,
    clean: true,
    // `.mjs` and `.cjs` whatever the package's `type`, so the two builds never collide.
    fixedExtension: true,
    // Only `src/`: the tests import the server, which a declaration build need not see.
    tsconfig: "tsconfig.build.json",
    dts: true,
    deps: {
      // The router's type comes from the server's packages, which are not published: its
      // declaration is copied in. Anything a consumer installs stays an import.
      dts: { alwaysBundle: [/^@chronicle\/(api|domain|events|projections|store)(\/|$)/] },
    },
    // The server's declarations import Effect for types the router's type never reaches; no
    // package is needed for its side effects, so such imports are dropped rather than left as
    // `import "effect"` for a consumer who does not have it.
    treeshake: { moduleSideEffects: (_id: string, external: boolean) => !external },
    ...overrides,
  })
