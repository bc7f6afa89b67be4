// The Dockerfile, checked without a Docker engine: parse it, then check what an image build
// relies on (sources in the context, Node 24 bases, a non-root shell-less runtime, the
// entrypoint's file in the image layout, runtime assets copied). The layout rebuilt in a temp dir
// and started: test/process/deploy/dockerfile.test.ts.
import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { IMAGE_NODE_ARGS } from '../../../bench/skr-process.ts'
import { VENDOR_ASSETS } from '../../../scripts/bundle.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const read = (path: string): string => readFileSync(join(root, path), 'utf8')

interface Instruction { op: string; args: string; line: number }
interface Stage { from: string; name: string | null; instructions: Instruction[] }

/** Splits a Dockerfile into stages of instructions (comments dropped, continuations joined). */
function parseDockerfile (text: string): Stage[] {
  const stages: Stage[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const start = i
    let line = lines[i] ?? ''
    if (/^\s*(#|$)/.test(line)) continue
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + (lines[++i] ?? '')
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line)
    if (m === null) throw new Error(`line ${start + 1}: cannot parse ${line}`)
    const op = (m[1] ?? '').toUpperCase()
    const args = (m[2] ?? '').trim()
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)
      stages.push({ from: f?.[1] ?? args, name: f?.[2] ?? null, instructions: [] })
    } else {
      const stage = stages.at(-1)
      if (stage === undefined) throw new Error(`line ${start + 1}: ${op} before FROM`)
      stage.instructions.push({ op, args, line: start + 1 })
    }
  }
  return stages
}

interface Copy { from: string | null; chmod: string | null; chown: string | null; sources: string[]; dest: string }

function parseCopy (args: string): Copy {
  const words = args.split(/\s+/)
  let from: string | null = null
  let chmod: string | null = null
  let chown: string | null = null
  while (words[0]?.startsWith('--') === true) {
    const flag = words.shift() as string
    if (flag.startsWith('--from=')) from = flag.slice(7)
    else if (flag.startsWith('--chmod=')) chmod = flag.slice(8)
    else if (flag.startsWith('--chown=')) chown = flag.slice(8)
    else throw new Error(`unexpected COPY flag ${flag}`)
  }
  const dest = words.pop() as string
  return { from, chmod, chown, sources: words, dest }
}

const stages = parseDockerfile(read('Dockerfile'))
const byName = new Map(stages.filter(s => s.name !== null).map(s => [s.name as string, s]))
const finalStage = stages.at(-1) as Stage

/** The stage and its ancestors (FROM <stage>), nearest first. */
function lineage (stage: Stage): Stage[] {
  const chain = [stage]
  let parent = byName.get(stage.from)
  while (parent !== undefined) {
    chain.push(parent)
    parent = byName.get(parent.from)
  }
  return chain
}

/** The last value of an instruction along a stage's lineage (USER, ENTRYPOINT, WORKDIR). */
function effective (stage: Stage, op: string): string | null {
  for (const s of lineage(stage)) {
    const found = s.instructions.filter(i => i.op === op).at(-1)
    if (found !== undefined) return found.args
  }
  return null
}

const isNonRoot = (user: string | null): boolean => user !== null && !/^(0|root)(:|$)/.test(user)

const build = byName.get('build') as Stage
const compileCache = byName.get('compile-cache') as Stage
/** The stages the shipped images are made of (the default target, the root target and their bases). */
const runtimeStages = [...new Set([...lineage(finalStage), ...(byName.has('root') ? lineage(byName.get('root') as Stage) : [])])]
  .filter(s => s !== build && s !== compileCache)

/** ENV along a stage's lineage, later values winning. */
function envOf (stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const s of lineage(stage).reverse()) {
    for (const ins of s.instructions.filter(i => i.op === 'ENV')) {
      for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1] as string] = (m[2] as string).replace(/^"|"$/g, '')
    }
  }
  return env
}

// Produced inside the build stage rather than copied in, and the step that produces each.
const PRODUCED: Readonly<Record<string, RegExp>> = {
  node_modules: /\bnpm ci\b/,
  dist: /\bnpm run build:js\b/,
  'build/Release/snp_guest.node': /\bnpm run build:native\b/
}

function dockerignore (): string[] {
  return read('.dockerignore').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
}

/** A file the context sends (a simplified .dockerignore match: top-level names and globs). */
function ignored (path: string, patterns: readonly string[]): boolean {
  return patterns.some(p => {
    const re = new RegExp('^' + p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '.*').replace(/(?<!\.)\*/g, '[^/]*') + '(/|$)')
    return re.test(path)
  })
}

