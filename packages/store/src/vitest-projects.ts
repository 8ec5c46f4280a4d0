/**
 * The test projects of a package whose integration tests run on every database of the matrix:
 * `default` (the embedded database and the local Postgres server, TEST_DATABASE_URL) and one
 * `postgres-<major>` project per newer major (TEST_POSTGRES_MAJORS, default 17,18), which runs
 * the integration tests again on a private cluster of that major only (no embedded database,
 * no unit tests: they touch no server). The global setup tells them apart by name.
 */
import { fileURLToPath } from "node:url"
import type { TestProjectInlineConfiguration } from "vitest/config"
import { binariesOf, requestedMajors } from "./postgres-majors.ts"

const globalSetup = fileURLToPath(new URL("./vitest-global-setup.ts", import.meta.url))

export const MAJOR_PROJECT = /^postgres-(\d+)$/

export const databaseProjects = (options: {
  readonly include: ReadonlyArray<string>
  readonly integration: ReadonlyArray<string>
}): Array<TestProjectInlineConfiguration> => {
  const majors = requestedMajors().filter((major) => {
    const found = binariesOf(major)
    if ("dir" in found) return true
    const line = `[chronicle] Postgres ${major} matrix NOT run: ${found.missing}`
    if (process.env.CI) throw new Error(line)
    console.log(line)
    return false
  })
  return [
    { extends: true, test: { name: "default", globalSetup: [globalSetup], include: [...options.include] } },
    ...majors.map((major) => ({
      extends: true,
      test: { name: `postgres-${major}`, globalSetup: [globalSetup], include: [...options.integration] },
    })),
  ]
}
