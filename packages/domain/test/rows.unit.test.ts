import { describe, expect, it } from "vitest"
import { toJob, toMessage } from "../src/rows.ts"

const message = {
  message_id: "0190a3c2-0000-7000-8000-000000000001",
  session_id: "0190a3c2-0000-7000-8000-000000000002",
  seq: "3",
  role: "user",
  content: "hello",
  metadata: { tag: "a" },
  version: 4,
  created_at: new Date("2026-12-04T10:00:00.123Z"),
  page_bytes: 300,
}

describe("read-model rows", () => {
  it("decodes a row as the drivers return it: numbers as text, timestamps as Dates or strings, extra columns ignored", () => {
    expect(toMessage(message)).toEqual({
      id: message.message_id,
      sessionId: message.session_id,
      seq: 3,
      role: "user",
      content: "hello",
      metadata: { tag: "a" },
      version: 4,
      createdAt: "2026-12-04T10:00:00.123Z",
    })
    expect(toMessage({ ...message, created_at: "2026-12-04 10:00:00.123+00" }).createdAt).toBe(
      "2026-12-04T10:00:00.123Z",
    )
  })

  it("reads a nullable column left out of the select as null", () => {
    const job = toJob({
      id: "0190a3c2-0000-7000-8000-000000000003",
      owner_id: "0190a3c2-0000-7000-8000-000000000004",
      job_type: "build",
      state: "queued",
      input: {},
      version: 1,
      created_at: "2026-12-04T10:00:00Z",
      updated_at: "2026-12-04T10:00:00Z",
    })
    expect(job).toMatchObject({ output: null, error: null, progress: null, sessionId: null, startedAt: null })
  })

  it("fails on a malformed row, naming the shape and the row's id", () => {
    expect(() => toMessage({ ...message, role: "narrator" })).toThrow(
      /malformed message row "0190a3c2-0000-7000-8000-000000000001"/,
    )
    expect(() => toMessage({ ...message, content: null })).toThrow(/malformed message row/)
  })
})