t.test('stages: a Node 24 build image and a distroless Node 24 runtime', async t => {
  t.ok(build, 'a stage named build')
  const external = stages.map(s => s.from).filter(f => !byName.has(f))
  t.ok(external.length >= 2)
  for (const image of external) {
    t.match(image, /^(node:24(-[a-z0-9.-]+)?|gcr\.io\/distroless\/nodejs24-debian\d+:[a-z0-9.-]+)@/, `${image} pinned to Node 24`)
    // The layers are measured into the confidential policy: a tag alone could move under it.
    t.match(image, /@sha256:[0-9a-f]{64}$/, `${image} pinned by digest`)
  }
  t.match(build.from, /^node:24-/, 'the build stage has the toolchain and Node headers')
  t.match(lineage(finalStage).at(-1)?.from, /^gcr\.io\/distroless\/nodejs24-/, 'the default image is distroless')
})

t.test('the build stage builds the addon against its own Node and the bundle into dist/', async t => {
  const runs = build.instructions.filter(i => i.op === 'RUN').map(i => i.args)
  const envs = build.instructions.filter(i => i.op === 'ENV').map(i => i.args)
  t.ok(envs.some(e => /^npm_config_nodedir=\/usr\/local$/.test(e)), 'npm_config_nodedir=/usr/local (the image\'s headers)')
  const index = (re: RegExp): number => runs.findIndex(r => re.test(r))
  t.ok(index(/npm ci\b/) >= 0, 'npm ci')
  t.ok(index(/npm ci\b.*--ignore-scripts/) >= 0, 'install scripts off: the addon is built explicitly')
  t.ok(index(/npm run build:native/) > index(/npm ci\b/), 'addon after dependencies')
  t.ok(index(/npm run build:js/) > index(/npm ci\b/), 'the bundle after dependencies')
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> }
  t.match(pkg.scripts['build:js'], /^node scripts\/bundle\.mjs$/, 'build:js is the bundler, which writes dist/ (src/main.ts → dist/main.js)')
  t.match(pkg.scripts['build:native'], /node-gyp/)
})

t.test('every COPY source exists in the context or is produced by an earlier build step', async t => {
  const patterns = dockerignore()
  const copiedIntoBuild = new Set<string>()
  for (const stage of stages) {
    const runsSoFar: string[] = []
    for (const ins of stage.instructions) {
      if (ins.op === 'RUN') runsSoFar.push(ins.args)
      if (ins.op !== 'COPY') continue
      const copy = parseCopy(ins.args)
      for (const source of copy.sources) {
        if (copy.from === null) {
          t.ok(existsSync(join(root, source)), `line ${ins.line}: ${source} exists in the repo`)
          t.notOk(ignored(source, patterns), `line ${ins.line}: ${source} is not excluded by .dockerignore`)
          if (stage === build) copiedIntoBuild.add(source.replace(/\/$/, ''))
          continue
        }
        const from = byName.get(copy.from)
        if (from === compileCache && compileCache !== undefined) {
          t.equal(source, envOf(compileCache).NODE_COMPILE_CACHE, `line ${ins.line}: copies the compile-cache stage's NODE_COMPILE_CACHE`)
          t.ok(compileCache.instructions.some(i => i.op === 'RUN' && /warm-compile-cache\.mjs/.test(i.args)), `line ${ins.line}: which that stage fills`)
          continue
        }
        t.equal(from, build, `line ${ins.line}: copies from the build stage`)
        const path = posix.relative('/src', source)
        const produced = PRODUCED[path]
        if (produced !== undefined) {
          t.ok(build.instructions.some(i => i.op === 'RUN' && produced.test(i.args)), `line ${ins.line}: ${path} is produced by the build stage`)
        } else {
          t.ok(copiedIntoBuild.has(path), `line ${ins.line}: ${path} was copied into the build stage`)
        }
      }
    }
  }
  t.equal(effective(build, 'WORKDIR'), '/src', 'the build stage works in /src (the paths above)')
})

