export type { inferRouterInputs, inferRouterOutputs } from "@trpc/server"
export {
  ACTING_FOR_HEADER,
  type AuthConfig,
  type AuthFailure,
  type AuthVerifier,
  bearerToken,
  type Credentials,
  canRead,
  DEV_OWNER_ID,
  isDevMode,
  listScope,
  makeAuthVerifier,
  type Principal,
} from "./auth.ts"
export {
  type ApiRuntime,
  type ApiServices,
  type Context,
  type ContextOptions,
  type CreateContext,
  makeCreateContext,
  type RequestInfo,
} from "./context.ts"
export {
  ChronicleError,
  type ChronicleErrorData,
  causeToTRPCError,
  describeError,
  ERROR_CODES,
  errorResponseBody,
  formatIssues,
  INVALID_INPUT,
  type InputIssue,
  internalErrorMessage,
  type KnownError,
  type KnownErrorTag,
  toTRPCError,
  Unauthenticated,
  UnexpectedFailure,
} from "./errors.ts"
export * from "./limits.ts"
export { type AppRouter, appRouter } from "./router.ts"
export {
  EventTypes,
  EventView,
  ListLimit,
  LogCursor,
  ReadAllInput,
  ReadAllOutput,
  ReadStreamInput,
  ReadStreamOutput,
  StreamId,
  SubscribeInput,
} from "./routers/events.ts"
export {
  authedProcedure,
  createCallerFactory,
  publicProcedure,
  router,
  SSE_PING_INTERVAL_MS,
} from "./trpc.ts"

import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server"
import type { AppRouter } from "./router.ts"
/** Every procedure's input, by path: `RouterInputs["events"]["readStream"]`. */
export type RouterInputs = inferRouterInputs<AppRouter>
/** Every procedure's output, by path: `RouterOutputs["events"]["readStream"]`. */
export type RouterOutputs = inferRouterOutputs<AppRouter>
