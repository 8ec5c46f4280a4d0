/**
 * A small compiled StateGraph kept in Chronicle: it plans, stops for approval before booking,
 * and resumes later — from another process, after a restart of the service. Then it travels
 * back to the plan and books again with a different choice, as a fork of the thread.
 *
 *   pnpm start                                       # the service, in another terminal
 *   node packages/langgraph/examples/trip.ts         # CHRONICLE_URL / CHRONICLE_TOKEN to point elsewhere
 */
import { randomUUID } from "node:crypto"
import { Annotation, type BaseCheckpointSaver, END, START, StateGraph } from "@langchain/langgraph"
import { ChronicleSaver } from "../src/index.ts"

const Trip = Annotation.Root({
  destination: Annotation<string>,
  log: Annotation<Array<string>>({ reducer: (a, b) => [...a, ...b], default: () => [] }),
  hotel: Annotation<string | null>({ reducer: (_, b) => b, default: () => null }),
})

/** plan → book, stopping before `book` until someone approves (invokes again). */
export const tripGraph = (checkpointer: BaseCheckpointSaver) =>
  new StateGraph(Trip)
    .addNode("plan", (s) => ({ log: [`planned ${s.destination}`] }))
    .addNode("book", (s) => {
      const hotel = s.hotel ?? `Hotel ${s.destination}`
      return { hotel, log: [`booked ${hotel}`] }
    })
    .addEdge(START, "plan")
    .addEdge("plan", "book")
    .addEdge("book", END)
    .compile({ checkpointer, interruptBefore: ["book"] })

const main = async () => {
  const url = process.env.CHRONICLE_URL ?? "http://127.0.0.1:4000"
  const token = process.env.CHRONICLE_TOKEN
  const config = { configurable: { thread_id: `trip-${randomUUID()}` } }

  // Run until the approval point; the checkpoint is in Chronicle now.
  const first = tripGraph(new ChronicleSaver({ url, token }))
  await first.invoke({ destination: "Lisbon" }, config)
  console.log("waiting before:", (await first.getState(config)).next)

  // Later (another process, after a restart): a new saver and graph resume the thread.
  const later = tripGraph(new ChronicleSaver({ url, token }))
  const done = await later.invoke(null, config)
  console.log("resumed:", done.log)

  // Time travel: back to the checkpoint that waited before `book`, choose another hotel, go on.
  for await (const snapshot of later.getStateHistory(config)) {
    if (snapshot.next.includes("book")) {
      const forked = await later.updateState(snapshot.config, { hotel: "Casa do Rio" })
      const redone = await later.invoke(null, forked)
      console.log("forked:", redone.log)
      break
    }
  }
}

if (import.meta.main) await main()
