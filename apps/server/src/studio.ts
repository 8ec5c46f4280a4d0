/**
 * Serves Chronicle Studio (apps/studio, built by `vite build` into apps/studio/dist) under
 * /studio: the files with their content types, index.html for every other path below
 * /studio (the studio's own routes), nothing outside the build directory. Hashed assets
 * (assets/<name>-<hash>.<ext>) are cached for a year; index.html is revalidated on every
 * load, so a new build is picked up at once.
 */
import { createReadStream } from "node:fs"
import { stat } from "node:fs/promises"
import type { IncomingMessage, ServerResponse } from "node:http"
import { extname, join, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
import { requestUrl } from "./request-url.ts"

export const STUDIO_PATH = "/studio"

/** Where `pnpm --filter @chronicle/studio build` writes the studio. */
export const defaultStudioDir = fileURLToPath(new URL("../../studio/dist", import.meta.url))

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
}

const IMMUTABLE = "public, max-age=31536000, immutable"
const REVALIDATE = "no-cache"
/** Vite names built assets `<name>-<8+ chars of hash>.<ext>`. */
const HASHED = /-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/

/**
 * The studio is built files only: its scripts, styles and calls all come from this origin, so
 * the policy allows nothing else (no inline script, no other host, no framing). An injected
 * script or style, or a call to another site, is refused by the browser.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ")

const SECURITY_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
}

const isFile = async (path: string) => {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

const send = (
  req: IncomingMessage,
  res: ServerResponse,
  file: string,
  size: number,
  headers: Record<string, string>,
) =>
  new Promise<void>((done) => {
    res.writeHead(200, { ...SECURITY_HEADERS, ...headers, "content-length": String(size) })
    if (req.method === "HEAD") {
      res.end()
      return done()
    }
    const stream = createReadStream(file)
    stream.once("error", () => {
      res.destroy()
      done()
    })
    stream.once("end", () => done())
    stream.pipe(res)
  })

const plain = (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}) => {
  res
    .writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...headers })
    .end(text)
}

/** Whether an Accept header lists text/html (with a non-zero quality): a browser navigating. */
const acceptsHtml = (accept: string | undefined) =>
  (accept ?? "").split(",").some((range) => {
    const [type, ...params] = range.split(";").map((part) => part.trim().toLowerCase())
    const q = params.find((p) => p.startsWith("q="))
    return type === "text/html" && (q === undefined || Number(q.slice(2)) > 0)
  })

/**
 * A browser opening the server's root (a GET of exactly `/` that accepts HTML) is sent to the
 * studio with a 302, keeping the query; any other client gets what `/` answered before (the
 * 404 naming the API), so scripts and probes see no change.
 */
export const redirectsToStudio = (req: IncomingMessage, pathname: string) =>
  pathname === "/" && req.method === "GET" && acceptsHtml(req.headers.accept)

export const redirectToStudio = (req: IncomingMessage, res: ServerResponse) => {
  const search = requestUrl(req)?.search ?? ""
  // The answer depends on Accept, so a cache must not hand it to an API client.
  res.writeHead(302, { location: `${STUDIO_PATH}/${search}`, vary: "accept" }).end()
}

/**
 * A handler for paths at or below /studio. Answers 503 with how to build it when the
 * studio has not been built.
 */
export const makeStudioHandler = (dir: string = defaultStudioDir) => {
  const root = resolve(dir)
  const index = join(root, "index.html")

  return async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return plain(res, 405, "The studio is read with GET\n", { allow: "GET, HEAD" })
    }
    // Relative URLs in the page resolve against /studio/, so the bare path redirects there.
    if (pathname === STUDIO_PATH) {
      const search = requestUrl(req)?.search ?? ""
      res.writeHead(308, { location: `${STUDIO_PATH}/${search}` }).end()
      return
    }
    if (!(await isFile(index))) {
      return plain(
        res,
        503,
        "Chronicle Studio is not built. Run `pnpm --filter @chronicle/studio build` (or `pnpm start`, which builds it).\n",
      )
    }

    let relative: string
    try {
      relative = decodeURIComponent(pathname.slice(STUDIO_PATH.length + 1))
    } catch {
      return plain(res, 400, "Malformed path\n")
    }
    const target = resolve(root, `.${sep}${relative}`)
    // Anything that escapes the build directory (`..`, encoded or not) is not served.
    if (relative.includes("\0") || (target !== root && !target.startsWith(root + sep))) {
      return plain(res, 404, "Not found\n")
    }

    if (relative !== "" && (await isFile(target))) {
      const type = CONTENT_TYPES[extname(target).toLowerCase()] ?? "application/octet-stream"
      const cache = relative.startsWith("assets/") && HASHED.test(relative) ? IMMUTABLE : REVALIDATE
      return send(req, res, target, (await stat(target)).size, {
        "content-type": type,
        "cache-control": cache,
      })
    }
    // A missing asset is a 404; any other path is one of the studio's routes.
    if (relative.startsWith("assets/") || extname(relative) !== "") {
      return plain(res, 404, "Not found\n")
    }
    return send(req, res, index, (await stat(index)).size, {
      "content-type": CONTENT_TYPES[".html"]!,
      "cache-control": REVALIDATE,
    })
  }
}
