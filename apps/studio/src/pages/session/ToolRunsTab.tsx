/** The session's tool runs (never reverted by a rollback). */
import { useApi } from "../../api.ts"
import { Json, StateBadge } from "../../ui.tsx"
import { PagedCards, type TabProps } from "./PagedCards.tsx"
import { asOfInput, Card, cursorInput, formatAt, LIST_LIMIT } from "./shared.tsx"

export const ToolRunsTab = ({ sessionId, asOf, revision }: TabProps) => {
  const { client } = useApi()
  return (
    <PagedCards
      what="tool runs"
      asOfNote={asOf !== null}
      deps={[sessionId, formatAt(asOf), revision]}
      load={async (cursor) => {
        const page = await client.toolRuns.list.query({
          sessionId,
          limit: LIST_LIMIT,
          ...asOfInput(asOf),
          ...cursorInput(cursor),
        })
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((t) => (
            <Card
              key={t.id}
              title={
                <>
                  {t.tool} <StateBadge state={t.status} />
                </>
              }
              aside={
                <>
                  {t.durationMs === null ? "" : `${t.durationMs} ms · `}v{t.version}
                </>
              }
            >
              {t.error === null ? null : <p className="error">{t.error}</p>}
              <details>
                <summary>Input and output</summary>
                <Json value={{ input: t.input, output: t.output }} />
              </details>
            </Card>
          )),
        }
      }}
    />
  )
}
