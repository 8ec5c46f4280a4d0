import type { TestProject } from "vitest/node"
import { createPgliteTemplate, removeFile, resolvePostgresUrl } from "./testing.ts"

declare module "vitest" {
  export interface ProvidedContext {
    postgresUrl: string | null
    pgliteTemplate: string
  }
}

export default async function setup(project: TestProject) {
  const [postgresUrl, pgliteTemplate] = await Promise.all([resolvePostgresUrl(), createPgliteTemplate()])
  project.provide("postgresUrl", postgresUrl)
  project.provide("pgliteTemplate", pgliteTemplate)
  return () => removeFile(pgliteTemplate)
}
