/** `files.*` and `artifacts.*`: stored files, their attachment to sessions, and job outputs. */
import { Content, Files, Jobs } from "@chronicle/domain"
import { InvalidCommand, PayloadTooLarge } from "@chronicle/events"
import { Effect, Schema } from "effect"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf } from "./actor.ts"
import { ArtifactKind, AsOf, Base64, CommandOptions, input, MimeType, Name, Page, Uuid } from "./schemas.ts"

export const filesRouter = router({
  /**
   * Stores a file. The bytes travel base64-encoded and are kept once per distinct content
   * (SHA-256); the size limit and the MIME allow-list apply.
   */
  put: authedProcedure
    .input(input(Schema.Struct({ name: Name(255), mimeType: MimeType, contentBase64: Base64 })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.gen(function* () {
          // Refuse before decoding: base64 is 4/3 of the bytes.
          const approximate = Math.floor((input.contentBase64.length * 3) / 4)
          if (approximate > ctx.limits.maxFileBytes + 2) {
            return yield* new PayloadTooLarge({
              what: "The file",
              size: approximate,
              limit: ctx.limits.maxFileBytes,
            })
          }
          const content = Buffer.from(input.contentBase64, "base64")
          if (content.toString("base64").replace(/=+$/, "") !== input.contentBase64.replace(/=+$/, "")) {
            return yield* new InvalidCommand({ path: "contentBase64", reason: "is not valid base64" })
          }
          const files = yield* Files
          return yield* files.put(actorOf(ctx.principal), {
            content,
            name: input.name,
            mimeType: input.mimeType,
          })
        }),
      ),
    ),

  /** A file's record; with `includeContent`, its bytes as base64 too. */
  get: authedProcedure
    .input(input(Schema.Struct({ id: Uuid, includeContent: Schema.optional(Schema.Boolean) })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.gen(function* () {
          const files = yield* Files
          if (!input.includeContent)
            return { ...(yield* files.get(actorOf(ctx.principal), input.id)), contentBase64: null }
          const { file, content } = yield* files.content(actorOf(ctx.principal), input.id)
          return { ...file, contentBase64: Buffer.from(content).toString("base64") }
        }),
      ),
    ),

  /** Your files, newest first; with `sessionId`, the files attached to that session (optionally as of). */
  list: authedProcedure
    .input(input(Schema.UndefinedOr(Schema.Struct({ ...Page }))))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Files, (f) => f.list(actorOf(ctx.principal), { ...input, maxBytes: ctx.pageBytes })),
      ),
    ),

  listAttached: authedProcedure
    .input(input(Schema.Struct({ sessionId: Uuid, asOf: Schema.optional(AsOf), ...Page })))
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.listAttachedFiles(actorOf(ctx.principal), input.sessionId, { ...input, maxBytes: ctx.pageBytes }),
        ),
      ),
    ),

  attach: authedProcedure
    .input(input(Schema.Struct({ sessionId: Uuid, fileId: Uuid, ...CommandOptions })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.attachFile(actorOf(ctx.principal), input.sessionId, input.fileId, {
            expectedVersion: input.expectedVersion,
            idempotencyKey: input.idempotencyKey,
          }),
        ),
      ),
    ),

  detach: authedProcedure
    .input(input(Schema.Struct({ sessionId: Uuid, fileId: Uuid, ...CommandOptions })))
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Content, (c) =>
          c.detachFile(actorOf(ctx.principal), input.sessionId, input.fileId, {
            expectedVersion: input.expectedVersion,
            idempotencyKey: input.idempotencyKey,
          }),
        ).pipe(Effect.as({ detached: true as const })),
      ),
    ),
})

export const artifactsRouter = router({
  /** Records a stored file as an output of a job (generated code, a log…). */
  record: authedProcedure
    .input(
      input(
        Schema.Struct({
          jobId: Uuid,
          fileId: Uuid,
          kind: ArtifactKind,
          name: Schema.optional(Name(255)),
          ...CommandOptions,
        }),
      ),
    )
    .mutation(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Jobs, (j) =>
          j.recordArtifact(
            actorOf(ctx.principal),
            input.jobId,
            {
              fileId: input.fileId,
              kind: input.kind,
              ...(input.name !== undefined ? { name: input.name } : {}),
            },
            { expectedVersion: input.expectedVersion, idempotencyKey: input.idempotencyKey },
          ),
        ),
      ),
    ),

  /** A job's artifacts, or those of every job of a session. */
  list: authedProcedure
    .input(
      input(
        Schema.Union([Schema.Struct({ jobId: Uuid, ...Page }), Schema.Struct({ sessionId: Uuid, ...Page })]),
      ),
    )
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Jobs, (j) =>
          j.listArtifacts(
            actorOf(ctx.principal),
            "jobId" in input ? { jobId: input.jobId } : { sessionId: input.sessionId },
            { ...input, maxBytes: ctx.pageBytes },
          ),
        ),
      ),
    ),
})
