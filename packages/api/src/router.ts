import { analyticsRouter, projectionsRouter } from "./routers/analytics.ts"
import { authRouter } from "./routers/auth.ts"
import {
  draftsRouter,
  holesRouter,
  messagesRouter,
  revisionsRouter,
  toolRunsRouter,
} from "./routers/content.ts"
import { eventsRouter } from "./routers/events.ts"
import { artifactsRouter, filesRouter } from "./routers/files.ts"
import { graphsRouter } from "./routers/graphs.ts"
import { healthProcedure } from "./routers/health.ts"
import { jobsRouter } from "./routers/jobs.ts"
import { sandboxesRouter } from "./routers/sandboxes.ts"
import { checkpointsRouter, importsRouter, sessionsRouter } from "./routers/sessions.ts"
import { router } from "./trpc.ts"

/** Every namespace of the API. */
export const appRouter = router({
  health: healthProcedure,
  auth: authRouter,
  sessions: sessionsRouter,
  messages: messagesRouter,
  revisions: revisionsRouter,
  drafts: draftsRouter,
  holes: holesRouter,
  files: filesRouter,
  artifacts: artifactsRouter,
  toolRuns: toolRunsRouter,
  jobs: jobsRouter,
  checkpoints: checkpointsRouter,
  sandboxes: sandboxesRouter,
  events: eventsRouter,
  projections: projectionsRouter,
  analytics: analyticsRouter,
  imports: importsRouter,
  graphs: graphsRouter,
})

export type AppRouter = typeof appRouter
