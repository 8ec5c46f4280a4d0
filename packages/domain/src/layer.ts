import { Layer } from "effect"
import { Analytics } from "./analytics.ts"
import { CommandCache } from "./command.ts"
import { Content } from "./content.ts"
import { Files } from "./files.ts"
import { Graphs } from "./graphs.ts"
import { Jobs } from "./jobs.ts"
import { Purge } from "./purge.ts"
import { Retention } from "./retention.ts"
import { Sandboxes } from "./sandboxes.ts"
import { Sessions } from "./sessions.ts"

/** Every domain service, sharing one command cache; needs the store's Database and EventStore. */
export const DomainLayer = Layer.mergeAll(
  Sessions.layer,
  Content.layer,
  Files.layer,
  Jobs.layer,
  Sandboxes.layer,
  Purge.layer,
  Retention.layer.pipe(Layer.provide(Purge.layer)),
  Analytics.layer,
  Graphs.layer,
).pipe(Layer.provideMerge(CommandCache.layer))
