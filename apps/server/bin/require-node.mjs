// Plain JavaScript that any Node can parse: on a Node older than 24 (which cannot run the
// TypeScript sources) this prints one line saying what to do, instead of a stack trace.
const REQUIRED = 24
const major = Number(process.versions.node.split(".")[0])
if (major < REQUIRED) {
  console.error(
    `chronicle: Node ${REQUIRED} or newer is needed; this is Node ${process.version}. Get it with \`nvm install ${REQUIRED}\` or \`fnm use ${REQUIRED}\` (the repository's .nvmrc says ${REQUIRED}), or without a version manager see "Node 24 on an older machine" in the README.`,
  )
  process.exit(1)
}
