/**
 * The Content service: what is in a session, by concern (content/): messages, the code it works
 * on (IR revisions, drafts, hole resolutions), tool runs and attached files. Every write is a
 * session command (session/command.ts) answered from the events it recorded; every list is one
 * query over the read models, now or as of a version (content/read.ts).
 */
import { Context, Effect, Layer } from "effect"
import type { Actor } from "./actor.ts"
import type { CommandOptions } from "./command.ts"
import * as attachments from "./content/attachments.ts"
import type { DraftInput, HoleInput, RevisionInput } from "./content/code.ts"
import * as code from "./content/code.ts"
import type { MessageListInput, NewMessage } from "./content/messages.ts"
import * as messages from "./content/messages.ts"
import type { LargeListInput, ListInput } from "./content/read.ts"
import type { ToolRunInput } from "./content/tool-runs.ts"
import * as toolRuns from "./content/tool-runs.ts"
import type { AttachedFile, Draft, HoleResolution, Message, Page, Revision, ToolRun } from "./rows.ts"
import { layerServices } from "./services.ts"
import type { SessionsError } from "./session/command.ts"

export type { DraftInput, HoleInput, RevisionInput } from "./content/code.ts"
export type { MessageListInput, NewMessage } from "./content/messages.ts"
export type { LargeListInput, ListInput } from "./content/read.ts"
export type { ToolRunInput } from "./content/tool-runs.ts"

export interface ContentService {
  readonly appendMessages: (
    actor: Actor,
    sessionId: string,
    messages: ReadonlyArray<NewMessage>,
    options?: CommandOptions,
  ) => Effect.Effect<ReadonlyArray<Message>, SessionsError>
  readonly listMessages: (
    actor: Actor,
    sessionId: string,
    input: MessageListInput,
  ) => Effect.Effect<Page<Message>, SessionsError>
  readonly addRevision: (
    actor: Actor,
    sessionId: string,
    input: RevisionInput,
    options?: CommandOptions,
  ) => Effect.Effect<Revision, SessionsError>
  readonly listRevisions: (
    actor: Actor,
    sessionId: string,
    input: ListInput,
  ) => Effect.Effect<Page<Revision>, SessionsError>
  readonly recordDraft: (
    actor: Actor,
    sessionId: string,
    input: DraftInput,
    options?: CommandOptions,
  ) => Effect.Effect<Draft, SessionsError>
  readonly listDrafts: (
    actor: Actor,
    sessionId: string,
    input: ListInput,
  ) => Effect.Effect<Page<Draft>, SessionsError>
  readonly resolveHole: (
    actor: Actor,
    sessionId: string,
    input: HoleInput,
    options?: CommandOptions,
  ) => Effect.Effect<HoleResolution, SessionsError>
  readonly listHoles: (
    actor: Actor,
    sessionId: string,
    input: ListInput & { readonly holeId?: string | undefined },
  ) => Effect.Effect<Page<HoleResolution>, SessionsError>
  readonly recordToolRun: (
    actor: Actor,
    sessionId: string,
    input: ToolRunInput,
    options?: CommandOptions,
  ) => Effect.Effect<ToolRun, SessionsError>
  readonly listToolRuns: (
    actor: Actor,
    sessionId: string,
    input: LargeListInput,
  ) => Effect.Effect<Page<ToolRun>, SessionsError>
  readonly attachFile: (
    actor: Actor,
    sessionId: string,
    fileId: string,
    options?: CommandOptions,
  ) => Effect.Effect<AttachedFile, SessionsError>
  readonly detachFile: (
    actor: Actor,
    sessionId: string,
    fileId: string,
    options?: CommandOptions,
  ) => Effect.Effect<void, SessionsError>
  readonly listAttachedFiles: (
    actor: Actor,
    sessionId: string,
    input: ListInput,
  ) => Effect.Effect<Page<AttachedFile>, SessionsError>
}

/** What is in a session: messages, revisions, drafts, hole resolutions, tool runs, attached files. */
export class Content extends Context.Service<Content, ContentService>()("@chronicle/domain/Content") {
  static readonly layer = Layer.effect(
    Content,
    Effect.gen(function* () {
      const { provide } = yield* layerServices
      return Content.of({
        appendMessages: (a, s, m, o) => provide(messages.appendMessages(a, s, m, o)),
        listMessages: (a, s, i) => provide(messages.listMessages(a, s, i)),
        addRevision: (a, s, i, o) => provide(code.addRevision(a, s, i, o)),
        listRevisions: (a, s, i) => provide(code.listRevisions(a, s, i)),
        recordDraft: (a, s, i, o) => provide(code.recordDraft(a, s, i, o)),
        listDrafts: (a, s, i) => provide(code.listDrafts(a, s, i)),
        resolveHole: (a, s, i, o) => provide(code.resolveHole(a, s, i, o)),
        listHoles: (a, s, i) => provide(code.listHoles(a, s, i)),
        recordToolRun: (a, s, i, o) => provide(toolRuns.recordToolRun(a, s, i, o)),
        listToolRuns: (a, s, i) => provide(toolRuns.listToolRuns(a, s, i)),
        attachFile: (a, s, f, o) => provide(attachments.attachFile(a, s, f, o)),
        detachFile: (a, s, f, o) => provide(attachments.detachFile(a, s, f, o)),
        listAttachedFiles: (a, s, i) => provide(attachments.listAttachedFiles(a, s, i)),
      })
    }),
  )
}
