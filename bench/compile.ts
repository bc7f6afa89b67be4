// The benchmark measures the JavaScript the production image runs (dist/), not the TypeScript
// sources that bin/skr.js falls back to in a checkout: stripping types at load time costs start-up
// time and memory a deployment never pays. Writing ./dist in a shared work tree would change what
// everyone's bin/skr.js runs, so the package is mirrored under .cache/bench/ instead: dist/ is
// transpiled there (TypeScript's transpileModule: no type check, that is `npm run typecheck`'s
// job), bin/skr.js is copied, and proto/, build/ (the native addon) and package.json are linked,
// so every path the code resolves relative to itself lands where it would in the package.
import { copyFile, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = fileURLToPath(new URL('../', import.meta.url))

/** Where the mirror lives. */
export const MIRROR = join(ROOT, '.cache', 'bench')

/** Transpiles src/ into .cache/bench/dist and lays out the mirror; resolves to its bin/skr.js. */
export async function buildMirror (): Promise<{ bin: string, files: number, ms: number }> {
  const started = performance.now()
  await rm(MIRROR, { recursive: true, force: true })
  const src = join(ROOT, 'src')
  const entries = await readdir(src, { recursive: true })
  let files = 0
  for (const entry of entries) {
    if (!entry.endsWith('.ts') || entry.endsWith('.d.ts')) continue
    const from = join(src, entry)
    const out = ts.transpileModule(await readFile(from, 'utf8'), {
      fileName: from,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2023,
        rewriteRelativeImportExtensions: true,
        verbatimModuleSyntax: true
      }
    })
    const to = join(MIRROR, 'dist', relative(src, from)).replace(/\.ts$/, '.js')
    await mkdir(dirname(to), { recursive: true })
    await writeFile(to, out.outputText)
    files++
  }
  await mkdir(join(MIRROR, 'bin'), { recursive: true })
  await copyFile(join(ROOT, 'bin', 'skr.js'), join(MIRROR, 'bin', 'skr.js'))
  for (const name of ['proto', 'build', 'package.json']) {
    await symlink(join(ROOT, name), join(MIRROR, name))
  }
  return { bin: join(MIRROR, 'bin', 'skr.js'), files, ms: performance.now() - started }
}
