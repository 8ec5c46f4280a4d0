/** The session's IR revisions, as of the selected point. */
import { useApi } from "../../api.ts"
import { Json } from "../../ui.tsx"
import { PagedCards, type TabProps } from "./PagedCards.tsx"
import { asOfInput, Card, cursorInput, formatAt, LIST_LIMIT } from "./shared.tsx"

export const RevisionsTab = ({ sessionId, asOf, revision }: TabProps) => {
  const { client } = useApi()
  return (
    <PagedCards
      what="revisions"
      asOfNote={asOf !== null}
      deps={[sessionId, formatAt(asOf), revision]}
      load={async (cursor) => {
        const page = await client.revisions.list.query({
          sessionId,
          limit: LIST_LIMIT,
          ...asOfInput(asOf),
          ...cursorInput(cursor),
        })
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((r) => (
            <Card key={r.id} title={`Revision ${r.number}`} aside={<>v{r.version}</>}>
              {r.note === null ? null : <p>{r.note}</p>}
              <Json value={r.ir} />
            </Card>
          )),
        }
      }}
    />
  )
}
