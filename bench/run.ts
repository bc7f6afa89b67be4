// `npm run bench` (node scripts/node24.mjs bench/run.ts [--quick] [--source] [--markdown FILE] [--node-args='...']):
// skr's release latency, throughput, start-up time and memory, with attestation reuse on and off,
// at an emulated upstream round-trip time of 0 and 20 ms. skr runs in its own process (`skr
// serve` from the bundle (dist/), as the image runs it; --source: bin/skr.js on the TypeScript
// sources), so its start-up and RSS are its own; the MAA, IMDS and AKV emulators and the load
// generator run in this process and share the machine's cores with it.
// Prints two tables, the target verdicts (issues 6 and 13) and one final `BENCH_JSON {...}` line.
import { cpus, totalmem } from 'node:os'
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { startEmulatedEnvironment, type EmulatedEnvironment } from '../src/emulator/environment.ts'
import { defaultEmulatedCacheDir } from '../src/simulated/emulated-chain-cache.ts'
import { buildMirror, FLOOR_BUNDLE } from './compile.ts'
import { runLoad, type LoadResult } from './load.ts'
import { caveats, formatTables, formatVerdicts, judge, REFERENCE, type FloorRun, type ProcessRun, type StartupSample } from './report.ts'
import { sourcesBin, spawnSkrMeasured, type SkrProcess, IMAGE_ENV, IMAGE_NODE_ARGS } from './skr-process.ts'


/** How much to run: `--quick` is a ~30 s subset (RTT 0 only, 1 and 16 clients, short scenarios). */
interface Plan {
  rtts: number[]
  concurrencies: number[]
  maxRequests: Record<number, number>
  scenarioMs: number
  settleMs: number
  /** Extra start-up-only spawns of the other mode (compiled vs sources), for comparison. */
  otherModeStartups: number
  /** Unrecorded releases before the scenarios (16 clients), and the time cap on them. */
  warmupRequests: number
  warmupMs: number
  /** Node.js options for skr's process (--node-args; default the image's, IMAGE_NODE_ARGS). */
  nodeArgs: readonly string[]
}

const FULL: Plan = { rtts: [0, 20], concurrencies: [1, 16, 64], maxRequests: { 1: 1000, 16: 3000, 64: 3000 }, scenarioMs: 6_000, settleMs: 1_000, otherModeStartups: 3, warmupRequests: 1000, warmupMs: 5_000, nodeArgs: IMAGE_NODE_ARGS }
const QUICK: Plan = { rtts: [0], concurrencies: [1, 16], maxRequests: { 1: 400, 16: 1200 }, scenarioMs: 2_500, settleMs: 300, otherModeStartups: 1, warmupRequests: 500, warmupMs: 3_000, nodeArgs: IMAGE_NODE_ARGS }
// One key per client: concurrent releases of one key are coalesced by skr, which would measure
// the coalescing rather than the release path.
const KEYS = 64

function log (line: string): void {
  process.stderr.write(`bench: ${line}\n`)
}

function setRtt (env: EmulatedEnvironment, rttMs: number): void {
  const delayMs = rttMs > 0 ? rttMs : undefined
  env.maa.faults.delayMs = delayMs
  env.imds.faults.delayMs = delayMs
  env.akv.faults.delayMs = delayMs
}

async function createKeys (env: EmulatedEnvironment): Promise<void> {
  const data = Buffer.from(JSON.stringify(env.releasePolicy())).toString('base64url')
  for (let i = 0; i < KEYS; i++) {
    await env.akv.store.createKey(`bench-${i}`, { kty: 'oct-HSM', size: 256, exportable: true, releasePolicy: { data, immutable: false } })
  }
}

/** Samples a process's RSS every 25 ms until stopped; resolves to the largest sample. */
function sampleRss (skr: SkrProcess): { stop: () => Promise<number | null> } {
  let max: number | null = null
  let running = true
  const loop = (async () => {
    while (running) {
      const rss = await skr.rssBytes()
      if (rss !== null && (max === null || rss > max)) max = rss
      await new Promise(resolve => setTimeout(resolve, 25))
    }
  })()
  return { stop: async () => { running = false; await loop; return max } }
}

async function measureStartup (env: EmulatedEnvironment, plan: Plan, bin: string, mode: StartupSample['mode']): Promise<StartupSample> {
  const skr = await spawnSkrMeasured(env, { bin, nodeArgs: plan.nodeArgs })
  try {
    await new Promise(resolve => setTimeout(resolve, plan.settleMs))
    return { mode, startupMs: skr.startupMs, rssIdleBytes: await skr.rssBytes() }
  } finally {
    await skr.stop()
  }
}

