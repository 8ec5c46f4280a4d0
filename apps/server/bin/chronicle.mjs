#!/usr/bin/env node
// The `chronicle` command in the workspace: checks the Node version, then runs the sources.
// The built program (`pnpm build`) is `node apps/server/dist/cli.mjs`.
import "./require-node.mjs"

await import("../src/cli.ts")
