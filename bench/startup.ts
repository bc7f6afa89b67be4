// `node scripts/node24.mjs bench/startup.ts [--runs N] [--source | --bin FILE] [--settle MS] [--node-args='...'] [--no-compile-cache] [--detail] [--modules]`:
// start-up time and idle memory of `skr serve`, measured as `npm run bench` measures them (its own
// process, the bundle in .cache/bench unless --source (or --bin: another build's
// bin/skr.js, to compare two versions), against the emulated environment,
// spawn to the first GET /status 200 polled every 5 ms, VmRSS after a settle time), with more runs
// and more detail:
// - a first, separate run warms Node's compile cache (a fresh mirror is a cold cache);
//   --no-compile-cache turns the cache off instead (NODE_DISABLE_COMPILE_CACHE): a container
//   starts with an empty /tmp, or a read-only one, so that is what a pod sees unless the image
//   ships a cache (NODE_COMPILE_CACHE pointing at one built into it);
// - RSS is split into anonymous memory (V8 heap, malloc) and file-backed pages (mostly the node
//   binary's own code and data: shared and reclaimable, but counted in VmRSS);
// - --detail: when each start-up phase ended, from skr's own log lines (LogLevel info), and from
//   inside skr (a small preloaded probe): Node's bootstrap, process.memoryUsage() and the V8 heap
//   spaces once idle;
// - --modules (implies --detail): also the files loaded per npm package once idle. The probe then
//   hooks every module load, which makes start-up much slower: read its times as relative only.
// Progress goes to stderr; the result to stdout.
import { randomUUID } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { defaultEmulatedCacheDir } from '../src/simulated/emulated-chain-cache.ts'
import { startEmulatedEnvironment, type EmulatedEnvironment } from '../src/emulator/environment.ts'
import { buildMirror } from './compile.ts'
import { sourcesBin, spawnSkrMeasured } from './skr-process.ts'

/** What the preloaded probe reports from inside skr when it receives SIGTERM. */
interface Inside {
  /** Date.now() when Node finished bootstrapping (before skr's first module). */
  bootstrappedAt: number
  memory: NodeJS.MemoryUsage
  spaces: Array<{ name: string, size: number, used: number }>
  packages: Record<string, number> | null
}

interface Run {
  startupMs: number
  rss: number
  anon: number
  file: number
  /** Phase name -> ms after spawn (--detail). */
  phases: Record<string, number>
  inside: Inside | null
}

// Runs in skr's process (--import): on SIGTERM (before skr's own handler shuts it down) writes what
// it saw to BENCH_DETAIL_FILE; with BENCH_COUNT_MODULES it also counts the files loaded per package.
const PROBE = `
import module from 'node:module'
import { writeFileSync } from 'node:fs'
import v8 from 'node:v8'
const packages = process.env.BENCH_COUNT_MODULES === '1' ? {} : null
if (packages !== null) module.registerHooks({ load (url, context, next) {
  const name = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(url)?.[1] ?? (url.startsWith('file:') ? '(skr)' : null)
  if (name !== null) packages[name] = (packages[name] ?? 0) + 1
  return next(url, context)
} })
process.once('SIGTERM', () => {
  const spaces = v8.getHeapSpaceStatistics().filter(s => s.space_size > 0).map(s => ({ name: s.space_name, size: s.space_size, used: s.space_used_size }))
  const bootstrappedAt = performance.timeOrigin + performance.nodeTiming.bootstrapComplete
  writeFileSync(process.env.BENCH_DETAIL_FILE, JSON.stringify({ bootstrappedAt, memory: process.memoryUsage(), spaces, packages }))
})
`

// The log lines that close each phase of `skr serve`, in order (src/app/attestation.ts, src/app/release.ts, src/server/listen.ts).
const PHASES: ReadonlyArray<readonly [string, RegExp]> = [
  ['modules + config', /^UVM security context loaded$/],
  ['attestation built', /^attestation backend selected$/],
  ['key release built', /^key release ready$/],
  ['listening', /^skr HTTP API listening$/]
]

const MB = 1024 * 1024

function log (line: string): void {
  process.stderr.write(`startup: ${line}\n`)
}

async function procStatus (pid: number): Promise<{ rss: number, anon: number, file: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') }
}

function phasesOf (output: string, spawnedAt: number): Record<string, number> {
  const found: Record<string, number> = {}
  for (const line of output.split('\n')) {
    let entry: { msg?: unknown, time?: unknown }
    try { entry = JSON.parse(line) as typeof entry } catch { continue }
    const phase = PHASES.find(([, msg]) => typeof entry.msg === 'string' && msg.test(entry.msg))
    if (phase !== undefined && typeof entry.time === 'string' && !(phase[0] in found)) found[phase[0]] = Date.parse(entry.time) - spawnedAt
  }
  return found
}

interface Options { bin: string, nodeArgs: readonly string[], settleMs: number, detail: boolean, modules: boolean, compileCache: boolean }

