/** `auth.*`: what a caller needs to authenticate where headers cannot go. */
import { authedProcedure, router } from "../trpc.ts"

export const authRouter = router({
  /**
   * A ticket that opens subscriptions for the next 60 seconds, as you. A browser's
   * EventSource cannot send an Authorization header, so it puts its credentials in the URL
   * (`connectionParams: { ticket }`); a ticket keeps your token (and the service key, which
   * is never accepted there) out of URLs, logs and histories. A mutation, so it is never
   * cached and never in a URL itself.
   */
  streamTicket: authedProcedure.mutation(({ ctx }) => ctx.issueTicket(ctx.principal)),
})
