/**
 * How the server serves the built studio under /studio: content types, the index.html
 * fallback for the studio's routes, caching, and nothing outside the build directory.
 */
import { readdir } from "node:fs/promises"
import { request } from "node:http"
import { startTestServer, type TestServer, testDatabases } from "@chronicle/server/testing"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const embedded = testDatabases(env).find((d) => d.name === "pglite")!

/** A raw request, so paths reach the server exactly as written (fetch would normalise `..`). */
const raw = (url: string, path: string, method = "GET", headers: Record<string, string> = {}) =>
  new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>(
    (resolve, reject) => {
      const req = request(`${url}${path}`, { method, headers }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        )
      })
      req.on("error", reject)
      req.end()
    },
  )

describe("the server serves the studio", () => {
  let t: TestServer
  let assets: Array<string>
  beforeAll(async () => {
    t = await startTestServer(embedded)
    assets = await readdir(new URL("../dist/assets", import.meta.url))
  })
  afterAll(() => t?.close())

  it("answers /studio/ with the page, revalidated on every load", async () => {
    const res = await raw(t.server.url, "/studio/")
    expect(res.status).toBe(200)
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(res.headers["cache-control"]).toBe("no-cache")
    expect(res.headers["x-content-type-options"]).toBe("nosniff")
    expect(res.body).toContain('<div id="root"></div>')
  })

  it("redirects /studio to /studio/, keeping the query", async () => {
    const res = await raw(t.server.url, "/studio?x=1")
    expect(res.status).toBe(308)
    expect(res.headers.location).toBe("/studio/?x=1")
  })

  it("sends a browser opening / to the studio, and leaves / as it was for other clients", async () => {
    const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    const res = await raw(t.server.url, "/", "GET", { accept: browser })
    expect(res.status).toBe(302)
    expect(res.headers.location).toBe("/studio/")
    expect(res.headers.vary).toBe("accept")
    expect((await raw(t.server.url, "/?x=1", "GET", { accept: browser })).headers.location).toBe(
      "/studio/?x=1",
    )

    // Not a browser navigating: no Accept, JSON only, HTML refused, another method, another path.
    for (const [method, path, accept] of [
      ["GET", "/", undefined],
      ["GET", "/", "application/json"],
      ["GET", "/", "*/*"],
      ["GET", "/", "text/html;q=0"],
      ["HEAD", "/", browser],
      ["POST", "/", browser],
      ["GET", "/index.html", browser],
    ] as const) {
      const other = await raw(t.server.url, path, method, accept === undefined ? {} : { accept })
      expect(other.status, `${method} ${path} ${accept}`).toBe(404)
      expect(other.headers.location).toBeUndefined()
      if (method !== "HEAD") expect(other.body).toContain("the API is at /trpc")
    }
  })

  it("answers the studio's own routes with the page, so they can be reloaded", async () => {
    for (const path of ["/studio/jobs", "/studio/sessions/00000000-0000-4000-8000-000000000001?at=v:2"]) {
      const res = await raw(t.server.url, path)
      expect(res.status, path).toBe(200)
      expect(res.body).toContain('<div id="root"></div>')
    }
  })

  it("serves hashed assets with their content type, cached for a year", async () => {
    const script = assets.find((name) => name.endsWith(".js"))!
    const style = assets.find((name) => name.endsWith(".css"))!
    const js = await raw(t.server.url, `/studio/assets/${script}`)
    expect(js.status).toBe(200)
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8")
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable")
    const css = await raw(t.server.url, `/studio/assets/${style}`, "HEAD")
    expect(css.status).toBe(200)
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8")
    expect(Number(css.headers["content-length"])).toBeGreaterThan(0)
    expect(css.body).toBe("")
  })

  it("answers a missing asset with 404, not the page", async () => {
    const res = await raw(t.server.url, "/studio/assets/nothing-12345678.js")
    expect(res.status).toBe(404)
  })

  it("never serves a file outside the build directory", async () => {
    for (const path of [
      "/studio/../package.json",
      "/studio/..%2f..%2fpackage.json",
      "/studio/%2e%2e/%2e%2e/package.json",
      "/studio/assets/..%2f..%2f..%2fserver%2fsrc%2fstudio.ts",
      "/studio/%2e%2e%5c..%5cpackage.json",
    ]) {
      const res = await raw(t.server.url, path)
      expect(res.body, path).not.toContain('"name"')
      expect(res.body, path).not.toContain("makeStudioHandler")
      expect([200, 404], path).toContain(res.status)
    }
  })

  it("refuses methods other than GET and HEAD", async () => {
    const res = await raw(t.server.url, "/studio/", "POST")
    expect(res.status).toBe(405)
    expect(res.headers.allow).toBe("GET, HEAD")
  })

  it("leaves the API where it was", async () => {
    const res = await raw(t.server.url, "/trpc/health")
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ result: { data: { ok: true } } })
  })
})
