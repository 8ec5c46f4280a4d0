/**
 * Chronicle Studio in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core) against the real server on Postgres: the pages a person uses, the
 * moves they make (checkpoint, append, roll back, fork, rebuild), live events, a phone-width
 * screen, and sign-in when the server checks tokens. Every page must log no console error.
 * Screenshots go to test-artifacts/.
 */
import { existsSync } from "node:fs"
import { mkdir } from "node:fs/promises"
import { type ChronicleClient, createChronicleClient } from "@chronicle/client"
import { callers, sql, startTestServer, type TestServer, testDatabases } from "@chronicle/server/testing"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest"

const CHROMIUM = "/usr/bin/chromium"
const ARTIFACTS = new URL("../test-artifacts/", import.meta.url)
const DEV_MODE = { SUPABASE_URL: "", SUPABASE_JWT_SECRET: "", CHRONICLE_SERVICE_KEY: "" }
const WAIT = { timeout: 15_000 }

if (!existsSync(CHROMIUM)) {
  throw new Error(
    `The studio's browser tests need Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run installs it)`,
  )
}

const env = { postgresUrl: inject("postgresUrl"), pgliteTemplate: inject("pgliteTemplate") }
const databases = testDatabases(env)
const database = databases.find((d) => d.name === "postgres") ?? databases[0]!
if (database.name !== "postgres") {
  console.log("[studio] Postgres is not available: the browser tests run on the embedded database instead")
}

const screenshot = async (page: Page, name: string) => {
  await mkdir(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: new URL(`studio-${name}.png`, ARTIFACTS).pathname, fullPage: true })
}

/** Seeds what a person would find: a worked session, more sessions than a page, jobs. */
const seed = async (api: ChronicleClient) => {
  const main = await api.sessions.create.mutate({ title: "Plan a word-count CLI", externalKey: "thread-42" })
  await api.messages.appendMany.mutate({
    sessionId: main.id,
    messages: [
      { role: "system", content: "You write small, tested command-line tools." },
      { role: "user", content: "Write a CLI that counts the words in a file." },
      { role: "assistant", content: "Plan: read the file, split on whitespace, print the count." },
    ],
  })
  await api.revisions.add.mutate({
    sessionId: main.id,
    ir: { steps: ["read", "split", "count"] },
    note: "first IR",
  })
  await api.drafts.add.mutate({
    sessionId: main.id,
    code: "print(len(open(f).read()))",
    language: "python",
    valid: false,
    revisionNumber: 1,
  })
  await api.drafts.add.mutate({
    sessionId: main.id,
    code: "import sys\nprint(len(open(sys.argv[1]).read().split()))",
    language: "python",
    valid: true,
    revisionNumber: 1,
  })
  await api.drafts.add.mutate({ sessionId: main.id, code: 'wc -w "$1"', language: "bash", valid: true })
  await api.holes.resolve.mutate({
    sessionId: main.id,
    holeId: "?input",
    value: "sys.argv[1]",
    confidence: 0.9,
  })
  const file = await api.files.put.mutate({
    name: "words.txt",
    mimeType: "text/plain",
    contentBase64: Buffer.from("one two three\n").toString("base64"),
  })
  await api.files.attach.mutate({ sessionId: main.id, fileId: file.id })
  await api.toolRuns.record.mutate({
    sessionId: main.id,
    tool: "python",
    input: { file: "words.txt" },
    output: { stdout: "3" },
    status: "succeeded",
    durationMs: 42,
  })
  for (let i = 1; i <= 22; i++) {
    const s = await api.sessions.create.mutate({ title: `Support thread ${String(i).padStart(2, "0")}` })
    await api.messages.append.mutate({ sessionId: s.id, role: "user", content: `Question ${i}` })
    if (i % 7 === 0) await api.sessions.archive.mutate({ id: s.id })
  }
  const jobs = []
  for (const [type, end] of [
    ["compile", "complete"],
    ["compile", "fail"],
    ["test", "complete"],
    ["test", "running"],
    ["lint", "queued"],
  ] as const) {
    const job = await api.jobs.create.mutate({ type, sessionId: main.id, input: { target: "wc" } })
    jobs.push(job)
    if (end === "queued") continue
    await api.jobs.start.mutate({ id: job.id })
    const task = await api.jobs.addTask.mutate({ id: job.id, name: "build" })
    await api.jobs.progress.mutate({ id: job.id, progress: 0.5, message: "building" })
    if (end === "complete") {
      await api.jobs.updateTask.mutate({ id: job.id, taskId: task.id, status: "completed", progress: 1 })
      await api.jobs.complete.mutate({ id: job.id, output: { ok: true } })
    }
    if (end === "fail") await api.jobs.fail.mutate({ id: job.id, error: "gcc: no such file" })
  }
  // A LangGraph thread as @chronicle/langgraph saves one: checkpoints with JSON-serialized state.
  const json = (value: unknown) => ({
    type: "json",
    data: Buffer.from(JSON.stringify(value)).toString("base64"),
  })
  const threadId = "support-thread-7"
  let parent: string | null = null
  for (const [step, source, messages] of [
    [-1, "input", []],
    [0, "loop", ["hi"]],
    [1, "loop", ["hi", "hello! how can I help?"]],
  ] as const) {
    const checkpointId = `1ef4f797-8335-6428-8001-8a1503f9b87${step + 2}`
    await api.graphs.putCheckpoint.mutate({
      threadId,
      checkpointNs: "",
      checkpointId,
      parentCheckpointId: parent,
      checkpoint: json({ v: 1, id: checkpointId, ts: new Date().toISOString() }),
      metadata: { source, step },
      channelVersions: { messages: String(step + 2) },
      // The input's list whole (as stored before lists came item by item), then each step's
      // list as what it added on top of the one before.
      blobs: [
        step < 0
          ? { channel: "messages", version: String(step + 2), value: json(messages) }
          : {
              channel: "messages",
              version: String(step + 2),
              list: {
                base: step === 0 ? null : String(step + 1),
                keep: step,
                items: messages.slice(step).map((m) => json(m)),
              },
            },
      ],
    })
    parent = checkpointId
  }
  return { main, running: jobs[3]!, threadId }
}

