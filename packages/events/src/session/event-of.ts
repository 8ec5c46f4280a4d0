/** A session event of one type. */
import type { SessionEvent } from "../catalog.ts"

export type SessionEventOf<T extends SessionEvent["type"]> = Extract<SessionEvent, { readonly type: T }>

export type SessionStarted = SessionEventOf<"SessionStarted">
export type SessionForked = SessionEventOf<"SessionForked">
