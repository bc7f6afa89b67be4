// `node scripts/bundle.mjs [--outdir DIR]`: builds what the image and the npm package run: skr's
// sources and every JavaScript dependency bundled by esbuild into ES modules in one flat
// directory (default dist/), instead of a node_modules tree (issue 13 §2: a sidecar's footprint
// is paid in every pod).
//
// - Code splitting: dist/main.js is the CLI entry; each command, and everything skr imports with
//   import() (the identity SDK, gRPC, undici, the OpenAPI generator, the emulators), is a chunk of
//   its own, read only when used. `skr healthcheck` reads a few kilobytes.
// - Two graphs. The commands that run a sidecar in this process (serve, what every pod runs, and
//   demo and emulate) are built as a graph of their own: dist/serve.js, demo.js, emulate.js and
//   their serve-*.js chunks; the CLI's import() of each is left as an import of that file. In one
//   graph with every command, the code serve shares with any other command is split into chunks
//   by which commands share it: serving linked 35 files (172 ES module resolutions) before its
//   first answer, 20 (73) now. Besides the time, ~170 more resolutions made V8 optimise
//   node:path's normalizeString during start-up once the install path is long, which maps
//   TurboFan's code (~5 MB of the node binary) into a process that then sits idle. The price:
//   modules both graphs use are in dist/ twice. The graphs meet only in main.ts's catch, where
//   isSidecarError (src/errors/sidecar-error.ts) does not rely on class identity.
// - Nothing here may make Node load its own copy of undici (~16 MB of RSS): see builtinHttpPlugin
//   and formDataCheckPlugin below, and src/http/undici-parts.ts. test/e2e/bundle.test.ts checks.
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

/** The sidecar graph's chunks are dist/serve-*.js; serve.js is its entry for `skr serve`. */
const SERVE_ENTRY = 'serve'
const SIDECAR_COMMANDS = [SERVE_ENTRY, 'demo', 'emulate']

/**
 * In the CLI's graph, src/cli/commands.ts's import() of a sidecar command (./serve.ts, ./demo.ts,
 * ./emulate.ts) stays an import, of the sidecar graph's entry beside it (every output sits in one
 * directory, so the relative path holds from any of them).
 */
const serveAsFilePlugin = {
  name: 'skr-sidecar-graph',
  setup (b) {
    b.onResolve({ filter: /^\.\/[a-z-]+\.ts$/ }, (args) => {
      const command = SIDECAR_COMMANDS.find(c => resolve(args.resolveDir, args.path) === join(ROOT, 'src', 'cli', `${c}.ts`))
      if (command === undefined) return undefined
      if (args.kind !== 'dynamic-import') throw new Error(`${args.importer} imports cli/${command}.ts statically: only a dynamic import() keeps it in the sidecar's graph`)
      return { path: `./${command}.js`, external: true }
    })
  }
}

/** One metafile from the two builds' (their outputs never share a name: see chunkNames). */
function mergeMetafiles (a, b) {
  const inputs = { ...a.inputs }
  for (const [path, input] of Object.entries(b.inputs)) inputs[path] ??= input
  return { inputs, outputs: { ...a.outputs, ...b.outputs } }
}

// node:http's exports that Node loads on first read (WebSocket and its events come from Node's
// own copy of undici: ~750 KB of source compiled into the heap of a process that never uses it).
const LAZY_HTTP_EXPORTS = new Set(['WebSocket', 'CloseEvent', 'MessageEvent'])

/**
 * An ES module import of node:http (the Azure SDK's HTTP client has one) builds the module's
 * namespace, and so reads those lazy exports. Such imports get a module that takes node:http from
 * process.getBuiltinModule and exports its other names, which Node has whatever it was built with
 * (read here, at build time, from the Node that builds the image's bundle). An import of one of
 * the lazy names would fail the build (esbuild: no matching export), not the pod.
 */
