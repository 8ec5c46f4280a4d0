/** Appending a message and taking a checkpoint. */
import { type FormEvent, useState } from "react"
import { useApi } from "../../api.ts"
import { ErrorMessage } from "../../ui.tsx"

const ROLES = ["user", "assistant", "system", "tool"] as const

export const Composer = ({ sessionId, onDone }: { sessionId: string; onDone: () => void }) => {
  const { client } = useApi()
  const [role, setRole] = useState<(typeof ROLES)[number]>("user")
  const [content, setContent] = useState("")
  const [label, setLabel] = useState("")
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const act = async (action: () => Promise<unknown>) => {
    setBusy(true)
    setError(null)
    try {
      await action()
      onDone()
      return true
    } catch (e) {
      setError(e)
      return false
    } finally {
      setBusy(false)
    }
  }
  const append = async (event: FormEvent) => {
    event.preventDefault()
    if (content.trim() === "") return
    if (await act(() => client.messages.append.mutate({ sessionId, role, content }))) setContent("")
  }
  const checkpoint = async (event: FormEvent) => {
    event.preventDefault()
    const text = label.trim()
    if (await act(() => client.checkpoints.create.mutate({ sessionId, label: text === "" ? null : text })))
      setLabel("")
  }
  return (
    <div className="composer">
      <form onSubmit={append} aria-label="Append a message">
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.target.value as (typeof ROLES)[number])}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label className="grow">
          Message
          <textarea
            rows={2}
            value={content}
            onChange={(e) => setContent(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit()
            }}
          />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Append
        </button>
      </form>
      <form onSubmit={checkpoint} aria-label="Take a checkpoint">
        <label className="grow">
          Checkpoint label
          <input value={label} onChange={(e) => setLabel(e.target.value)} placeholder="optional" />
        </label>
        <button type="submit" disabled={busy}>
          ⚑ Checkpoint
        </button>
      </form>
      <ErrorMessage error={error} title="Not recorded" />
    </div>
  )
}
