// `node scripts/bundle.mjs [--outdir DIR]`: builds what the image and the npm package run: skr's
// sources and every JavaScript dependency bundled by esbuild into ES modules in one flat
// directory (default dist/), instead of a node_modules tree (issue 13 §2: a sidecar's footprint
// is paid in every pod).
//
// - Code splitting: dist/main.js is the CLI entry; each command, and everything skr imports with
//   import() (the identity SDK, gRPC, undici, the OpenAPI generator, the emulators), is a chunk of
//   its own, read only when used. `skr healthcheck` reads a few kilobytes.
// - Flat: every output sits directly in the output directory, one level below the package root,
//   as every file of src/ is. src/package-root.ts relies on that (`new URL('../', import.meta.url)`
//   is the package root from src/*.ts, src/*/*.ts resolve through it, and from dist/*.js).
// - CommonJS dependencies inside ES modules need `require` (for Node's builtins), `__filename` and
//   `__dirname`. The last two become Node's import.meta.filename and import.meta.dirname (free
//   references only: an ES module may declare its own). `require` is one function for all files,
//   from dist/require.js, which a banner imports into each (every output sits in that directory,
//   so one is right for all, rather than a createRequire() per chunk as it loads). After the
//   build every output is parsed as an ES module, so a name clash fails the build rather than the
//   first pod that loads that chunk.
// - Files dependencies read at run time next to their own code (grpc-health-check's and
//   @grpc/reflection's .proto files) are copied to dist/vendor/<package>/ with the same relative
//   paths, and those packages' `__dirname` is pointed there.
// - Identifiers are kept (stack traces stay readable); whitespace and syntax are minified.
// - dist/THIRD-PARTY-NOTICES.txt carries the name, version, license and license text of every
//   package whose code is in the bundle.
// Prints one summary line on stderr (stdout stays clean for `npm pack --json`, whose prepack
// this is); exits 1 on any esbuild error or warning. --metafile FILE also writes
// esbuild's metafile (which input went into which output) for analysis.
import { build } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Dependencies that read files beside their own code at run time: package → its asset directories. */
export const VENDOR_ASSETS = Object.freeze({
  'grpc-health-check': ['proto'],
  '@grpc/reflection': ['build/proto/grpc/reflection']
})

// At the top of every output file. `require` keeps its name: esbuild's helper for CommonJS
// require() calls refers to it.
const BANNER = "import { require } from './require.js';"

// dist/require.js: written beside the outputs, not built by esbuild.
const REQUIRE_MODULE = `// The require() of the bundle's CommonJS code (scripts/bundle.mjs): resolves from this
// directory, where every file of the bundle is.
import { createRequire } from 'node:module'
export const require = createRequire(import.meta.url)
`

// Parses every output as an ES module without running it (vm.SourceTextModule needs the flag).
const PARSE_CHECK = `
import vm from 'node:vm'
import { readFileSync } from 'node:fs'
const failed = []
for (const file of JSON.parse(process.argv[1])) {
  try { new vm.SourceTextModule(readFileSync(file, 'utf8'), { identifier: file }) } catch (err) { failed.push(file + ': ' + err.message) }
}
if (failed.length > 0) { process.stderr.write(failed.join('\\n') + '\\n'); process.exitCode = 1 }
`

/** The package directory (relative to the root, posix) that a node_modules path belongs to. */
function packageDirOf (path) {
  const parts = path.split('/')
  const at = parts.lastIndexOf('node_modules')
  if (at < 0) return null
  const name = parts[at + 1]?.startsWith('@') === true ? parts.slice(at + 1, at + 3) : parts.slice(at + 1, at + 2)
  return [...parts.slice(0, at + 1), ...name].join('/')
}

const vendorPlugin = {
  name: 'skr-vendor-dirname',
  setup (b) {
    const names = Object.keys(VENDOR_ASSETS).map(n => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
    const filter = new RegExp(`[\\\\/]node_modules[\\\\/](${names.join('|')})[\\\\/].*\\.js$`)
    b.onLoad({ filter }, async (args) => {
      // The file's directory below its node_modules, e.g. `@grpc/reflection/build/src/implementations`.
      const path = relative(ROOT, args.path).split(sep).join('/')
      const within = dirname(path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length))
      const text = readFileSync(args.path, 'utf8')
      // Still a free __dirname (the bundle's directory, through `define`): import.meta in the
      // source itself would make esbuild treat this CommonJS file as an ES module.
      return { contents: text.replace(/\b__dirname\b/g, `(__dirname + ${JSON.stringify(`/vendor/${within}`)})`), loader: 'js' }
    })
  }
}

