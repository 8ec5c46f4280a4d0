import { library } from "../../tsdown.base.ts"

// Browsers too (the Studio uses it), so no Node built-ins.
export default library({ platform: "neutral" })
