import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { type ChronicleEvent, fromStored, STREAM_CATEGORIES, toStored } from "../src/index.ts"

const events: ReadonlyArray<ChronicleEvent> = [
  {
    type: "GraphThreadStarted",
    graphId: "0b6f2c7e-1d2a-5c3b-9e4f-5a6b7c8d9e0f",
    ownerId: "00000000-0000-4000-8000-000000000000",
    threadId: "thread-1",
  },
  {
    type: "GraphCheckpointSaved",
    checkpointNs: "",
    checkpointId: "1ef9a0c2-7b3d-6e4f-8a1b-2c3d4e5f6a7b",
    parentCheckpointId: null,
    checkpoint: { type: "json", data: "eyJ2Ijo0fQ==" },
    metadata: { source: "input", step: -1, parents: {} },
    channelVersions: { messages: "1.25" },
    blobs: [{ channel: "messages", version: "1.25", value: { type: "bytes", data: "AAEC/w==" } }],
  },
  {
    type: "GraphWritesSaved",
    checkpointNs: "child:1",
    checkpointId: "1ef9a0c2-7b3d-6e4f-8a1b-2c3d4e5f6a7b",
    taskId: "task-a",
    taskPath: "",
    writes: [{ idx: -1, channel: "__error__", value: { type: "json", data: "" } }],
  },
  { type: "GraphThreadDeleted" },
  {
    type: "GraphCheckpointsPruned",
    checkpointNs: "",
    keep: 5,
    throughCheckpointId: "1ef9a0c2-7b3d-6e4f-8a1b-2c3d4e5f6a7b",
    count: 31,
  },
]

describe("graph events", () => {
  it("round-trip through the store's columns unchanged", () => {
    for (const event of events) {
      const stored = toStored(event)
      expect(stored.type).toBe(event.type)
      expect(Effect.runSync(fromStored(stored))).toEqual(event)
    }
  })

  it("refuse values that are not base64", () => {
    const stored = toStored(events[1]!)
    const broken = {
      ...stored,
      data: { ...(stored.data as object), checkpoint: { type: "json", data: "not base64!" } },
    }
    expect(Effect.runSync(Effect.exit(fromStored(broken)))._tag).toBe("Failure")
  })

  it("live in their own stream category", () => {
    expect(STREAM_CATEGORIES).toContain("graph")
  })
})