async function measure (env: EmulatedEnvironment, options: Options, detail: boolean): Promise<Run> {
  const detailFile = join(tmpdir(), `skr-startup-${randomUUID()}.json`)
  const skr = await spawnSkrMeasured(env, {
    bin: options.bin,
    nodeArgs: detail ? [...options.nodeArgs, '--import', `data:text/javascript,${encodeURIComponent(PROBE)}`] : options.nodeArgs,
    ...(detail ? { logLevel: 'info' } : {}),
    overrides: {
      ...(options.compileCache ? {} : { NODE_DISABLE_COMPILE_CACHE: '1' }),
      ...(detail ? { BENCH_DETAIL_FILE: detailFile, BENCH_COUNT_MODULES: options.modules ? '1' : '0' } : {})
    }
  })
  const settleMs = options.settleMs
  try {
    await new Promise(resolve => setTimeout(resolve, settleMs))
    const memory = await procStatus(skr.pid)
    await skr.stop()
    const phases = detail ? phasesOf(skr.output(), skr.spawnedAt) : {}
    let inside: Inside | null = null
    if (detail) {
      inside = JSON.parse(await readFile(detailFile, 'utf8')) as Inside
      phases['node bootstrapped'] = inside.bootstrappedAt - skr.spawnedAt
    }
    return { startupMs: skr.startupMs, ...memory, phases, inside }
  } finally {
    await skr.stop()
    await rm(detailFile, { force: true })
  }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN
}

function table (header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ')
  return [line(header), widths.map(w => '-'.repeat(w)).join('  '), ...rows.map(line)]
}

async function main (): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '5' },
      settle: { type: 'string', default: '1000' },
      source: { type: 'boolean' },
      bin: { type: 'string' },
      detail: { type: 'boolean' },
      modules: { type: 'boolean' },
      'no-compile-cache': { type: 'boolean' },
      'node-args': { type: 'string' }
    }
  })
  const runs = Number(values.runs)
  const settleMs = Number(values.settle)
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(settleMs) || settleMs < 0) throw new Error('--runs must be >= 1 and --settle >= 0')
  const nodeArgs = (values['node-args'] ?? '').split(/\s+/).filter(a => a !== '')
  const modules = values.modules === true
  const detail = values.detail === true || modules
  const bin = values.bin ?? (values.source === true ? sourcesBin() : (await buildMirror()).bin)
  const compileCache = values['no-compile-cache'] !== true
  const options: Options = { bin, nodeArgs, settleMs, detail, modules, compileCache }
  const env = await startEmulatedEnvironment({ cacheDir: defaultEmulatedCacheDir(process.env) })
  const results: Run[] = []
  let first: Run
  try {
    log(`first run (${compileCache ? 'warms the compile cache; ' : ''}reported apart)`)
    first = await measure(env, options, false)
    for (let i = 1; i <= runs; i++) {
      log(`run ${i}/${runs}`)
      results.push(await measure(env, options, detail))
    }
  } finally {
    await env.close()
  }

  const mb = (bytes: number): string => (bytes / MB).toFixed(1)
  const phaseNames = detail ? ['node bootstrapped', ...PHASES.map(([name]) => name)] : []
  const out = [
    `skr serve start-up: ${values.bin ?? (values.source === true ? 'TypeScript sources (bin/skr.js)' : 'the bundle (.cache/bench/dist, as in the image)')}, Node ${process.version}` +
      `${nodeArgs.length === 0 ? '' : ` ${nodeArgs.join(' ')}`}, compile cache ${compileCache ? 'on' : 'off'}, ${runs} runs, idle after ${settleMs} ms` +
      `${modules ? ', every module load hooked (times inflated)' : detail ? ', with the in-process probe' : ''}`,
    '',
    ...table(
      ['run', ...phaseNames.map(p => `${p} ms`), 'start-up ms', 'RSS MB', 'anon MB', 'file MB'],
      results.map((r, i) => [String(i + 1), ...phaseNames.map(p => r.phases[p]?.toFixed(0) ?? '-'), r.startupMs.toFixed(0), mb(r.rss), mb(r.anon), mb(r.file)])
    ),
    '',
    `start-up (spawn to /status 200): median ${median(results.map(r => r.startupMs)).toFixed(0)} ms, ` +
      `min ${Math.min(...results.map(r => r.startupMs)).toFixed(0)}, max ${Math.max(...results.map(r => r.startupMs)).toFixed(0)}; ` +
      `first run${compileCache ? ' (cold compile cache)' : ''} ${first.startupMs.toFixed(0)} ms`,
    `RSS idle: median ${mb(median(results.map(r => r.rss)))} MB, largest ${mb(Math.max(...results.map(r => r.rss)))} MB ` +
      `(anonymous ${mb(median(results.map(r => r.anon)))}, file-backed ${mb(median(results.map(r => r.file)))})`
  ]
  const inside = results.at(-1)?.inside
  if (inside != null) {
    const m = inside.memory
    out.push(
      `inside skr (last run): heap total ${mb(m.heapTotal)} MB, used ${mb(m.heapUsed)} MB, external ${mb(m.external)} MB (array buffers ${mb(m.arrayBuffers)})`,
      `V8 spaces (committed/used MB): ${inside.spaces.map(s => `${s.name} ${mb(s.size)}/${mb(s.used)}`).join(', ')}`
    )
    if (inside.packages !== null) {
      out.push(`files loaded: ${Object.entries(inside.packages).sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ${n}`).join(', ')}`)
    }
  }
  process.stdout.write(out.join('\n') + '\n')
  return 0
}

process.exitCode = await main()