t.test('runtime stages: no RUN, no package manager, non-root by default, a root variant', async t => {
  for (const stage of runtimeStages) {
    for (const ins of stage.instructions) {
      t.not(ins.op, 'RUN', `line ${ins.line}: nothing runs in a shell-less runtime stage`)
      t.notMatch(ins.args, /\b(apt-get|apt|apk|tdnf|dnf|yum|gcc|g\+\+|make|python3)\b/, `line ${ins.line}: no package manager or compiler`)
    }
  }
  t.ok(isNonRoot(effective(finalStage, 'USER')), `the default target runs as ${String(effective(finalStage, 'USER'))}`)
  t.match(effective(finalStage, 'USER'), /^\d+(:\d+)?$/, 'numeric uid, so runAsNonRoot can verify it')
  const rootVariant = byName.get('root')
  t.ok(rootVariant, 'a root target for guests whose /dev/sev-guest is root-only')
  if (rootVariant !== undefined) t.equal(effective(rootVariant, 'USER'), '0:0')
  const env = lineage(finalStage).flatMap(s => s.instructions.filter(i => i.op === 'ENV').map(i => i.args))
  t.ok(env.includes('NODE_ENV=production'))
  t.notOk(runtimeStages.some(s => s.instructions.some(i => i.op === 'EXPOSE')), 'no EXPOSE: the API is loopback-only')
})

/** The runtime image's files: destination path → where it comes from in the repo or build output. */
function imageLayout (): Map<string, string> {
  const layout = new Map<string, string>()
  for (const stage of lineage(finalStage).reverse()) {
    const workdir = effective(stage, 'WORKDIR') ?? '/'
    for (const ins of stage.instructions.filter(i => i.op === 'COPY')) {
      const copy = parseCopy(ins.args)
      for (const source of copy.sources) {
        const dest = posix.resolve(workdir, copy.dest)
        layout.set(dest, copy.from === null ? source : posix.relative('/src', source))
      }
    }
  }
  return layout
}

/** Maps an absolute image path to its repo-relative origin, through the copied directories. */
function origin (layout: Map<string, string>, path: string): string | null {
  for (const [dest, source] of layout) {
    if (path === dest) return source
    if (path.startsWith(dest + '/')) return posix.join(source, path.slice(dest.length + 1))
  }
  return null
}

const entrypoint = JSON.parse(effective(finalStage, 'ENTRYPOINT') ?? 'null') as string[] | null