function licenseFiles (dir) {
  return readdirSync(dir).filter(n => /^(licen[cs]e|copying|notice)([.-].*)?$/i.test(n) && statSync(join(dir, n)).isFile()).sort()
}

/** THIRD-PARTY-NOTICES.txt from the packages whose code is in the bundle. */
function notices (inputs) {
  const dirs = new Set()
  for (const input of inputs) {
    const dir = packageDirOf(input)
    if (dir !== null) dirs.add(dir)
  }
  const entries = [...dirs].map(dir => {
    const pkg = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8'))
    const files = licenseFiles(join(ROOT, dir))
    const texts = files.map(f => readFileSync(join(ROOT, dir, f), 'utf8').trim())
    return { name: pkg.name, version: pkg.version, license: typeof pkg.license === 'string' ? pkg.license : JSON.stringify(pkg.license ?? 'UNKNOWN'), texts }
  }).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  const header = 'skr bundles the following packages into dist/ (scripts/bundle.mjs). Each is listed with its\n' +
    'version, its declared license and the license text it ships.\n'
  return {
    packages: entries,
    text: header + entries.map(e => `\n${'='.repeat(78)}\n${e.name}@${e.version} (${e.license})\n${'='.repeat(78)}\n\n` +
      (e.texts.length > 0 ? e.texts.join('\n\n') : `(no license file in the package; its package.json declares ${e.license})`) + '\n').join('')
  }
}

/** Builds the bundle into `outdir`; resolves to a summary. Throws on any esbuild error or warning. */
export async function bundle ({ outdir = join(ROOT, 'dist') } = {}) {
  const started = performance.now()
  rmSync(outdir, { recursive: true, force: true })
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'src/main.ts', healthcheck: 'src/healthcheck-main.ts' },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    chunkNames: '[name]-[hash]',
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    banner: { js: BANNER },
    define: { __dirname: 'import.meta.dirname', __filename: 'import.meta.filename' },
    metafile: true,
    logLevel: 'silent',
    plugins: [vendorPlugin]
  })
  if (result.warnings.length > 0) {
    throw new Error(`esbuild warnings:\n${result.warnings.map(w => `${w.location?.file ?? ''}:${w.location?.line ?? ''} ${w.text}`).join('\n')}`)
  }
  const outputs = Object.keys(result.metafile.outputs).map(p => resolve(ROOT, p))
  const nested = outputs.filter(p => dirname(p) !== resolve(outdir))
  if (nested.length > 0) throw new Error(`outputs must sit directly in ${outdir} (src/package-root.ts): ${nested.join(', ')}`)

  writeFileSync(join(outdir, 'require.js'), REQUIRE_MODULE)
  const parsed = spawnSync(process.execPath, ['--experimental-vm-modules', '--no-warnings', '--input-type=module', '-e', PARSE_CHECK, JSON.stringify(outputs)], { encoding: 'utf8' })
  if (parsed.status !== 0) throw new Error(`an output does not parse as an ES module:\n${parsed.stderr}`)

  for (const [name, dirs] of Object.entries(VENDOR_ASSETS)) {
    const from = join(ROOT, 'node_modules', name)
    for (const dir of dirs) cpSync(join(from, dir), join(outdir, 'vendor', name, dir), { recursive: true })
    for (const file of licenseFiles(from)) cpSync(join(from, file), join(outdir, 'vendor', name, file))
  }
  const inputs = Object.keys(result.metafile.inputs)
  const { packages, text } = notices(inputs)
  writeFileSync(join(outdir, 'THIRD-PARTY-NOTICES.txt'), text)
  const bytes = outputs.reduce((sum, p) => sum + statSync(p).size, 0)
  return { outdir, files: outputs.length, bytes, packages: packages.length, ms: Math.round(performance.now() - started), metafile: result.metafile }
}

if (fileURLToPath(import.meta.url) === resolve(process.argv[1] ?? '')) {
  // --metafile FILE: esbuild's account of every input and output, for analysis (https://esbuild.github.io/api/#metafile).
  const { values } = parseArgs({ options: { outdir: { type: 'string' }, metafile: { type: 'string' } } })
  try {
    const s = await bundle(values.outdir === undefined ? {} : { outdir: resolve(values.outdir) })
    if (values.metafile !== undefined) writeFileSync(values.metafile, JSON.stringify(s.metafile))
    process.stderr.write(`bundle: ${s.files} files, ${(s.bytes / 1024 / 1024).toFixed(2)} MB of JavaScript, ${s.packages} packages, in ${relative(process.cwd(), s.outdir) || '.'} (${s.ms} ms)\n`)
  } catch (err) {
    process.stderr.write(`bundle: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
