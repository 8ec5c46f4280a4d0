/** The session's code drafts, valid or not, as of the selected point. */
import { useApi } from "../../api.ts"
import { Badge } from "../../ui.tsx"
import { PagedCards, type TabProps } from "./PagedCards.tsx"
import { asOfInput, Card, cursorInput, formatAt, LIST_LIMIT } from "./shared.tsx"

export const DraftsTab = ({ sessionId, asOf, revision }: TabProps) => {
  const { client } = useApi()
  return (
    <PagedCards
      what="drafts"
      asOfNote={asOf !== null}
      deps={[sessionId, formatAt(asOf), revision]}
      load={async (cursor) => {
        const page = await client.drafts.list.query({
          sessionId,
          limit: LIST_LIMIT,
          ...asOfInput(asOf),
          ...cursorInput(cursor),
        })
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((d) => (
            <Card
              key={d.id}
              title={
                <>
                  {d.language} <Badge tone={d.valid ? "ok" : "bad"}>{d.valid ? "valid" : "invalid"}</Badge>
                  {d.revisionNumber === null ? null : (
                    <span className="muted"> from revision {d.revisionNumber}</span>
                  )}
                </>
              }
              aside={<>v{d.version}</>}
            >
              <pre className="code">{d.code}</pre>
            </Card>
          )),
        }
      }}
    />
  )
}
