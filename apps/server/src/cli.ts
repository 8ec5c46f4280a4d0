#!/usr/bin/env node
import { EventStore } from "@chronicle/store"
import { Effect, Layer, ManagedRuntime } from "effect"
import { ConfigError, databaseConfig, serverConfig } from "./config.ts"
import { describeDatabase, storeLayer } from "./database.ts"
import { serve } from "./serve.ts"

const USAGE = `Usage: chronicle <command>

Commands:
  serve     run the service (the default for \`pnpm start\`)
  migrate   apply pending migrations and exit
  status    print where the data lives and the head of the log

Configuration is read from the environment; see the README.`

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [command, ...rest] = argv
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE)
    return command === undefined ? 2 : 0
  }
  if (rest.length > 0) {
    console.error(`chronicle ${command}: unexpected argument ${JSON.stringify(rest[0])}\n\n${USAGE}`)
    return 2
  }
  switch (command) {
    case "serve":
      return serve(serverConfig())
    case "migrate":
    case "status": {
      const config = databaseConfig()
      const runtime = ManagedRuntime.make(storeLayer(config).pipe(Layer.orDie))
      try {
        const head = await runtime.runPromise(Effect.flatMap(EventStore, (store) => store.head()))
        console.log(
          `${describeDatabase(config)}: migrations applied; head at position ${head.globalPosition} (cursor ${head.cursor})`,
        )
        return 0
      } finally {
        await runtime.dispose()
      }
    }
    default:
      console.error(`chronicle: unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    console.error(error instanceof ConfigError ? `chronicle: ${error.message}` : error)
    process.exitCode = 1
  },
)