async function measureProcess (env: EmulatedEnvironment, plan: Plan, bin: string, reuse: 'on' | 'off', rttMs: number): Promise<ProcessRun> {
  setRtt(env, rttMs)
  const skr = await spawnSkrMeasured(env, { bin, nodeArgs: plan.nodeArgs, overrides: { SKR_ATTESTATION_TTL_SECONDS: reuse === 'on' ? '300' : '0' } })
  try {
    // Idle: after start-up work that does not wait for a request (collateral fetch, key pool) settles.
    await new Promise(resolve => setTimeout(resolve, plan.settleMs))
    const rssIdleBytes = await skr.rssBytes()
    const body = (worker: number): string => JSON.stringify({ maa_endpoint: env.maa.endpoint, akv_endpoint: env.akv.endpoint, kid: `bench-${worker % KEYS}` })

    const overall = sampleRss(skr)
    const sent = performance.now()
    const res = await request(`${skr.base}/key/release`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(0) })
    await res.body.dump()
    const cold = { ms: performance.now() - sent, status: res.statusCode }
    // Warm-up, not recorded: connection pools, the token and attestation caches, and enough
    // releases for V8 to have optimised the release path (a fresh process runs it in the
    // interpreter at first), as in a sidecar that has been serving a while. 40 releases left the
    // 20 ms RTT scenario (~40 releases/s with one client) still warming up.
    const warm = await runLoad({ base: skr.base, path: '/key/release', concurrency: 16, maxRequests: plan.warmupRequests, maxMs: plan.warmupMs, body })
    if (warm.ok !== warm.requests) log(`warm-up: ${warm.requests - warm.ok} of ${warm.requests} releases failed: ${JSON.stringify(warm.errors)}`)

    const scenarios: ProcessRun['scenarios'] = []
    for (const concurrency of plan.concurrencies) {
      const rss = sampleRss(skr)
      const maaBefore = env.maa.requests
      const result: LoadResult = await runLoad({
        base: skr.base,
        path: '/key/release',
        concurrency,
        maxRequests: plan.maxRequests[concurrency] ?? 1000,
        maxMs: plan.scenarioMs,
        body
      })
      const maaCalls = env.maa.requests - maaBefore
      scenarios.push({ ...result, rssMaxBytes: await rss.stop(), maaCallsPerRelease: result.requests === 0 ? 0 : maaCalls / result.requests })
      log(`reuse ${reuse}, RTT ${rttMs} ms, ${concurrency} clients: ${result.ok}/${result.requests} ok, p50 ${result.p50Ms?.toFixed(2) ?? 'n/a'} ms, ${result.okPerSecond.toFixed(0)}/s`)
    }
    const rssLoadMaxBytes = await overall.stop()
    const exit = await skr.stop()
    return { reuse, rttMs, startupMs: skr.startupMs, rssIdleBytes, rssLoadMaxBytes, cold, scenarios, exit }
  } catch (err) {
    await skr.stop()
    throw err
  }
}

/**
 * The stack floor, measured like skr: RSS after the same settle time, then the same closed-loop
 * scenarios (at 0 ms RTT) while RSS is sampled. What skr uses above it is skr's own.
 */
async function measureFloor (env: EmulatedEnvironment, plan: Plan): Promise<FloorRun> {
  setRtt(env, 0)
  // The stack floor (bench/floor-server.mjs, bundled like skr): skr's stack doing one TLS call per request and nothing else.
  const floor = await spawnSkrMeasured(env, { bin: FLOOR_BUNDLE, nodeArgs: plan.nodeArgs })
  try {
    await new Promise(resolve => setTimeout(resolve, plan.settleMs))
    const rssIdleBytes = await floor.rssBytes()
    const body = (worker: number): string => JSON.stringify({ maa_endpoint: env.maa.endpoint, akv_endpoint: env.akv.endpoint, kid: `bench-${worker % KEYS}` })
    const rss = sampleRss(floor)
    for (const concurrency of plan.concurrencies) {
      const result = await runLoad({ base: floor.base, path: '/key/release', concurrency, maxRequests: plan.maxRequests[concurrency] ?? 1000, maxMs: plan.scenarioMs, body })
      if (result.ok !== result.requests) throw new Error(`stack floor: ${result.requests - result.ok} of ${result.requests} requests failed: ${JSON.stringify(result.errors)}`)
    }
    const rssLoadMaxBytes = await rss.stop()
    log(`stack floor: RSS idle ${((rssIdleBytes ?? NaN) / 1048576).toFixed(1)} MB, under load ${((rssLoadMaxBytes ?? NaN) / 1048576).toFixed(1)} MB`)
    return { startupMs: floor.startupMs, rssIdleBytes, rssLoadMaxBytes }
  } finally {
    await floor.stop()
  }
}

