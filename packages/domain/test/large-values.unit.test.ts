/**
 * The large-value rules, without a database: what an event records for a message or a tool
 * value of any size and shape, and that reading it back with the stored blobs gives exactly
 * what was written, or, with the values left out, the references with their sizes.
 */
import type { Json, JsonObject } from "@chronicle/events/types"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  type BlobContents,
  eventRefs,
  JSON_MEDIA_TYPE,
  LARGE_KEY,
  type PendingBlob,
  reservedKeyIn,
  resolveEventData,
  resolveJson,
  resolveMessage,
  storeJson,
  storeMessage,
  TEXT_MEDIA_TYPE,
} from "../src/large-values.ts"

const blobsOf = (blobs: ReadonlyArray<PendingBlob>): BlobContents =>
  new Map(blobs.map((b) => [b.ref.sha256, b.bytes] as const))

const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value))

/**
 * JSON values as a client can send them (JSON text parsed: no -0, which JSON writes as 0), with
 * no reserved key at their top level (as the API lets through).
 */
const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as Json)
const metadata = fc
  .dictionary(
    fc.string().filter((k) => k !== LARGE_KEY && k !== "__proto__"),
    json,
    { maxKeys: 6 },
  )
  .map((m) => m as JsonObject)
const threshold = fc.integer({ min: 0, max: 400 })

describe("large values", () => {
  it("reads a message back exactly as written, and keeps the event within the threshold", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 300 }),
        metadata,
        threshold,
        (content, meta, limit) => {
          const stored = storeMessage({ content, metadata: meta }, limit)
          const back = resolveMessage(stored, blobsOf(stored.blobs))
          expect(back.content).toBe(content)
          expect(back.metadata).toEqual(meta)
          // What stays inline is at most the threshold each (plus the references).
          if (stored.blobs.length > 0) {
            expect(stored.metadata[LARGE_KEY]).toBeDefined()
            expect(back.large).toBeDefined()
          }
          if (jsonBytes(content) > limit) expect(stored.content).toBe("")
          else expect(stored.content).toBe(content)
          // The event names exactly the blobs it needs.
          expect(
            eventRefs("MessageAppended", { content: stored.content, metadata: stored.metadata })
              .map((r) => r.sha256)
              .sort(),
          ).toEqual(stored.blobs.map((b) => b.ref.sha256).sort())
        },
      ),
    )
  })

  it("leaves large message values out on request, naming their sizes", () => {
    const content = "é".repeat(100)
    const meta = { image: "x".repeat(500), small: 1 }
    const stored = storeMessage({ content, metadata: meta }, 64)
    expect(stored.content).toBe("")
    const omitted = resolveMessage(stored, null)
    expect(omitted).toEqual({
      content: "",
      metadata: {},
      large: {
        content: { sha256: expect.any(String), size: 200, mediaType: TEXT_MEDIA_TYPE },
        metadata: { sha256: expect.any(String), size: jsonBytes(meta), mediaType: JSON_MEDIA_TYPE },
      },
    })
    // Large content with small metadata: the metadata stays inline, beside the reference.
    const onlyContent = storeMessage({ content, metadata: { small: 1 } }, 64)
    expect(resolveMessage(onlyContent, null)).toMatchObject({ content: "", metadata: { small: 1 } })
  })

  it("reads a tool value back exactly as written, or null when left out", () => {
    fc.assert(
      fc.property(json, threshold, (value, limit) => {
        fc.pre(reservedKeyIn(value) === undefined)
        const stored = storeJson(value, limit)
        const blobs = stored.blob === undefined ? [] : [stored.blob]
        expect(resolveJson(stored.value, blobsOf(blobs))).toEqual(value)
        if (stored.blob === undefined) expect(stored.value).toEqual(value)
        else {
          expect(stored.blob.ref.size).toBe(jsonBytes(value))
          expect(resolveJson(stored.value, null)).toBeNull()
          const data = resolveEventData(
            "ToolRunRecorded",
            { input: stored.value, output: null },
            blobsOf(blobs),
          )
          expect(data).toEqual({ input: value, output: null })
        }
      }),
    )
  })

  it("stores the same bytes under the same digest, whoever writes them", () => {
    const a = storeJson({ out: "y".repeat(1000) }, 10)
    const b = storeJson({ out: "y".repeat(1000) }, 10)
    expect(a.blob?.ref.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(a.blob?.ref).toEqual(b.blob?.ref)
  })

  it("finds the reserved key only at the top level of an object", () => {
    expect(reservedKeyIn({ [LARGE_KEY]: 1 })).toBe(LARGE_KEY)
    expect(reservedKeyIn({ nested: { [LARGE_KEY]: 1 } })).toBeUndefined()
    expect(reservedKeyIn([{ [LARGE_KEY]: 1 }])).toBeUndefined()
    expect(reservedKeyIn("text")).toBeUndefined()
  })
})
