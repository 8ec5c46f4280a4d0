/** The jobs started for the session (jobs are not content: no as-of). */
import { useApi } from "../../api.ts"
import { Link } from "../../router.tsx"
import { ProgressBar, StateBadge, Time } from "../../ui.tsx"
import { PagedCards, type TabProps } from "./PagedCards.tsx"
import { Card, cursorInput, formatAt, LIST_LIMIT } from "./shared.tsx"

export const JobsTab = ({ sessionId, asOf, revision }: TabProps) => {
  const { client } = useApi()
  return (
    <PagedCards
      what="jobs"
      asOfNote={false}
      deps={[sessionId, formatAt(asOf), revision]}
      load={async (cursor) => {
        const page = await client.jobs.list.query({ sessionId, limit: LIST_LIMIT, ...cursorInput(cursor) })
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((j) => (
            <Card
              key={j.id}
              title={
                <>
                  <Link to={`/jobs/${j.id}`}>{j.type}</Link> <StateBadge state={j.state} />
                </>
              }
              aside={<Time iso={j.updatedAt} />}
            >
              <ProgressBar value={j.progress} label={`Progress of job ${j.type}`} />
            </Card>
          )),
        }
      }}
    />
  )
}
