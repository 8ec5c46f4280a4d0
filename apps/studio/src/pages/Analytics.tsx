/** Charts over the analytics procedures: activity per day, draft validity, jobs. */
import { useState } from "react"
import {
  Bar,
  BarChart,
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts"
import { useApi } from "../api.ts"
import { useQuery } from "../hooks.ts"
import { Empty, ErrorMessage } from "../ui.tsx"

const RANGES = [7, 30, 90] as const
const PALETTE: ReadonlyArray<string> = [
  "#2f5bd3",
  "#1c7c43",
  "#c26a00",
  "#8e44ad",
  "#b4232c",
  "#16808a",
  "#6b6f76",
]
const STATE_COLORS = {
  queued: "#8a9099",
  running: "#2160c4",
  paused: "#c28a00",
  completed: "#1c7c43",
  failed: "#b4232c",
  cancelled: "#5f6670",
} as const

const isoDay = (date: Date) => date.toISOString().slice(0, 10)

const axis = { stroke: "currentColor", fontSize: 12 }

export const AnalyticsPage = () => {
  const { client } = useApi()
  const [days, setDays] = useState<(typeof RANGES)[number]>(30)
  const from = isoDay(new Date(Date.now() - (days - 1) * 86_400_000))
  const daily = useQuery(() => client.analytics.daily.query({ from }), [client, from])
  const validity = useQuery(() => client.analytics.draftValidationByDay.query({ from }), [client, from])
  const jobs = useQuery(() => client.analytics.jobStats.query(), [client])

  // One row per day, one key per language: what the line chart needs.
  const languages = [...new Set((validity.data ?? []).map((r) => r.language))].sort()
  const byDay = new Map<string, Record<string, number | string>>()
  for (const r of validity.data ?? []) {
    const row = byDay.get(r.day) ?? { day: r.day }
    row[r.language] = Math.round(r.successRate * 1000) / 10
    byDay.set(r.day, row)
  }
  const validityRows = [...byDay.values()].sort((a, b) => String(a.day).localeCompare(String(b.day)))
  const jobRows = (jobs.data ?? []).map((j) => ({
    jobType: j.jobType,
    ...j.byState,
    p95: j.p95ProcessingSeconds,
    avg: j.avgProcessingSeconds,
  }))

  return (
    <section>
      <div className="page-head">
        <h1>Analytics</h1>
        <fieldset className="range">
          <legend className="visually-hidden">Period</legend>
          {RANGES.map((r) => (
            <label key={r}>
              <input type="radio" name="range" checked={days === r} onChange={() => setDays(r)} /> {r} days
            </label>
          ))}
        </fieldset>
      </div>
      <div className="grid">
        <div className="panel">
          <h2>Sessions and messages per day</h2>
          <ErrorMessage error={daily.error} title="No daily figures" />
          {daily.data?.length === 0 ? <Empty>Nothing in this period.</Empty> : null}
          <div className="chart" data-chart="daily">
            <ResponsiveContainer>
              <LineChart data={daily.data ?? []} margin={{ top: 8, right: 16, bottom: 0, left: -8 }}>
                <CartesianGrid strokeDasharray="3 3" strokeOpacity={0.3} />
                <XAxis dataKey="day" tick={axis} />
                <YAxis yAxisId="s" allowDecimals={false} tick={axis} />
                <YAxis yAxisId="m" orientation="right" allowDecimals={false} tick={axis} />
                <Tooltip />
                <Legend />
                <Line
                  yAxisId="s"
                  dataKey="sessionsStarted"
                  name="sessions started"
                  stroke={PALETTE[0]!}
                  dot={false}
                />
                <Line yAxisId="m" dataKey="messages" name="messages" stroke={PALETTE[1]!} dot={false} />
              </LineChart>
            </ResponsiveContainer>
          </div>
        </div>
        <div className="panel">
          <h2>Draft validity by language (%)</h2>
          <ErrorMessage error={validity.error} title="No validity figures" />
          {validity.data?.length === 0 ? <Empty>No drafts in this period.</Empty> : null}
          <div className="chart" data-chart="validity">
            <ResponsiveContainer>
              <LineChart data={validityRows} margin={{ top: 8, right: 16, bottom: 0, left: -8 }}>
                <CartesianGrid strokeDasharray="3 3" strokeOpacity={0.3} />
                <XAxis dataKey="day" tick={axis} />
                <YAxis domain={[0, 100]} tick={axis} unit="%" />
                <Tooltip />
                <Legend />
                {languages.map((language, i) => (
                  <Line
                    key={language}
                    dataKey={language}
                    stroke={PALETTE[i % PALETTE.length]!}
                    connectNulls
                    dot
                  />
                ))}
              </LineChart>
            </ResponsiveContainer>
          </div>
        </div>
        <div className="panel">
          <h2>Jobs by state</h2>
          <ErrorMessage error={jobs.error} title="No job figures" />
          {jobs.data?.length === 0 ? <Empty>No jobs.</Empty> : null}
          <div className="chart" data-chart="job-states">
            <ResponsiveContainer>
              <BarChart data={jobRows} margin={{ top: 8, right: 16, bottom: 0, left: -8 }}>
                <CartesianGrid strokeDasharray="3 3" strokeOpacity={0.3} />
                <XAxis dataKey="jobType" tick={axis} />
                <YAxis allowDecimals={false} tick={axis} />
                <Tooltip />
                <Legend />
                {Object.entries(STATE_COLORS).map(([state, color]) => (
                  <Bar key={state} dataKey={state} stackId="state" fill={color} />
                ))}
              </BarChart>
            </ResponsiveContainer>
          </div>
        </div>
        <div className="panel">
          <h2>Job processing time (s)</h2>
          <div className="chart" data-chart="job-durations">
            <ResponsiveContainer>
              <BarChart data={jobRows} margin={{ top: 8, right: 16, bottom: 0, left: -8 }}>
                <CartesianGrid strokeDasharray="3 3" strokeOpacity={0.3} />
                <XAxis dataKey="jobType" tick={axis} />
                <YAxis tick={axis} />
                <Tooltip />
                <Legend />
                <Bar dataKey="avg" name="average" fill={PALETTE[0]!} />
                <Bar dataKey="p95" name="p95" fill={PALETTE[2]!} />
              </BarChart>
            </ResponsiveContainer>
          </div>
        </div>
      </div>
    </section>
  )
}