describe(`Chronicle Studio in Chromium (${database.name})`, () => {
  let t: TestServer
  let api: ChronicleClient
  let browser: Browser
  let context: BrowserContext
  let seeded: Awaited<ReturnType<typeof seed>>
  let problems: Array<string> = []

  const open = async (path: string, viewport = { width: 1280, height: 800 }) => {
    context = await browser.newContext({ viewport })
    const page = await context.newPage()
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`)
    })
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
    await page.goto(`${t.server.url}/studio${path}`)
    return page
  }

  beforeAll(async () => {
    t = await startTestServer(database, DEV_MODE)
    api = createChronicleClient({ url: t.server.url })
    seeded = await seed(api)
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] })
  })
  afterEach(async () => {
    await context?.close()
    const seen = problems
    problems = []
    expect(seen).toEqual([])
  })
  afterAll(async () => {
    await browser?.close()
    await t?.close()
  })

  it("lists the sessions with counts and pages, and finds one by search", async () => {
    const page = await open("/")
    const rows = page.locator("table.sessions tbody tr")
    await expect.poll(() => rows.count(), WAIT).toBe(20)
    await screenshot(page, "sessions")
    // Sessions made within a minute share their ids' time prefix: the short ids still differ.
    const shortIds = await rows.locator("code.id").allInnerTexts()
    expect(shortIds).toHaveLength(20)
    expect(new Set(shortIds).size).toBe(20)
    await page.getByRole("button", { name: "Next →" }).click()
    await expect.poll(() => page.getByText("Page 2").count(), WAIT).toBe(1)
    await expect.poll(() => rows.count(), WAIT).toBe(3)
    await page.getByRole("button", { name: "← Previous" }).click()
    await page.getByLabel("Status").selectOption("archived")
    await expect.poll(() => rows.count(), WAIT).toBe(3)
    await page.getByLabel("Status").selectOption("")
    await page.getByLabel("Search").fill("word-count")
    await expect.poll(() => rows.count(), WAIT).toBe(1)
    await expect.poll(() => rows.first().textContent()).toContain("Plan a word-count CLI")
    // Counts come from the list itself.
    expect(await rows.first().locator("td.num").first().textContent()).toBe("3")
    // Creation dates, whole UTC days, filtered by the server too.
    const day = seeded.main.createdAt.slice(0, 10)
    const before = new Date(Date.parse(`${day}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10)
    await page.getByLabel("Created from").fill(day)
    await page.getByLabel("to", { exact: true }).fill(day)
    await expect.poll(() => rows.count(), WAIT).toBe(1)
    await page.getByLabel("to", { exact: true }).fill(before)
    // A start after the end is pointed out on the page, not sent.
    await expect.poll(() => page.getByText("date is after the “to” date").count(), WAIT).toBe(1)
    expect(await rows.count()).toBe(0)
    await page.getByLabel("Created from").fill("")
    await expect.poll(() => page.getByText("No session matches.").count(), WAIT).toBe(1)
    expect(page.url()).toContain(`to=${before}`)
  })

  it("opens a session, takes a checkpoint, appends, rolls back (the branch greyed) and forks", async () => {
    const page = await open("/?q=word-count")
    // By keyboard: focus the session's link and press Enter.
    await page.getByRole("link", { name: "Plan a word-count CLI" }).focus()
    await page.keyboard.press("Enter")
    await page.waitForURL(`**/studio/sessions/${seeded.main.id}`, WAIT)
    await expect.poll(() => page.locator(".message").count(), WAIT).toBe(3)
    await expect.poll(() => page.locator(".connection").textContent(), WAIT).toBe("live")

    await page.getByLabel("Checkpoint label").fill("before the answer")
    await page.getByRole("button", { name: "⚑ Checkpoint" }).click()
    await page.locator('.timeline [data-type="CheckpointCreated"]').waitFor(WAIT)

    await page.getByRole("textbox", { name: "Message" }).fill("An answer we will abandon")
    await page.getByRole("button", { name: "Append" }).click()
    await expect.poll(() => page.locator(".message").count(), WAIT).toBe(4)

    const checkpoint = page.locator("option", { hasText: "before the answer" })
    await checkpoint.waitFor({ state: "attached", ...WAIT })
    await page.getByLabel("View as of").selectOption((await checkpoint.getAttribute("value"))!)
    await expect.poll(() => page.locator(".asof-note").textContent(), WAIT).toContain("before the answer")
    await expect.poll(() => page.locator(".message").count(), WAIT).toBe(3)
    await page.getByRole("button", { name: "Roll back…" }).click()
    const dialog = page.getByRole("dialog")
    await expect
      .poll(() => dialog.textContent(), WAIT)
      .toContain("Reverts 1 message recorded after that point")
    await screenshot(page, "rollback-confirm")
    await dialog.getByRole("button", { name: "Roll back", exact: true }).click()

    const abandoned = page.locator(".timeline .branch .reverted", { hasText: "An answer we will abandon" })
    await abandoned.waitFor(WAIT)
    expect(await page.locator(".timeline .branch-label").textContent()).toMatch(
      /Abandoned branch v\d+–v\d+, left by the rollback at v\d+/,
    )
    const color = await abandoned.evaluate((el) => getComputedStyle(el).color)
    const normal = await page
      .locator(".timeline > .event")
      .first()
      .evaluate((el) => getComputedStyle(el).color)
    expect(color).not.toBe(normal)
    await expect.poll(() => page.locator(".message").count(), WAIT).toBe(3)
    expect(page.url()).not.toContain("at=")
    await screenshot(page, "session")

    await page.getByLabel("View as of").selectOption((await checkpoint.getAttribute("value"))!)
    await page.getByRole("button", { name: "Fork…" }).click()
    await expect.poll(() => dialog.textContent(), WAIT).toContain("This session does not change")
    await dialog.getByLabel("Title of the new session").fill("Word count, take two")
    await dialog.getByRole("button", { name: "Fork", exact: true }).click()
    await page.waitForURL((url) => !url.pathname.endsWith(seeded.main.id), WAIT)
    await expect.poll(() => page.locator("h1").textContent(), WAIT).toBe("Word count, take two")
    expect(await page.locator(".facts").textContent()).toContain("Forked from")
    await expect.poll(() => page.locator(".message").count(), WAIT).toBe(3)
  })

  it("moves the version slider back to show an earlier state, and to the end to show the current one", async () => {
    const session = await api.sessions.create.mutate({ title: "Slider walk" })
    for (const content of ["first", "second", "third"]) {
      await api.messages.append.mutate({ sessionId: session.id, role: "user", content })
    }
    const page = await open(`/sessions/${session.id}`)
    const messages = page.locator(".message")
    const slider = page.getByRole("slider")
    const output = page.locator(".asof .slider output")
    await expect.poll(() => messages.count(), WAIT).toBe(3)
    expect(await output.textContent()).toBe("v4/4")

    // By keyboard, as a person would: one step back is v3 (two messages), another is v2.
    await slider.focus()
    await page.keyboard.press("ArrowLeft")
    await expect.poll(() => output.textContent(), WAIT).toBe("v3/4")
    await expect
      .poll(() => messages.allInnerTexts(), WAIT)
      .toEqual([expect.stringContaining("first"), expect.stringContaining("second")])
    await expect.poll(() => page.locator(".asof-note").textContent(), WAIT).toContain("v3")
    expect(page.url()).toContain("at=v%3A3")
    await slider.focus()
    await page.keyboard.press("ArrowLeft")
    await expect.poll(() => output.textContent(), WAIT).toBe("v2/4")
    await expect.poll(() => messages.allInnerTexts(), WAIT).toEqual([expect.stringContaining("first")])
    expect(await page.getByLabel("View as of").inputValue()).toBe("v:2")

    // To the end: the current state again, and the page no longer reads as of a version.
    await slider.focus()
    await page.keyboard.press("End")
    await expect.poll(() => output.textContent(), WAIT).toBe("v4/4")
    await expect.poll(() => messages.count(), WAIT).toBe(3)
    expect(await messages.last().textContent()).toContain("third")
    await expect.poll(() => page.locator(".asof-note").count(), WAIT).toBe(0)
    expect(await page.getByLabel("View as of").inputValue()).toBe("")
    expect(page.url()).not.toContain("at=")
  })

  it("shows new events live, on the session page and in the activity feed", async () => {
    const page = await open(`/sessions/${seeded.main.id}`)
    await expect.poll(() => page.locator(".connection").textContent(), WAIT).toBe("live")
    await page.locator(".message").first().waitFor(WAIT)
    const before = await page.locator(".message").count()
    await api.messages.append.mutate({
      sessionId: seeded.main.id,
      role: "assistant",
      content: "Arrived live",
    })
    await page.locator(".message", { hasText: "Arrived live" }).waitFor(WAIT)
    expect(await page.locator(".message").count()).toBe(before + 1)
    expect(await page.getByTestId("arrived").textContent()).toBe("1 new event since you opened it")

    const feed = await context.newPage()
    feed.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`)
    })
    await feed.goto(`${t.server.url}/studio/activity`)
    await expect.poll(() => feed.locator(".connection").textContent(), WAIT).toBe("live")
    await api.messages.append.mutate({ sessionId: seeded.main.id, role: "user", content: "Seen in the feed" })
    await api.toolRuns.record.mutate({
      sessionId: seeded.main.id,
      tool: "wc",
      input: {},
      status: "failed",
      error: "exit 1",
    })
    const items = feed.locator('ol[aria-label="Live events"] > li')
    await expect.poll(() => items.count(), WAIT).toBe(2)
    expect(await items.nth(0).getAttribute("data-type")).toBe("ToolRunRecorded")
    expect(await items.nth(1).textContent()).toContain("Seen in the feed")
    await screenshot(feed, "activity")

    // Every connection dropped (as when a proxy restarts): the feed reconnects and resumes
    // from the last event it saw, with nothing missed and nothing twice.
    t.server.httpServer.closeAllConnections()
    await api.messages.append.mutate({
      sessionId: seeded.main.id,
      role: "user",
      content: "During the outage",
    })
    await api.messages.append.mutate({ sessionId: seeded.main.id, role: "user", content: "After the outage" })
    await expect.poll(() => items.count(), WAIT).toBe(4)
    const ids = await items.evaluateAll((lis) => lis.map((li) => li.getAttribute("data-event")))
    expect(new Set(ids).size).toBe(4)
    expect(await items.nth(0).textContent()).toContain("After the outage")
    expect(await items.nth(1).textContent()).toContain("During the outage")
    // Both reached the session page too, each once.
    await expect
      .poll(() => page.getByTestId("arrived").textContent(), WAIT)
      .toBe("5 new events since you opened it")
    // The browser reports each connection the test cut (a stream cut mid-way, or a request
    // that was in flight on a cut connection); the page itself must log nothing.
    problems = problems.filter(
      (p) =>
        !/Failed to load resource: net::ERR_(INCOMPLETE_CHUNKED_ENCODING|EMPTY_RESPONSE|CONNECTION_RESET|CONNECTION_CLOSED)$/.test(
          p,
        ),
    )
  })

  it("shows jobs by state with progress that moves live, and a job's tasks", async () => {
    const page = await open("/jobs")
    const card = page.locator(`[data-job="${seeded.running.id}"] [role="progressbar"]`)
    await expect.poll(() => card.getAttribute("aria-valuenow"), WAIT).toBe("50")
    await expect.poll(() => page.locator(".connection").textContent(), WAIT).toBe("live")
    await api.jobs.progress.mutate({ id: seeded.running.id, progress: 0.75, message: "linking" })
    await expect.poll(() => card.getAttribute("aria-valuenow"), WAIT).toBe("75")
    expect(await page.locator('section[aria-label="failed jobs"]').textContent()).toContain(
      "gcc: no such file",
    )
    await screenshot(page, "jobs")
    await page.locator(`[data-job="${seeded.running.id}"] a`).click()
    await page.getByText("linking").waitFor(WAIT)
    expect(await page.locator(".cards").first().textContent()).toContain("build")
  })

  it("starts a rebuild and follows its progress to 100%", async () => {
    const page = await open("/projections")
    await page.locator("tr[data-projection]").first().waitFor(WAIT)
    await page.getByRole("button", { name: "Rebuild all" }).click()
    const bar = page.locator('[aria-label="Current run"] [role="progressbar"]')
    await expect.poll(() => bar.getAttribute("aria-valuenow"), { timeout: 60_000 }).toBe("100")
    await expect
      .poll(() => page.locator('[aria-label="Current run"] .badge').textContent(), WAIT)
      .toBe("completed")
    await screenshot(page, "projections")
  })

  it("takes an as-of snapshot from the Projections page, lists it, and drops it", async () => {
    const label = `studio_${Date.now().toString(36)}`
    const page = await open("/projections")
    await page.locator("tr[data-projection]").first().waitFor(WAIT)
    const form = page.getByRole("form", { name: "Take a snapshot" })
    await form.getByLabel("Label").fill(label)
    await form.getByRole("button", { name: "Take snapshot" }).click()
    const watcher = page.locator('[aria-label="Current run"]')
    await expect.poll(() => watcher.textContent(), WAIT).toContain(`Snapshot “${label}”`)
    await expect.poll(() => watcher.locator(".badge").textContent(), { timeout: 60_000 }).toBe("completed")

    const card = page
      .getByRole("list", { name: "Snapshots" })
      .getByRole("listitem")
      .filter({ hasText: label })
    await card.waitFor(WAIT)
    expect(await card.textContent()).toContain(`analytics_asof_${label}`)
    // The bound reads as a date and the cursor it became, not as JSON.
    expect(await card.textContent()).toMatch(/as of .*\d.* \(cursor \d+\)/)
    expect(await card.textContent()).not.toContain("{")
    expect((await api.projections.snapshots.query()).map((s) => s.label)).toContain(label)
    await screenshot(page, "snapshots")

    await card.getByRole("button", { name: `Drop snapshot ${label}` }).click()
    const dialog = page.getByRole("dialog")
    await expect.poll(() => dialog.textContent(), WAIT).toContain(`Drop the snapshot “${label}”?`)
    await dialog.getByRole("button", { name: "Drop", exact: true }).click()
    await expect.poll(() => card.count(), WAIT).toBe(0)
    expect((await api.projections.snapshots.query()).map((s) => s.label)).not.toContain(label)
  })

  it("lists the LangGraph threads and shows a thread's checkpoints with their decoded state", async () => {
    const page = await open("/")
    await page.getByRole("link", { name: "Threads", exact: true }).click()
    const row = page.locator(`tr[data-thread="${seeded.threadId}"]`)
    await row.waitFor(WAIT)
    expect(await row.textContent()).toContain("step 1")
    expect(await row.locator("td.num").textContent()).toBe("3")
    await screenshot(page, "threads")
    await row.getByRole("link", { name: seeded.threadId }).click()
    await page.waitForURL(`**/studio/threads/${seeded.threadId}`, WAIT)
    const checkpoints = page.getByRole("list", { name: "Checkpoints, newest first" }).getByRole("listitem")
    await expect.poll(() => checkpoints.count(), WAIT).toBe(3)
    const latest = checkpoints.first()
    expect(await latest.textContent()).toContain("step 1")
    expect(await latest.textContent()).toContain("loop")
    await latest.getByText("State (1 channel(s))").click()
    await expect
      .poll(() => latest.locator("pre.json").textContent(), WAIT)
      .toContain("hello! how can I help?")
    expect(await checkpoints.last().textContent()).toContain("(first)")
    await screenshot(page, "thread")
  })

  it("draws the analytics charts", async () => {
    const page = await open("/analytics")
    for (const chart of ["daily", "validity", "job-states", "job-durations"]) {
      await page.locator(`[data-chart="${chart}"] .recharts-wrapper`).waitFor(WAIT)
    }
    await page.locator('[data-chart="validity"] .recharts-legend-item').nth(1).waitFor(WAIT)
    expect(await page.locator('[data-chart="validity"] .recharts-legend-item').allInnerTexts()).toEqual([
      "bash",
      "python",
    ])
    await screenshot(page, "analytics")
  })

  it("shows a projection whose rebuild fails: why, the next attempt, and its last good tables serving", async () => {
    // A materialized view over a read model: no swap can move that table, so the rebuild the
    // server's daemon starts for the new version fails.
    await sql(
      t.server,
      `create materialized view chronicle.studio_titles as select id, title from chronicle.sessions;
       select chronicle.register_projection('sessions', 2, 'inline', 'chronicle.project_session',
         (select tables from chronicle.projections where name = 'sessions'), array['session'])`,
    )
    const page = await open("/projections")
    const row = page.locator('tr[data-projection="sessions"]')
    await expect
      .poll(() => row.textContent(), { timeout: 60_000 })
      .toContain("materialized view chronicle.studio_titles reads chronicle.sessions")
    const text = (await row.textContent()) ?? ""
    expect(text).toContain("failed")
    expect(text).toContain("(built v1)")
    expect(text).toMatch(/next attempt .+; its last good tables keep serving/)
    await screenshot(page, "projections-failing")
    // The sessions still read as before; once the obstacle is gone the next attempt goes through.
    expect((await api.sessions.get.query({ id: seeded.main.id })).title).toBe("Plan a word-count CLI")
    await sql(t.server, "drop materialized view chronicle.studio_titles")
  })

  it("fits a phone-width screen", async () => {
    const phone = { width: 390, height: 844 }
    for (const [name, path] of [
      ["phone-sessions", "/"],
      ["phone-session", `/sessions/${seeded.main.id}`],
    ] as const) {
      const page = await open(path, phone)
      await page.locator("main h1").waitFor(WAIT)
      await page.locator("table, .message").first().waitFor(WAIT)
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      expect(overflow, name).toBeLessThanOrEqual(0)
      await screenshot(page, name)
      await context.close()
    }
  })
})

describe(`Chronicle Studio with auth on (${database.name})`, () => {
  let t: TestServer
  let browser: Browser

  beforeAll(async () => {
    t = await startTestServer(database)
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] })
  })
  afterAll(async () => {
    await browser?.close()
    await t?.close()
  })

  it("asks for a token, explains a bad one, and shows only what a good one may see", async () => {
    const who = await callers(t)
    await who.asAlice.sessions.create.mutate({ title: "Alice's session" })
    await who.asBob.sessions.create.mutate({ title: "Bob's session" })
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    const problems: Array<string> = []
    page.on("console", (m) => {
      // The browser itself logs each refused request; the page must log nothing else.
      if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(m.text())
    })
    page.on("pageerror", (e) => problems.push(e.message))

    await page.goto(`${t.server.url}/studio/`)
    await page.getByLabel("Access token").waitFor(WAIT)
    await page.getByLabel("Access token").fill("not-a-token")
    await page.getByRole("button", { name: "Sign in" }).click()
    await expect
      .poll(() => page.getByRole("alert").textContent(), WAIT)
      .toContain("The bearer token is neither the service key nor a JWT")
    await screenshot(page, "signin")

    const token = await t.authority.hs256Token({ sub: who.alice })
    await page.getByLabel("Access token").fill(token)
    await page.getByRole("button", { name: "Sign in" }).click()
    const rows = page.locator("table.sessions tbody tr")
    await expect.poll(() => rows.count(), WAIT).toBe(1)
    expect(await rows.first().textContent()).toContain("Alice's session")
    expect(await page.locator(".who").textContent()).toContain(`user ${who.alice.slice(0, 8)}`)
    // Live subscriptions carry the token too (a browser's EventSource sends no headers).
    await page.getByRole("link", { name: "Activity" }).click()
    await expect.poll(() => page.locator(".connection").textContent(), WAIT).toBe("live")
    await who.asBob.sessions.create.mutate({ title: "Bob's second" })
    await who.asAlice.sessions.create.mutate({ title: "Alice's second" })
    const items = page.locator('ol[aria-label="Live events"] > li')
    await expect.poll(() => items.count(), WAIT).toBe(1)
    expect(await items.first().textContent()).not.toContain("Bob")

    // The projections' upkeep is the service role's: said once, with no refused calls behind it.
    await page.getByRole("link", { name: "Projections" }).click()
    await page.getByRole("note", { name: "Service role only" }).waitFor(WAIT)
    expect(await page.getByRole("button", { name: "Rebuild all" }).count()).toBe(0)
    expect(await page.getByRole("alert").count()).toBe(0)
    await screenshot(page, "projections-user")

    await page.getByRole("button", { name: "Sign out" }).click()
    await page.getByLabel("Access token").waitFor(WAIT)
    await context.close()
    expect(problems).toEqual([])
  })

  it("never puts a token in a URL: live subscriptions open with a short-lived stream ticket, the service key included", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    const problems: Array<string> = []
    page.on("console", (m) => {
      // The browser logs the refused probe made before signing in; nothing else may be logged.
      if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(m.text())
    })
    page.on("pageerror", (e) => problems.push(e.message))
    const urls: Array<string> = []
    page.on("request", (request) => urls.push(decodeURIComponent(request.url())))

    const studio = await page.goto(`${t.server.url}/studio/`)
    // The page runs under a policy that allows only its own origin (any violation would be
    // logged as a console error, and fail this test).
    expect(studio?.headers()["content-security-policy"]).toMatch(/script-src 'self'/)
    await page.getByLabel("Access token").waitFor(WAIT)
    await page.getByLabel("Access token").fill(t.authority.serviceKey)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.getByRole("link", { name: "Activity" }).click()
    await expect.poll(() => page.locator(".connection").textContent(), WAIT).toBe("live")
    const subscriptions = urls.filter((url) => url.includes("/trpc/events.subscribe"))
    expect(subscriptions.length).toBeGreaterThan(0)
    for (const url of subscriptions) expect(url).toMatch(/connectionParams=\{"ticket":"ct1\.[^"]+"\}/)
    expect(urls.filter((url) => url.includes(t.authority.serviceKey))).toEqual([])
    await context.close()
    expect(problems).toEqual([])
  })
})