t.test('the entrypoint names files the image has', async t => {
  t.same(entrypoint, ['/nodejs/bin/node', '/app/bin/skr.js'], 'the documented entrypoint (pinned in policies)')
  const layout = imageLayout()
  t.equal(origin(layout, '/app/bin/skr.js'), 'bin/skr.js')
  t.ok(existsSync(join(root, 'bin/skr.js')))
  t.match(read('bin/skr.js'), /'\.\.\/dist\/main\.js'/, 'bin/skr.js prefers ../dist/main.js')
  t.equal(origin(layout, '/app/dist/main.js'), 'dist/main.js', 'dist/ is in the image')
  t.ok(existsSync(join(root, 'src/main.ts')), 'which the bundler builds from src/main.ts')
  t.equal(origin(layout, '/app/package.json'), 'package.json', 'package.json ("type": "module") is in the image')
  t.equal(origin(layout, '/app/node_modules'), null, 'no node_modules: every dependency is in the bundle')

  const healthcheck = effective(finalStage, 'HEALTHCHECK')
  t.match(healthcheck, /CMD \["\/nodejs\/bin\/node", "\/app\/bin\/skr\.js", "healthcheck"\]/)

  // /skr.sh and /bin/skr: the reference's commands (its ACI templates, the AKS docs), as a Node
  // script (no shell in the image) the kernel starts through its shebang.
  for (const dest of ['/skr.sh', '/bin/skr']) {
    const copy = [...stages.flatMap(s => s.instructions)].filter(i => i.op === 'COPY').map(i => parseCopy(i.args)).find(c => c.dest === dest)
    t.ok(copy, `${dest} is in the image`)
    t.equal(copy?.chmod, '0755', `${dest} is executable`)
    const script = read(copy?.sources[0] ?? '')
    t.match(script, /^#!\/nodejs\/bin\/node\n/, `${dest} is run by the kernel through the image's node`)
    t.match(script, /join\(dir, 'app', 'bin', 'skr\.js'\)/, `${dest} finds app/bin/skr.js above its own directory`)
  }
})

t.test('files src/ reads from the package root at run time are in the image', async t => {
  const layout = imageLayout()
  const assets: string[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = posix.join(dir, entry.name)
      if (entry.isDirectory()) { walk(path); continue }
      if (!path.endsWith('.ts')) continue
      const text = read(path)
      // packagePath('a', 'b') calls with literal parts, and the addon's path constant.
      for (const m of text.matchAll(/packagePath\(((?:'[^']*'(?:, )?)+)\)/g)) assets.push(posix.join(...[...(m[1] as string).matchAll(/'([^']*)'/g)].map(p => p[1] as string)))
      for (const m of text.matchAll(/ADDON_PATH = '([^']+)'/g)) assets.push(m[1] as string)
      // Files of dependencies: the bundle must vendor their package (scripts/bundle.mjs VENDOR_ASSETS).
      for (const m of text.matchAll(/dependencyFile\('([^']+)', '([^']+)'\)/g)) {
        const [pkg, file] = [m[1] as string, m[2] as string]
        t.ok((VENDOR_ASSETS[pkg] ?? []).some(dir => file.startsWith(`${dir}/`)), `${path} reads ${pkg}/${file}: the bundle copies it to dist/vendor/`)
      }
    }
  }
  walk('src')
  for (const asset of new Set(assets)) {
    t.ok(origin(layout, posix.join('/app', asset)) !== null, `${asset} is copied to /app/${asset}`)
  }
  t.ok(assets.includes('build/Release/snp_guest.node'), 'the addon path is among them (the scan works)')
  t.ok(assets.includes('proto'), 'and the proto directory')
})

t.test('the benchmark runs skr with the image\'s Node options and malloc setting', async t => {
  const env = envOf(finalStage)
  t.same((env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean), IMAGE_NODE_ARGS, 'bench/skr-process.ts IMAGE_NODE_ARGS = the Dockerfile\'s NODE_OPTIONS')
  t.match(read('bench/skr-process.ts'), new RegExp(`MALLOC_ARENA_MAX: '${env.MALLOC_ARENA_MAX ?? 'unset'}'`), 'and its MALLOC_ARENA_MAX')
  t.match(read('bench/skr-process.ts'), new RegExp(`MALLOC_MMAP_THRESHOLD_: '${env.MALLOC_MMAP_THRESHOLD_ ?? 'unset'}'`), 'and its MALLOC_MMAP_THRESHOLD_')
})

t.test('a compile cache filled per runtime user, with the runtime\'s options, shipped read-only', async t => {
  t.ok(compileCache, 'a stage named compile-cache')
  if (compileCache === undefined) return
  const runtime = lineage(finalStage).find(s => s.instructions.some(i => i.op === 'ENTRYPOINT')) as Stage
  t.ok(lineage(compileCache).some(s => lineage(runtime).includes(s) && s.instructions.some(i => i.op === 'COPY')), 'it is built on the stage that holds the app files, at the same paths')
  t.equal(envOf(compileCache).NODE_OPTIONS, envOf(finalStage).NODE_OPTIONS, 'the same NODE_OPTIONS (V8 flags are part of the cache key)')
  // Node keys the cache directory by uid: every user an image target runs as needs its own fill.
  const warmUsers: string[] = []
  let user = effective(byName.get(compileCache.from) ?? compileCache, 'USER')
  for (const ins of compileCache.instructions) {
    if (ins.op === 'USER') user = ins.args
    if (ins.op !== 'RUN') continue
    t.match(ins.args, /^\["\/nodejs\/bin\/node", "\/warm-compile-cache\.mjs", "\/app"\]$/, `line ${ins.line}: exec form (no shell), the runtime's node, the app's path`)
    warmUsers.push((user ?? '').split(':')[0] ?? '')
  }
  const targets = [finalStage, byName.get('root')].filter((s): s is Stage => s !== undefined)
  for (const target of targets) {
    const uid = (effective(target, 'USER') ?? '').split(':')[0] ?? ''
    t.ok(warmUsers.includes(uid), `target ${target.name ?? 'default'} runs as uid ${uid}, for which the cache is filled`)
  }
  const copy = runtime.instructions.filter(i => i.op === 'COPY').map(i => parseCopy(i.args)).find(c => c.from === 'compile-cache')
  t.ok(copy, 'the runtime copies the cache in')
  t.equal(copy?.chmod, '0555', 'read-only: nothing in the container can rewrite the code it runs')
  // A copy between stages keeps the source's owners (BuildKit, moby/moby#38599): without --chown
  // the 65532 fill would stay owned by 65532, which could make it writable again with chmod.
  t.equal(copy?.chown, '0:0', 'and root-owned: --chown=0:0, as a copy between stages keeps the fill\'s uid 65532')
  t.equal(envOf(finalStage).NODE_COMPILE_CACHE, copy?.dest, 'and points NODE_COMPILE_CACHE at it')
  t.ok(existsSync(join(root, 'deploy/image/warm-compile-cache.mjs')))
})

t.test('.dockerignore keeps host artefacts out of the context', async t => {
  const patterns = dockerignore()
  for (const name of ['node_modules', '.git', '.cache', 'dist', 'build']) t.ok(patterns.includes(name), name)
  t.ok(ignored('node_modules/fastify/package.json', patterns))
  t.notOk(ignored('deploy/image/skr.sh', patterns), 'the /skr.sh source stays in the context')
})