async function main (): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, source: { type: 'boolean' }, markdown: { type: 'string' }, 'node-args': { type: 'string' } } })
  const base = values.quick === true ? QUICK : FULL
  // --node-args replaces the image's flags (IMAGE_NODE_ARGS); --node-args= (empty) runs plain node.
  const nodeArgs = values['node-args'] === undefined ? base.nodeArgs : values['node-args'].split(/\s+/).filter(a => a !== '')
  const plan = { ...base, nodeArgs }
  const began = performance.now()
  const mirror = await buildMirror()
  log(`bundled skr (${mirror.files} files, ${(mirror.bytes / 1048576).toFixed(2)} MB) and the stack floor under ${mirror.bin} in ${mirror.ms.toFixed(0)} ms`)
  const mode: StartupSample['mode'] = values.source === true ? 'source' : 'compiled'
  // Both modes are measured (the other one start-up only), so the sources must be runnable either way.
  const sources = sourcesBin()
  const bin = mode === 'source' ? sources : mirror.bin
  const env = await startEmulatedEnvironment({ cacheDir: defaultEmulatedCacheDir(process.env) })
  const runs: ProcessRun[] = []
  const startups: StartupSample[] = []
  let floor: FloorRun
  try {
    await createKeys(env)
    for (const rttMs of plan.rtts) {
      for (const reuse of ['on', 'off'] as const) {
        log(`starting skr (${mode}): reuse ${reuse}, RTT ${rttMs} ms`)
        const run = await measureProcess(env, plan, bin, reuse, rttMs)
        runs.push(run)
        startups.push({ mode, startupMs: run.startupMs, rssIdleBytes: run.rssIdleBytes })
      }
    }
    const other = mode === 'source' ? 'compiled' : 'source'
    for (let i = 0; i < plan.otherModeStartups; i++) {
      log(`start-up only (${other})`)
      startups.push(await measureStartup(env, plan, other === 'source' ? sources : mirror.bin, other))
    }
    log('stack floor (bench/floor-server.mjs)')
    floor = await measureFloor(env, plan)
  } finally {
    setRtt(env, 0)
    await env.close()
  }

  const when = new Date().toISOString()
  const cpu = cpus()
  const machine = `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}, ${process.platform}`
  const seconds = (performance.now() - began) / 1000
  const verdicts = judge(runs, floor, mode === 'compiled' ? mirror.footprintBytes : null)
  const lines = [
    `skr benchmark ${when} (${values.quick === true ? 'quick' : 'full'}, ${seconds.toFixed(0)} s)`,
    `machine: ${machine}; skr (${mode === 'compiled' ? 'the bundle (dist/), as in the image' : 'TypeScript sources'}${nodeArgs.length === 0 ? '' : `, node ${nodeArgs.join(' ')}`}), the emulators and the load generator all share it, on loopback`,
    `reference (measured the same way): ${REFERENCE.c1.perSecond}/s at p50 ${REFERENCE.c1.p50Ms} ms with 1 client, ${REFERENCE.c16.perSecond}/s at p50 ${REFERENCE.c16.p50Ms} ms with 16; start-up ${REFERENCE.startupMs} ms; RSS idle ${REFERENCE.rssIdleMb} MB`,
    '',
    ...formatTables(runs),
    '',
    ...formatVerdicts(verdicts),
    '',
    ...caveats(runs, startups, floor).map(c => `note: ${c}`)
  ]
  process.stdout.write(lines.join('\n') + '\n')
  if (values.markdown !== undefined) {
    const md = [
      `# skr benchmark results`, '',
      `Recorded ${when} with \`npm run bench${values.quick === true ? ' -- --quick' : ''}\` (${seconds.toFixed(0)} s).`, '',
      `Machine: ${machine}. skr runs in its own process (${mode === 'compiled' ? 'the bundle (dist/), as in the image' : 'TypeScript sources'}${nodeArgs.length === 0 ? '' : `, \`node ${nodeArgs.join(' ')}\``}, \`${Object.entries(IMAGE_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}\`); the MAA, IMDS and AKV emulators and the load generator run in the benchmark process and share the same cores, all on loopback.`, '',
      ...formatTables(runs, true), '',
      ...formatVerdicts(verdicts, true), '',
      ...caveats(runs, startups, floor).map(c => `- ${c}`), ''
    ]
    await writeFile(values.markdown, md.join('\n'))
  }
  process.stdout.write(`BENCH_JSON ${JSON.stringify({ date: when, quick: values.quick === true, machine, seconds, reference: REFERENCE, runs, startups, floor, footprintBytes: mirror.footprintBytes, verdicts })}\n`)
  return 0
}

process.exitCode = await main()
