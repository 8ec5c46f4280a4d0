/** The files attached to the session, as of the selected point, each downloadable. */
import { useState } from "react"
import { useApi } from "../../api.ts"
import { ErrorMessage } from "../../ui.tsx"
import { PagedCards, type TabProps } from "./PagedCards.tsx"
import { asOfInput, Card, cursorInput, formatAt, LIST_LIMIT } from "./shared.tsx"

export const FilesTab = ({ sessionId, asOf, revision }: TabProps) => {
  const { client } = useApi()
  return (
    <PagedCards
      what="files"
      asOfNote={asOf !== null}
      deps={[sessionId, formatAt(asOf), revision]}
      load={async (cursor) => {
        const page = await client.files.listAttached.query({
          sessionId,
          limit: LIST_LIMIT,
          ...asOfInput(asOf),
          ...cursorInput(cursor),
        })
        return {
          nextCursor: page.nextCursor,
          items: page.items.map((f) => (
            <Card
              key={f.fileId}
              title={f.name}
              aside={
                <>
                  {f.mimeType} · {f.size} bytes · v{f.version}
                </>
              }
            >
              <DownloadButton fileId={f.fileId} name={f.name} mimeType={f.mimeType} />
            </Card>
          )),
        }
      }}
    />
  )
}

const DownloadButton = ({ fileId, name, mimeType }: { fileId: string; name: string; mimeType: string }) => {
  const { client } = useApi()
  const [error, setError] = useState<unknown>(null)
  const download = async () => {
    setError(null)
    try {
      const file = await client.files.get.query({ id: fileId, includeContent: true })
      const bytes = Uint8Array.from(atob(file.contentBase64 ?? ""), (c) => c.charCodeAt(0))
      const url = URL.createObjectURL(new Blob([bytes], { type: mimeType }))
      const a = document.createElement("a")
      a.href = url
      a.download = name
      a.click()
      setTimeout(() => URL.revokeObjectURL(url), 1000)
    } catch (e) {
      setError(e)
    }
  }
  return (
    <>
      <button type="button" onClick={download}>
        Download
      </button>
      <ErrorMessage error={error} title="Not downloaded" />
    </>
  )
}
