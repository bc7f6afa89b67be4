// The benchmark measures what the production image runs (the bundle of scripts/bundle.mjs in
// dist/), not the TypeScript sources that bin/skr.js falls back to in a checkout: stripping types
// and resolving a node_modules tree at load time cost start-up time and memory a deployment never
// pays. Writing ./dist in a shared work tree would change what everyone's bin/skr.js runs, so the
// package is mirrored under .cache/bench/ instead: the bundle is built into its dist/, bin/skr.js
// is copied, and proto/, build/ (the native addon) and package.json are linked: the image's
// layout, with no node_modules to fall back on.
//
// The stack floor (bench/floor-server.mjs) is bundled the same way (.cache/bench/floor/), so the
// two are compared on equal terms.
import { build } from 'esbuild'
import { copyFile, mkdir, readdir, rm, stat, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bundle } from '../scripts/bundle.mjs'

const ROOT = fileURLToPath(new URL('../', import.meta.url))

/** Where the mirror lives. */
export const MIRROR = join(ROOT, '.cache', 'bench')

/** The bundled stack floor's entry. */
export const FLOOR_BUNDLE = join(MIRROR, 'floor', 'floor-server.mjs')

async function sizeOf (path: string): Promise<number> {
  const s = await stat(path)
  if (!s.isDirectory()) return s.size
  let sum = 0
  for (const name of await readdir(path)) sum += await sizeOf(join(path, name))
  return sum
}

/**
 * Bundles skr into .cache/bench/dist, lays out the mirror and bundles the floor; resolves to the
 * mirror's bin/skr.js, and the production footprint: dist/ and the addon, what the image adds to
 * its Node base.
 */
export async function buildMirror (): Promise<{ bin: string, files: number, bytes: number, footprintBytes: number, ms: number }> {
  const started = performance.now()
  await rm(MIRROR, { recursive: true, force: true })
  const summary = await bundle({ outdir: join(MIRROR, 'dist') })
  await mkdir(join(MIRROR, 'bin'), { recursive: true })
  await copyFile(join(ROOT, 'bin', 'skr.js'), join(MIRROR, 'bin', 'skr.js'))
  for (const name of ['proto', 'build', 'package.json']) {
    await symlink(join(ROOT, name), join(MIRROR, name))
  }
  // The floor with the same options as skr's bundle (a split ES module with the same kind of
  // banner), its compile cache enabled before its dependencies load, as in skr.
  await build({
    absWorkingDir: ROOT,
    entryPoints: { 'floor-server': 'bench/floor-server.mjs' },
    outdir: join(MIRROR, 'floor'),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    banner: { js: "import { createRequire as __c } from 'node:module'; const require = __c(import.meta.url);" },
    logLevel: 'error'
  })
  const addon = await sizeOf(join(ROOT, 'build', 'Release', 'snp_guest.node')).catch(() => 0)
  const footprintBytes = await sizeOf(join(MIRROR, 'dist')) + addon
  return { bin: join(MIRROR, 'bin', 'skr.js'), files: summary.files, bytes: summary.bytes, footprintBytes, ms: performance.now() - started }
}
