#!/nodejs/bin/node
// /skr.sh and /bin/skr in the skr image. The reference image starts with CMD ["/skr.sh"] and many ARM
// templates and pod manifests pin `command: ["/skr.sh"]`. skr's runtime image has no shell,
// so this "script" is JavaScript run by the kernel through the shebang above: it hands its
// arguments unchanged to /app/bin/skr.js, whose serve command already reads what the
// reference's skr.sh read (SkrSideCarArgs, Port, LogFile, LogLevel, ServerType, and the
// positional $1 = SkrSideCarArgs, $2 = Port, env first). CommonJS on purpose: / has no
// package.json, so Node loads this file as CommonJS whatever its extension.
//
// The same file is /bin/skr, the reference image's binary, which the AKS confidential-containers
// docs start with `command: ["/bin/skr"]`. Node runs a main module from its real path, so from
// /bin/skr (or /usr/bin/skr, where /bin is a link) the entrypoint is found by walking up from
// this file's directory to the one holding app/bin/skr.js: / in the image.
'use strict'
const { existsSync } = require('node:fs')
const { dirname, join } = require('node:path')
const { pathToFileURL } = require('node:url')

function entrypoint () {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'app', 'bin', 'skr.js')
    if (existsSync(candidate)) return candidate
    if (dirname(dir) === dir) return join(__dirname, 'app', 'bin', 'skr.js')
  }
}

import(pathToFileURL(entrypoint()).href).catch((err) => {
  process.stderr.write(`skr.sh: cannot start skr: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
