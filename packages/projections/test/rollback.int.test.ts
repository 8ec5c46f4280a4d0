import { randomUUID } from "node:crypto"
import type { ChronicleEvent } from "@chronicle/events"
import { testDatabases } from "@chronicle/store/testing"
import { describe, expect, it } from "vitest"
import { effectiveVersions, versionsOf } from "../src/index.ts"
import {
  asOfState,
  contentOf,
  countsOf,
  currentState,
  env,
  ev,
  harnessFor,
  referenceEffective,
  revertible,
  type SessionState,
  sessionStream,
} from "./support.ts"

describe.each(testDatabases(env))("rollback, as-of and fork on $name", (database) => {
  const h = harnessFor(database)

  /**
   * Appends `events` one per append to a new session and returns the session's state as read
   * right after each version, with the cursor of each event.
   */
  const play = async (events: ReadonlyArray<(at: { cursors: Array<string> }) => ChronicleEvent>) => {
    const id = randomUUID()
    const owner = randomUUID()
    const stream = sessionStream(id)
    const states = new Map<number, SessionState>()
    const cursors: Array<string> = []
    for (const make of [() => ev.started(id, owner, { title: "root", metadata: { v: 0 } }), ...events]) {
      const result = await h.append(stream, [make({ cursors })])
      cursors.push(String(result.events[0]!.globalPosition))
      states.set(result.version, await currentState(h, id))
    }
    const state = (v: number) => {
      const s = states.get(v)
      if (!s) throw new Error(`no state at version ${v}`)
      return s
    }
    return { id, owner, stream, state, cursors }
  }
  const e = (event: ChronicleEvent) => () => event

  const effectiveText = (id: string, at: number) =>
    h
      .one<{ e: string }>("select chronicle.effective_versions($1::uuid, $2::integer)::text as e", [id, at])
      .then((r) => r.e)

  it("effective_versions computes E(X) on a hand-worked history with nested rollbacks", async () => {
    const { id, state } = await play([
      e(ev.message(1, "v2")),
      e(ev.message(2, "v3")),
      e(ev.message(3, "v4")),
      e(ev.rolledBack(2)), // v5
      e(ev.message(2, "v6")),
      e(ev.message(3, "v7")),
      e(ev.rolledBack(6)), // v8
      e(ev.message(3, "v9")),
      e(ev.rolledBack(4)), // v10: back to a version of the branch v5 abandoned
      e(ev.message(4, "v11")),
    ])
    const expected = [
      "{}",
      "{[1,2)}",
      "{[1,3)}",
      "{[1,4)}",
      "{[1,5)}",
      "{[1,3),[5,6)}",
      "{[1,3),[5,7)}",
      "{[1,3),[5,8)}",
      "{[1,3),[5,7),[8,9)}",
      "{[1,3),[5,7),[8,10)}",
      "{[1,5),[10,11)}",
      "{[1,5),[10,12)}",
    ]
    const actual = await Promise.all(expected.map((_, x) => effectiveText(id, x)))
    expect(actual).toEqual(expected)
    const rollbacks = new Map([
      [5, 2],
      [8, 6],
      [10, 4],
    ])
    for (let x = 0; x <= 11; x++) {
      expect(versionsOf(await h.run(effectiveVersions(id, x)))).toEqual(referenceEffective(rollbacks, x))
    }
    // The row keeps E(version) as it goes: after each event it equals E of that version.
    for (let x = 1; x <= 11; x++) expect(state(x).effective).toBe(expected[x])
    expect(state(11).messages.map((m) => (m as Array<unknown>).slice(1, 4))).toEqual([
      [1, "user", "v2"],
      [2, "user", "v3"],
      [3, "user", "v4"],
      [4, "user", "v11"],
    ])
  })

  it("rolls back to a checkpoint: content, title and counters read as they did then; tool runs and checkpoints stay", async () => {
    const f1 = randomUUID()
    const f2 = randomUUID()
    const { id, stream, state } = await play([
      e(ev.message(1, "first")), // v2
      e(ev.revision(1)),
      e(ev.draft({ revisionNumber: 1 })),
      e(ev.hole("h", 0.5)),
      e(ev.attach(f1)), // v6
      e(ev.toolRun({ tool: "before" })), // v7
      ({ cursors }) => ev.checkpoint(7, cursors[6]!), // v8
      e(ev.updated({ title: "T2", metadata: { v: 2 } })),
      e(ev.message(2, "second")), // v10
      e(ev.revision(2)),
      e(ev.draft()),
      e(ev.hole("h", 0.9)),
      e(ev.detach(f1)), // v14
      e(ev.attach(f2)),
      e(ev.toolRun({ tool: "after" })), // v16
    ])
    const before = state(16)
    expect(countsOf(before)).toEqual({
      messages: 2,
      revisions: 2,
      drafts: 2,
      holes: 2,
      files: 1,
      toolRuns: 2,
    })
    const checkpointId = (
      await h.one<{ id: string }>("select id::text from chronicle.checkpoints where session_id = $1::uuid", [
        id,
      ])
    ).id
    await h.append(stream, [ev.rolledBack(7, checkpointId)]) // v17
    const after = await currentState(h, id)
    expect(revertible(after)).toEqual(revertible(state(7)))
    expect(after.title).toBe("root")
    expect(after.metadata).toEqual({ v: 0 })
    expect(after.toolRuns).toEqual(before.toolRuns)
    expect(after.counts).toEqual({ messages: 1, revisions: 1, drafts: 1, holes: 1, files: 1, toolRuns: 2 })
    expect(after.counts).toEqual(countsOf(after))
    expect(after.version).toBe(17)
    expect(after.effective).toBe("{[1,8),[17,18)}")
    expect(
      await h.query(
        "select version, to_version from chronicle.session_rollbacks where session_id = $1::uuid",
        [id],
      ),
    ).toEqual([{ version: 17, to_version: 7 }])
    // Nothing is deleted: the reverted rows stay, outside the effective set.
    expect(
      (
        await h.one<{ n: number }>(
          "select count(*)::int as n from chronicle.messages where session_id = $1::uuid",
          [id],
        )
      ).n,
    ).toBe(2)
    expect(
      (
        await h.one<{ n: number }>(
          "select count(*)::int as n from chronicle.checkpoints where session_id = $1::uuid",
          [id],
        )
      ).n,
    ).toBe(1)

    // A new message reuses the seq of the reverted one.
    const next = ev.message(2, "second, again")
    await h.append(stream, [next])
    const latest = await currentState(h, id)
    expect(latest.messages.map((m) => (m as Array<unknown>).slice(0, 2))).toEqual([
      [(state(2).messages[0] as Array<unknown>)[0], 1],
      [next.messageId, 2],
    ])
    expect(latest.counts.messages).toBe(2)
  })

  it("rolling back to a version of an abandoned branch restores exactly what was read at that version", async () => {
    const file = randomUUID()
    const { id, stream, state } = await play([
      // branch A
      e(ev.message(1, "a1")), // v2
      e(ev.updated({ title: "A" })), // v3
      e(ev.attach(file)), // v4
      e(ev.message(2, "a2")), // v5
      e(ev.hole("h", 0.4)), // v6
      e(ev.rolledBack(3)), // v7
      // branch B
      e(ev.message(2, "b2")), // v8
      e(ev.revision(1)), // v9
      e(ev.updated({ metadata: { branch: "B" } })), // v10
    ])
    await h.append(stream, [ev.rolledBack(5)]) // v11: back into branch A
    const atV11 = await currentState(h, id)
    expect(revertible(atV11)).toEqual(revertible(state(5)))
    expect(atV11.title).toBe("A")
    expect(atV11.metadata).toEqual({ v: 0 })
    expect(atV11.messages.map((m) => (m as Array<unknown>)[3])).toEqual(["a1", "a2"])
    expect(atV11.files).toHaveLength(1)
    expect(atV11.counts).toEqual(countsOf(atV11))

    await h.append(stream, [ev.message(3, "a3")]) // v12
    await h.append(stream, [ev.rolledBack(9)]) // v13: back into branch B, abandoned at v11
    const atV13 = await currentState(h, id)
    expect(revertible(atV13)).toEqual(revertible(state(9)))
    expect(atV13.messages.map((m) => (m as Array<unknown>)[3])).toEqual(["a1", "b2"])
    expect(atV13.revisions).toHaveLength(1)
    expect(atV13.files).toEqual([])
    expect(atV13.title).toBe("A")
    expect(atV13.counts).toEqual(countsOf(atV13))
    expect(atV13.effective).toBe("{[1,4),[7,10),[13,14)}")

    await h.append(stream, [ev.toolRun()]) // v14
    const snapshots = new Map<number, SessionState>([
      ...Array.from({ length: 10 }, (_, i) => [i + 1, state(i + 1)] as const),
      [11, atV11],
      [13, atV13],
    ])
    // As-of reads, computed later from the rows and E(X), equal what was read at X.
    for (const [x, snapshot] of snapshots) {
      expect(await asOfState(h, id, x), `as of ${x}`).toEqual(contentOf(snapshot))
    }
    const rollbacks = new Map([
      [7, 3],
      [11, 5],
      [13, 9],
    ])
    for (let x = 0; x <= 14; x++) {
      expect(versionsOf(await h.run(effectiveVersions(id, x))), `E(${x})`).toEqual(
        referenceEffective(rollbacks, x),
      )
    }
  })

  describe("fork", () => {
    const f1 = randomUUID()
    const f2 = randomUUID()
    const parentHistory = [
      e(ev.message(1, "p1")), // v2
      e(ev.toolRun({ tool: "t1" })), // v3
      e(ev.attach(f1)), // v4
      e(ev.attach(f2)), // v5
      e(ev.detach(f1)), // v6
      e(ev.revision(1)), // v7
      e(ev.hole("h", 0.6)), // v8
      e(ev.draft({ revisionNumber: 1 })), // v9
      e(ev.updated({ title: "P2" })), // v10
      e(ev.rolledBack(8)), // v11
      e(ev.message(2, "p2")), // v12
      e(ev.toolRun({ tool: "t2" })), // v13
      ({ cursors }: { cursors: Array<string> }) => ev.checkpoint(13, cursors[12]!), // v14
    ]

    const fork = async (
      parentId: string,
      owner: string,
      atVersion: number,
      title: string | null,
      metadata = {},
    ) => {
      const childId = randomUUID()
      const result = await h.append(sessionStream(childId), [
        ev.forked({ sessionId: childId, ownerId: owner, parentId, atVersion, title, metadata }),
      ])
      return { childId, result }
    }

    const versionsOfChildRows = (childId: string) =>
      h
        .one<{ versions: Array<number> }>(
          `select array(select distinct version from (
                    select version from chronicle.messages where session_id = $1::uuid
              union all select version from chronicle.revisions where session_id = $1::uuid
              union all select version from chronicle.drafts where session_id = $1::uuid
              union all select version from chronicle.hole_resolutions where session_id = $1::uuid
              union all select version from chronicle.session_files where session_id = $1::uuid
              union all select version from chronicle.tool_runs where session_id = $1::uuid) v) as versions`,
          [childId],
        )
        .then((r) => r.versions)

    it("copies the parent's content as of the fork version into the child at version 1", async () => {
      const parent = await play(parentHistory)
      const asOf12 = await asOfState(h, parent.id, 12)
      expect(asOf12.title).toBe("root")
      const { childId, result } = await fork(parent.id, parent.owner, 12, asOf12.title, { v: 0 })
      const child = await currentState(h, childId)
      expect(contentOf(child)).toEqual(asOf12)
      // By hand: p1 and p2; f2 (f1 was detached); the revision and the hole; the draft and
      // the title change were reverted at v11; only the tool run at v3 precedes v12.
      expect(child.messages.map((m) => (m as Array<unknown>)[3])).toEqual(["p1", "p2"])
      expect(child.files.map((f) => (f as Array<unknown>)[0])).toEqual([f2])
      expect(child.revisions).toHaveLength(1)
      expect(child.holes).toHaveLength(1)
      expect(child.drafts).toEqual([])
      expect(child.toolRuns.map((t) => (t as Array<unknown>)[1])).toEqual(["t1"])
      expect(child.counts).toEqual({ messages: 2, revisions: 1, drafts: 0, holes: 1, files: 1, toolRuns: 1 })
      expect(child).toMatchObject({ version: 1, status: "active", effective: "{[1,2)}" })
      expect(await versionsOfChildRows(childId)).toEqual([1])
      expect(
        await h.one(
          `select parent_id::text, parent_version, owner_id::text, head_cursor from chronicle.sessions where id = $1::uuid`,
          [childId],
        ),
      ).toEqual({
        parent_id: parent.id,
        parent_version: 12,
        owner_id: parent.owner,
        head_cursor: String(result.events[0]!.globalPosition),
      })
      expect(
        await h.query(
          "select version, title_set, title, metadata_set, metadata from chronicle.session_updates where session_id = $1::uuid",
          [childId],
        ),
      ).toEqual([{ version: 1, title_set: true, title: "root", metadata_set: true, metadata: { v: 0 } }])
      expect(
        (
          await h.one<{ n: number }>(
            "select count(*)::int as n from chronicle.checkpoints where session_id = $1::uuid",
            [childId],
          )
        ).n,
      ).toBe(0)
      // The parent is untouched.
      expect(await currentState(h, parent.id)).toEqual(parent.state(14))
    })

    it("copies a tool run recorded at the fork version itself, and none recorded after it", async () => {
      const parent = await play(parentHistory)
      const at13 = await currentState(h, (await fork(parent.id, parent.owner, 13, "root", { v: 0 })).childId)
      expect(at13.toolRuns.map((t) => (t as Array<unknown>)[1]).sort()).toEqual(["t1", "t2"])
      const at3 = await currentState(h, (await fork(parent.id, parent.owner, 3, "root", { v: 0 })).childId)
      expect(at3.toolRuns.map((t) => (t as Array<unknown>)[1])).toEqual(["t1"])
      expect(at3.counts.toolRuns).toBe(1)
      const at2 = await currentState(h, (await fork(parent.id, parent.owner, 2, "root", { v: 0 })).childId)
      expect(at2.toolRuns).toEqual([])
      expect(contentOf(at2)).toEqual(await asOfState(h, parent.id, 2))
    })

    it("forks from a version of an abandoned branch, with the title and metadata the fork names", async () => {
      const parent = await play(parentHistory)
      const { childId } = await fork(parent.id, parent.owner, 9, "Child", { fork: true })
      const child = await currentState(h, childId)
      const asOf9 = await asOfState(h, parent.id, 9)
      expect({ ...contentOf(child), title: asOf9.title, metadata: asOf9.metadata }).toEqual(asOf9)
      expect(child.title).toBe("Child")
      expect(child.metadata).toEqual({ fork: true })
      expect(child.drafts).toHaveLength(1) // reverted in the parent since, but effective at 9
      expect(child.counts).toEqual(countsOf(child))
    })

    it("a child continues at version 2, rolls back to its fork state, and can be forked in turn", async () => {
      const parent = await play(parentHistory)
      const { childId } = await fork(parent.id, parent.owner, 6, "root")
      const atFork = await currentState(h, childId)
      expect(atFork.files.map((f) => (f as Array<unknown>)[0])).toEqual([f2])
      const childStream = sessionStream(childId)
      await h.append(childStream, [ev.message(2, "c2")]) // v2
      const atV2 = await currentState(h, childId)
      expect(
        await h.query(
          "select seq, version from chronicle.messages where session_id = $1::uuid order by seq",
          [childId],
        ),
      ).toEqual([
        { seq: 1, version: 1 },
        { seq: 2, version: 2 },
      ])
      await h.append(childStream, [ev.detach(f2), ev.rolledBack(1)]) // v3, v4
      const rolledBack = await currentState(h, childId)
      expect(revertible(rolledBack)).toEqual(revertible(atFork))
      expect(rolledBack.counts).toEqual(countsOf(rolledBack))

      const grandchild = await fork(childId, parent.owner, 2, "root")
      const grand = await currentState(h, grandchild.childId)
      expect(contentOf(grand)).toEqual(contentOf(atV2))
      expect(grand.counts).toEqual(atV2.counts)
    })
  })
})
