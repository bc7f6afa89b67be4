// Where skr's own files are at run time: the package root, with package.json, proto/ and the
// addon under build/Release/. This file is one directory below the root in a checkout
// (src/package-root.ts) and in the bundle, whose files all sit directly in dist/
// (scripts/bundle.mjs refuses nested output), so `../` from here is the root in both.
// Modules elsewhere in src/ resolve their files through it: in the bundle they are no longer
// where their source was, so a path relative to their own location would be wrong.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

// node:fs and node:module through process.getBuiltinModule, not ES module imports: this module
// is on the path of every command, `skr healthcheck` included, and importing node:fs builds its
// namespace, which loads fs/promises and streams (~3 MB more RSS per probe, measured).
const { existsSync } = process.getBuiltinModule('node:fs')
const { createRequire } = process.getBuiltinModule('node:module')

/** The package root directory (absolute, with a trailing separator). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../', import.meta.url))

/** An absolute path below the package root. */
export function packagePath (...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts)
}

/**
 * A file a dependency ships beside its code (a .proto file), or null when it is not there: from
 * dist/vendor/<package>/ when running the bundle (scripts/bundle.mjs copies them there), else from
 * the package in node_modules.
 */
export function dependencyFile (pkg: string, path: string): string | null {
  const here = dirname(fileURLToPath(import.meta.url))
  if (here === packagePath('dist')) {
    const vendored = join(here, 'vendor', pkg, path)
    return existsSync(vendored) ? vendored : null
  }
  try {
    const file = join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), path)
    return existsSync(file) ? file : null
  } catch {
    return null
  }
}
