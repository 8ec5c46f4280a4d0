import type { IncomingMessage } from "node:http"

/**
 * The request's target as a URL, or null when it cannot be one. An origin-form target
 * ("/path?query") is read as a path even when it starts with "//", which `new URL(target, base)`
 * would take for another host (or refuse, for "//" alone).
 */
export const requestUrl = (req: IncomingMessage): URL | null => {
  const target = req.url ?? "/"
  return URL.parse(target.startsWith("/") ? `http://localhost${target}` : target)
}