const builtinHttpPlugin = {
  name: 'skr-builtin-http',
  setup (b) {
    // ES module imports only: require('http') (CommonJS dependencies) returns the module itself and reads no export.
    b.onResolve({ filter: /^(node:)?http$/ }, (args) => args.kind === 'import-statement' ? { path: 'node:http', namespace: 'skr-builtin-http' } : undefined)
    b.onLoad({ filter: /.*/, namespace: 'skr-builtin-http' }, () => {
      const names = Object.keys(process.getBuiltinModule('node:http')).filter(n => !LAZY_HTTP_EXPORTS.has(n) && /^[A-Za-z_$][\w$]*$/.test(n))
      return { contents: `const http = process.getBuiltinModule('node:http');\nexport default http;\nexport const { ${names.join(', ')} } = http;\n`, loader: 'js' }
    })
  }
}

// `typeof FormData !== "undefined" && body instanceof FormData`, as the Azure SDK's HTTP runtime
// writes it; group 1 is the tested value.
const FORM_DATA_CHECK = /typeof FormData !== "undefined" && ([A-Za-z_$][\w$]*) instanceof FormData/g

/**
 * Node defines globalThis.FormData (with Headers, Request, Response, fetch...) as a lazy
 * property: the first read loads and compiles Node's own copy of undici, ~16 MB of RSS for good
 * (measured: a bare Node 24 process 41.5 → 57.9 MB). The Azure SDK's HTTP pipeline (every token
 * request of @azure/identity, through @typespec/ts-http-runtime's formDataPolicy) reads it on
 * every request to ask whether the body is a FormData, which skr's never are. In the bundle that
 * test first asks the value itself (every FormData's Symbol.toStringTag is "FormData", by Web
 * IDL), so the global is read only for a value that could be one; the answer is the same. The files are found by content, and the build fails if the policy's own check is
 * no longer where this expects it (an SDK update then gets looked at, not silently bundled as is).
 */
export function guardFormDataChecks (text) {
  return text.replace(FORM_DATA_CHECK, (_, v) => `${v}?.[Symbol.toStringTag] === "FormData" && typeof FormData !== "undefined" && ${v} instanceof FormData`)
}

const formDataCheckPlugin = {
  name: 'skr-form-data-check',
  setup (b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]@typespec[\\/]ts-http-runtime[\\/]dist[\\/]esm[\\/].*\.js$/ }, async (args) => {
      const text = readFileSync(args.path, 'utf8')
      const rewritten = guardFormDataChecks(text)
      const policyFile = /[\\/]dist[\\/]esm[\\/]formData\.js$/.test(args.path)
      if (policyFile && rewritten === text) throw new Error(`${args.path}: the FormData check scripts/bundle.mjs rewrites is not there any more`)
      return rewritten === text ? undefined : { contents: rewritten, loader: 'js' }
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
  const common = {
    absWorkingDir: ROOT,
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    banner: { js: BANNER },
    define: { __dirname: 'import.meta.dirname', __filename: 'import.meta.filename' },
    metafile: true,
    logLevel: 'silent'
  }
  // The CLI graph, then the sidecar's: distinct chunk names, so neither overwrites the other's files.
  const cli = await build({
    ...common,
    entryPoints: { main: 'src/main.ts', healthcheck: 'src/healthcheck-main.ts' },
    chunkNames: '[name]-[hash]',
    plugins: [vendorPlugin, builtinHttpPlugin, formDataCheckPlugin, serveAsFilePlugin]
  })
  const sidecar = await build({
    ...common,
    entryPoints: Object.fromEntries(SIDECAR_COMMANDS.map(c => [c, `src/cli/${c}.ts`])),
    chunkNames: `${SERVE_ENTRY}-[name]-[hash]`,
    plugins: [vendorPlugin, builtinHttpPlugin, formDataCheckPlugin]
  })
  const warnings = [...cli.warnings, ...sidecar.warnings]
  if (warnings.length > 0) {
    throw new Error(`esbuild warnings:\n${warnings.map(w => `${w.location?.file ?? ''}:${w.location?.line ?? ''} ${w.text}`).join('\n')}`)
  }
  const result = { metafile: mergeMetafiles(cli.metafile, sidecar.metafile) }
  const produced = new Set(Object.keys(result.metafile.outputs).map(p => resolve(ROOT, p)))
  const missing = SIDECAR_COMMANDS.filter(c => !produced.has(join(outdir, `${c}.js`)))
  if (missing.length > 0) throw new Error(`the sidecar graph did not produce ${missing.map(c => `${c}.js`).join(', ')}, which the CLI imports`)
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
