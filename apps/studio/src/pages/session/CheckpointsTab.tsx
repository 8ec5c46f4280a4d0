/** The session's checkpoints, each a way to view the session as of it. */
import type { Checkpoint } from "../../api.ts"
import { setQuery } from "../../router.tsx"
import { PagedCards, type TabProps } from "./PagedCards.tsx"
import { Card, formatAt } from "./shared.tsx"

export const CheckpointsTab = ({
  sessionId,
  asOf,
  revision,
  checkpoints,
}: TabProps & { checkpoints: ReadonlyArray<Checkpoint> }) => (
  <PagedCards
    what="checkpoints"
    asOfNote={false}
    deps={[sessionId, formatAt(asOf), revision]}
    load={async () => ({
      nextCursor: null,
      items: checkpoints.map((c) => (
        <Card key={c.id} title={<>⚑ {c.label ?? <em>no label</em>}</>} aside={<>v{c.version}</>}>
          <button type="button" className="link" onClick={() => setQuery({ at: `cp:${c.id}` })}>
            View as of this checkpoint
          </button>
        </Card>
      )),
    })}
  />
)
