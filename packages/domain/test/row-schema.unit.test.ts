import { describe, expect, it } from "vitest"
import { toActivityItem, toSessionSummary } from "../src/analytics.ts"
import { toCheckpointTuple } from "../src/graphs.ts"
import { decodeBlobRow } from "../src/large-values.ts"
import { toPage } from "../src/paging.ts"
import { pageKey } from "../src/row-schema.ts"

const SESSION = "0190a3c2-0000-7000-8000-000000000001"
const OWNER = "0190a3c2-0000-7000-8000-000000000002"

// A session_summary row as postgres.js returns it: counts (bigint) and seconds (numeric) as text.
const summary = {
  session_id: SESSION,
  owner_id: OWNER,
  title: null,
  status: "active",
  parent_id: null,
  message_count: 2,
  revision_count: 0,
  draft_count: 1,
  hole_count: 0,
  file_count: 0,
  tool_run_count: 0,
  job_count: "3",
  valid_drafts: "1",
  invalid_drafts: "0",
  draft_success_rate: 1,
  avg_hole_confidence: null,
  created_at: new Date("2026-12-04T10:00:00.000Z"),
  last_activity_at: new Date("2026-12-04T10:05:00.250Z"),
  active_seconds: "300.250000",
  last_message_role: "assistant",
  last_message_preview: "hi",
  last_message_at: new Date("2026-12-04T10:05:00.250Z"),
}

const tuple = {
  thread_id: "t1",
  checkpoint_ns: "",
  checkpoint_id: "c1",
  parent_checkpoint_id: null,
  checkpoint_type: "json",
  checkpoint: "e30=",
  metadata: { step: 1 },
  channel_versions: { messages: "2", agent: "1" },
  // As jsonb prints them: shorter keys first.
  blobs: [
    { value: { data: "AA==", type: "json" }, channel: "agent", version: "1" },
    { items: [{ data: "AQ==", type: "json" }], channel: "messages", version: "2" },
  ],
  writes: [{ idx: 0, value: { data: "Ag==", type: "json" }, taskId: "k", channel: "c", taskPath: "p" }],
  version: 4,
  created_at: "2026-12-04 10:00:00.5+00",
}

describe("rows decoded with their schema", () => {
  it("reads a well-formed row as before: numbers from text, timestamps from Dates or text", () => {
    const s = toSessionSummary(summary)
    expect(s.counts.jobs).toBe(3)
    expect(s.validDrafts).toBe(1)
    expect(s.activeSeconds).toBe(300.25)
    expect(s.avgHoleConfidence).toBeNull()
    expect(s.lastMessage).toEqual({ role: "assistant", preview: "hi", at: "2026-12-04T10:05:00.250Z" })
    expect(
      toSessionSummary({
        ...summary,
        last_message_role: null,
        last_message_preview: null,
        last_message_at: null,
      }).lastMessage,
    ).toBeNull()

    const t = toCheckpointTuple(tuple)
    expect(t.createdAt).toBe("2026-12-04T10:00:00.500Z")
    // The values read exactly as the database sent them, key order included.
    expect(JSON.stringify(t.blobs)).toBe(JSON.stringify(tuple.blobs))
    expect(JSON.stringify(t.writes)).toBe(JSON.stringify(tuple.writes))
    expect(JSON.stringify(t.channelVersions)).toBe(JSON.stringify(tuple.channel_versions))

    // bytea: a Buffer from postgres.js, a Uint8Array from PGlite.
    expect(decodeBlobRow({ sha256: "ab", content: Buffer.from([1, 2]) }).content).toEqual(Buffer.from([1, 2]))
    expect(decodeBlobRow({ sha256: "ab", content: new Uint8Array([1]) }).content).toEqual(new Uint8Array([1]))
  })

  it("refuses a malformed row, naming its shape, its id and the column", () => {
    expect(() => toSessionSummary({ ...summary, owner_id: undefined })).toThrow(
      new RegExp(`malformed session summary row "${SESSION}": Expected string\\s+at \\["owner_id"\\]`),
    )
    expect(() => toSessionSummary({ ...summary, job_count: null })).toThrow(/at \["job_count"\]/)
    expect(() => toSessionSummary({ ...summary, status: "paused" })).toThrow(/at \["status"\]/)
    // A newest message without its role is a broken row, not a message with an empty role.
    expect(() => toSessionSummary({ ...summary, last_message_role: null })).toThrow(
      /malformed session summary row .*at \["last_message_role"\]/s,
    )
    expect(() =>
      toActivityItem({ session_id: null, kind: "purge", entity_id: "e1", summary: "x", at: new Date() }),
    ).toThrow(/malformed recent activity row "e1": .*at \["kind"\]/s)
    expect(() => toCheckpointTuple({ ...tuple, writes: [{ ...tuple.writes[0], idx: "0" }] })).toThrow(
      /malformed graph checkpoint row "c1": .*at \["writes"\]\[0\]\["idx"\]/s,
    )
    expect(() => toCheckpointTuple({ ...tuple, metadata: null })).toThrow(/at \["metadata"\]/)
    expect(() => decodeBlobRow({ sha256: "ab", content: "\\x0102" })).toThrow(
      /malformed blob row "ab": .*at \["content"\]/s,
    )
  })

  it("reads a page's cursor key and budget columns, refusing a row without them", () => {
    const key = pageKey("attached file", { version: "number", file_id: "text" })
    expect(key({ version: "7", file_id: "f1", name: "a.txt" })).toEqual([7, "f1"])
    expect(() => key({ version: 7 })).toThrow(
      /malformed attached file page key row undefined: .*at \["file_id"\]/s,
    )
    const timeKey = pageKey("job", { cursor_at: "text", id: "text" })
    expect(() => timeKey({ cursor_at: new Date(), id: "j1" })).toThrow(
      /malformed job page key row "j1": Expected string\s+at \["cursor_at"\]/,
    )

    // A budgeted query's rows say whether the budget cut them short (page_row < page_rows).
    const rows = [
      { version: 1, file_id: "a", page_row: "1", page_rows: "3" },
      { version: 2, file_id: "b", page_row: "2", page_rows: "3" },
    ]
    expect(toPage(rows, 5, (r) => r.file_id, key).nextCursor).not.toBeNull()
    expect(toPage(rows.slice(0, 1), 5, (r) => r.file_id, key).nextCursor).not.toBeNull()
    expect(toPage([{ version: 1, file_id: "a" }], 5, (r) => r.file_id, key).nextCursor).toBeNull()
    expect(() => toPage([{ ...rows[0], page_row: true }], 5, (r) => r.file_id, key)).toThrow(
      /malformed budgeted page row .*at \["page_row"\]/s,
    )
  })
})
