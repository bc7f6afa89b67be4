#!/nodejs/bin/node
// /skr.sh in the skr image. The reference image starts with CMD ["/skr.sh"] and many ARM
// templates and pod manifests pin `command: ["/skr.sh"]`. skr's runtime image has no shell,
// so this "script" is JavaScript run by the kernel through the shebang above: it hands its
// arguments unchanged to /app/bin/skr.js, whose serve command already reads what the
// reference's skr.sh read (SkrSideCarArgs, Port, LogFile, LogLevel, ServerType, and the
// positional $1 = SkrSideCarArgs, $2 = Port, env first). CommonJS on purpose: / has no
// package.json, so Node loads this file as CommonJS whatever its extension.
'use strict'
const { join } = require('node:path')
const { pathToFileURL } = require('node:url')

import(pathToFileURL(join(__dirname, 'app', 'bin', 'skr.js')).href).catch((err) => {
  process.stderr.write(`skr.sh: cannot start skr: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
