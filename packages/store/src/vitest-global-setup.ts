import type { TestProject } from "vitest/node"
import { startMajorCluster } from "./postgres-majors.ts"
import { createPgliteTemplate, removeFile, resolvePostgresUrl } from "./testing.ts"
import { MAJOR_PROJECT } from "./vitest-projects.ts"

declare module "vitest" {
  export interface ProvidedContext {
    postgresUrl: string | null
    /** Null in a project that does not test the embedded database (a newer Postgres major's). */
    pgliteTemplate: string | null
  }
}

export default async function setup(project: TestProject) {
  const major = MAJOR_PROJECT.exec(project.name)?.[1]
  if (major !== undefined) {
    const cluster = await startMajorCluster(Number(major))
    console.log(`[chronicle] Postgres ${major} matrix runs against a private cluster at ${cluster.url}`)
    project.provide("postgresUrl", cluster.url)
    project.provide("pgliteTemplate", null)
    return () => cluster.stop()
  }
  const [postgresUrl, pgliteTemplate] = await Promise.all([resolvePostgresUrl(), createPgliteTemplate()])
  project.provide("postgresUrl", postgresUrl)
  project.provide("pgliteTemplate", pgliteTemplate)
  return () => removeFile(pgliteTemplate)
}
