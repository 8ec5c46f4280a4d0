/**
 * The studio's one way to the service: the typed client from `@chronicle/client`, with the
 * user's token. Every call the studio makes goes through the public API.
 */
import {
  type ChronicleClient,
  createChronicleClient,
  isChronicleError,
  type RouterInputs,
  type RouterOutputs,
} from "@chronicle/client"
import { createContext, useContext } from "react"

export type { ChronicleClient, RouterInputs, RouterOutputs }

export type Session = RouterOutputs["sessions"]["get"]
export type Job = RouterOutputs["jobs"]["get"]
export type TimelineEntry = RouterOutputs["sessions"]["timeline"]["items"][number]
export type Checkpoint = RouterOutputs["checkpoints"]["list"]["items"][number]
export type AsOf = NonNullable<RouterInputs["sessions"]["get"]["asOf"]>

/** Who the studio acts as, as far as the studio can tell from what it was given. */
export type Identity =
  | { readonly kind: "dev" }
  | { readonly kind: "user"; readonly userId: string | null }
  | { readonly kind: "service" }

const TOKEN_KEY = "chronicle-studio-token"

export const storedToken = (): string | null => {
  try {
    return sessionStorage.getItem(TOKEN_KEY)
  } catch {
    return null
  }
}

export const storeToken = (token: string | null) => {
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_KEY)
    else sessionStorage.setItem(TOKEN_KEY, token)
  } catch {
    // Storage may be disabled; the token then lasts as long as the page.
  }
}

/** The service is the page's own origin: the studio is served by the server it speaks to. */
export const makeClient = (token: string | null, actingFor?: string): ChronicleClient =>
  createChronicleClient({
    url: window.location.origin,
    token: token ?? undefined,
    ...(actingFor === undefined ? {} : { actingFor }),
  })

/**
 * What a token says about its bearer, read from a JWT's payload (not verified here: the
 * server verifies every call). Anything that is not a JWT is the service key.
 */
export const identityOf = (token: string | null): Identity => {
  if (token === null) return { kind: "dev" }
  const parts = token.split(".")
  if (parts.length !== 3) return { kind: "service" }
  try {
    const payload = JSON.parse(atob(parts[1]!.replace(/-/g, "+").replace(/_/g, "/"))) as {
      sub?: unknown
      role?: unknown
    }
    if (payload.role === "service_role") return { kind: "service" }
    return { kind: "user", userId: typeof payload.sub === "string" ? payload.sub : null }
  } catch {
    return { kind: "user", userId: null }
  }
}

export interface Api {
  readonly client: ChronicleClient
  readonly identity: Identity
  /** A client acting for one owner (the service role's owner filter). */
  readonly actingFor: (owner: string) => ChronicleClient
  readonly signOut: () => void
}

export const ApiContext = createContext<Api | null>(null)

export const useApi = (): Api => {
  const api = useContext(ApiContext)
  if (api === null) throw new Error("useApi outside <ApiContext>")
  return api
}

/** A sentence for a person, from whatever a call threw. */
export const describeError = (error: unknown): { message: string; detail: string | null } => {
  if (isChronicleError(error)) {
    const data = error.data as { code?: string; requestId?: string | null } | undefined
    if (error.message === "Failed to fetch" || error.message.startsWith("NetworkError")) {
      return { message: "The server cannot be reached. Is it running?", detail: null }
    }
    const detail = [data?.code, data?.requestId ? `request ${data.requestId}` : null]
      .filter((part) => part)
      .join(" · ")
    return { message: error.message, detail: detail || null }
  }
  if (error instanceof Error) return { message: error.message, detail: null }
  return { message: String(error), detail: null }
}

export const errorCode = (error: unknown): string | null =>
  isChronicleError(error) ? ((error.data as { code?: string } | undefined)?.code ?? null) : null
