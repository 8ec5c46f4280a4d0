/**
 * `graphs.*`: the storage behind a LangGraph checkpointer (`@chronicle/langgraph`). A thread
 * id names one thread per owner; values arrive as the graph's serializer wrote them
 * (`{ type, data: base64 }`) and come back byte for byte. Every call acts for an owner: a
 * user for themselves, the service role for the owner it names (`x-chronicle-owner`).
 *
 * The two puts are safe to retry: with an `idempotencyKey` a retry returns the first
 * attempt's answer; without one, a put the thread already holds exactly records nothing.
 */
import { Graphs } from "@chronicle/domain"
import {
  ChannelBlobInput,
  ChannelVersion,
  CheckpointNamespace,
  GraphCheckpointId,
  PendingWriteInput,
  SerializedValue,
} from "@chronicle/events"
import { Effect, Schema } from "effect"
import { MAX_BATCH_SIZE } from "../limits.ts"
import { authedProcedure, router } from "../trpc.ts"
import { actorOf } from "./actor.ts"
import { CommandOptions, input, JsonObject, Name, Page, Text } from "./schemas.ts"

const ThreadId = Name(500)

export const graphsRouter = router({
  /**
   * Saves a checkpoint and the values of the channels that changed in it: each whole
   * (`value`), or a list as the items it added to another version of the channel (`list`:
   * `base`, the `keep` first items of it, then `items`). A base the thread does not hold is
   * NOT_FOUND (send the whole list instead).
   */
  putCheckpoint: authedProcedure
    .input(
      input(
        Schema.Struct({
          threadId: ThreadId,
          checkpointNs: CheckpointNamespace,
          checkpointId: GraphCheckpointId,
          parentCheckpointId: Schema.NullOr(GraphCheckpointId),
          checkpoint: SerializedValue,
          metadata: JsonObject,
          channelVersions: Schema.Record(Schema.String, ChannelVersion),
          blobs: Schema.Array(ChannelBlobInput),
          idempotencyKey: CommandOptions.idempotencyKey,
        }),
      ),
    )
    .mutation(({ ctx, input: { idempotencyKey, ...put } }) =>
      ctx.run(
        Effect.flatMap(Graphs, (g) => g.putCheckpoint(actorOf(ctx.principal), put, { idempotencyKey })),
      ),
    ),

  /** Saves a task's writes against a checkpoint. */
  putWrites: authedProcedure
    .input(
      input(
        Schema.Struct({
          threadId: ThreadId,
          checkpointNs: CheckpointNamespace,
          checkpointId: GraphCheckpointId,
          taskId: Name(500),
          taskPath: Text(2000),
          writes: Schema.Array(PendingWriteInput).pipe(Schema.check(Schema.isMaxLength(MAX_BATCH_SIZE))),
          idempotencyKey: CommandOptions.idempotencyKey,
        }),
      ),
    )
    .mutation(({ ctx, input: { idempotencyKey, ...put } }) =>
      ctx.run(Effect.flatMap(Graphs, (g) => g.putWrites(actorOf(ctx.principal), put, { idempotencyKey }))),
    ),

  /** A checkpoint by id, or the thread's latest in the namespace; null when there is none. */
  getTuple: authedProcedure
    .input(
      input(
        Schema.Struct({
          threadId: ThreadId,
          checkpointNs: CheckpointNamespace,
          checkpointId: Schema.optional(GraphCheckpointId),
        }),
      ),
    )
    .query(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Graphs, (g) => g.getTuple(actorOf(ctx.principal), input))),
    ),

  /** Checkpoints newest first: of a thread, or of every thread of the owner. */
  list: authedProcedure
    .input(
      input(
        Schema.Struct({
          threadId: Schema.optional(ThreadId),
          checkpointNs: Schema.optional(CheckpointNamespace),
          checkpointId: Schema.optional(GraphCheckpointId),
          before: Schema.optional(GraphCheckpointId),
          filter: Schema.optional(JsonObject),
          ...Page,
        }),
      ),
    )
    .query(({ ctx, input }) =>
      ctx.run(
        Effect.flatMap(Graphs, (g) => g.list(actorOf(ctx.principal), { ...input, maxBytes: ctx.pageBytes })),
      ),
    ),

  /** Records the thread's deletion: reads then find no checkpoints. The events stay in the log. */
  deleteThread: authedProcedure
    .input(input(Schema.Struct({ threadId: ThreadId })))
    .mutation(({ ctx, input }) =>
      ctx.run(Effect.flatMap(Graphs, (g) => g.deleteThread(actorOf(ctx.principal), input.threadId))),
    ),
})
