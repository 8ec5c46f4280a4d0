/** The session's typed-hole resolutions, as of the selected point. */
import { useApi } from "../../api.ts"
import { Json, ProgressBar } from "../../ui.tsx"
import { PagedCards, type TabProps } from "./PagedCards.tsx"
import { asOfInput, Card, cursorInput, formatAt, LIST_LIMIT } from "./shared.tsx"

export const HolesTab = ({ sessionId, asOf, revision }: TabProps) => {
  const { client } = useApi()
  return (
    <PagedCards
      what="holes"
      asOfNote={asOf !== null}
      deps={[sessionId, formatAt(asOf), revision]}
      load={async (cursor) => {
        const page = await client.holes.list.query({
          sessionId,
          limit: LIST_LIMIT,
          ...asOfInput(asOf),
          ...cursorInput(cursor),
        })
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((h) => (
            <Card key={h.id} title={<code>{h.holeId}</code>} aside={<>v{h.version}</>}>
              <ProgressBar value={h.confidence} label={`Confidence of ${h.holeId}`} />
              <Json value={h.value} />
            </Card>
          )),
        }
      }}
    />
  )
}
