/** What the session holds, one tab per kind, each tab a view of its own (RevisionsTab…). */
import { useState } from "react"
import type { AsOf, Checkpoint } from "../../api.ts"
import { CheckpointsTab } from "./CheckpointsTab.tsx"
import { DraftsTab } from "./DraftsTab.tsx"
import { FilesTab } from "./FilesTab.tsx"
import { HolesTab } from "./HolesTab.tsx"
import { JobsTab } from "./JobsTab.tsx"
import { RevisionsTab } from "./RevisionsTab.tsx"
import { ToolRunsTab } from "./ToolRunsTab.tsx"

const TABS = ["Revisions", "Drafts", "Holes", "Files", "Tool runs", "Jobs", "Checkpoints"] as const
type Tab = (typeof TABS)[number]

export const Details = (props: {
  sessionId: string
  asOf: AsOf | null
  revision: number
  checkpoints: ReadonlyArray<Checkpoint>
}) => {
  const [tab, setTab] = useState<Tab>("Drafts")
  const move = (delta: number) => {
    const next = TABS[(TABS.indexOf(tab) + delta + TABS.length) % TABS.length]!
    setTab(next)
    document.getElementById(`tab-${next}`)?.focus()
  }
  return (
    <div className="details">
      <div role="tablist" aria-label="What the session holds" className="tabs">
        {TABS.map((t) => (
          <button
            key={t}
            id={`tab-${t}`}
            type="button"
            role="tab"
            aria-selected={tab === t}
            aria-controls="tab-panel"
            tabIndex={tab === t ? 0 : -1}
            onClick={() => setTab(t)}
            onKeyDown={(e) => {
              if (e.key === "ArrowRight") move(1)
              if (e.key === "ArrowLeft") move(-1)
            }}
          >
            {t}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="tab-panel" aria-labelledby={`tab-${tab}`}>
        {tab === "Revisions" ? <RevisionsTab {...props} /> : null}
        {tab === "Drafts" ? <DraftsTab {...props} /> : null}
        {tab === "Holes" ? <HolesTab {...props} /> : null}
        {tab === "Files" ? <FilesTab {...props} /> : null}
        {tab === "Tool runs" ? <ToolRunsTab {...props} /> : null}
        {tab === "Jobs" ? <JobsTab {...props} /> : null}
        {tab === "Checkpoints" ? <CheckpointsTab {...props} /> : null}
      </div>
    </div>
  )
}
