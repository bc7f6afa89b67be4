// skr in its own process, as a deployment runs it (`node bin/skr.js serve`), pointed at an
// emulated environment: start-up time, RSS and signal handling can only be measured this way.
// Shared by the benchmark (bench/run.ts) and the tests that run skr as a process (test/e2e/).
// skr listens on port 0 and its port is read back from the kernel (no "find a free port, then
// use it" race), and it runs in a process group of its own that is killed with it
// (test/helpers/child-process.ts), also when the process that started it dies first.
import type { ChildProcess } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import type { EmulatedEnvironment } from '../src/emulator/environment.ts'
import { killGroup, listeningPorts, spawnTracked, type Exit, type Owner } from '../test/helpers/child-process.ts'

export type { Exit } from '../test/helpers/child-process.ts'

/** bin/skr.js of this checkout. */
export const SKR_BIN = fileURLToPath(new URL('../bin/skr.js', import.meta.url))

/**
 * SKR_BIN, for measuring the TypeScript sources: bin/skr.js runs ./dist instead when it exists (a
 * leftover `npm run build`), and a figure labelled "sources" would then be a stale bundle's.
 * @throws Error naming the directory to remove
 */
export function sourcesBin (): string {
  const dist = fileURLToPath(new URL('../dist', import.meta.url))
  if (existsSync(dist)) throw new Error(`${dist} exists, so bin/skr.js would run it rather than the TypeScript sources: remove it (rm -rf dist) to measure the sources`)
  return SKR_BIN
}

/** How to start skr. */
export interface SpawnSkrOptions {
  /** The skr entry script (default bin/skr.js of this checkout). */
  bin?: string
  /** skr settings on top of env.skrEnv(0), e.g. { SKR_ATTESTATION_TTL_SECONDS: '0' }. */
  overrides?: Record<string, string>
  /** More CA PEMs for skr to trust besides env.extraCa (e.g. a test double's CA). */
  extraCa?: readonly string[]
  /** LogLevel (default warning, skr's own default). */
  logLevel?: string
  /** Give up waiting for /status 200 after this long (default 15 s). */
  startTimeoutMs?: number
  /** /status poll interval while starting (default 5 ms). */
  pollMs?: number
  /** Node.js options before the script (e.g. ['--max-semi-space-size=4']); default none, as the image runs it. */
  nodeArgs?: readonly string[]
  /** Start skr with this open-file limit (soft and hard, through `sh -c 'ulimit -n N'`); default inherited. */
  openFileLimit?: number
  /** A tap test: its teardown kills skr's process group (skr is killed at this process's exit anyway). */
  owner?: Owner
  /**
   * Measure start-up on this port instead of Port 0. Finding a kernel-picked port means reading
   * /proc on every poll, CPU the starting skr then competes with on a 2-core machine, so the bench's
   * start-up figures use a port picked just before (benchPort()); tests keep Port 0.
   */
  port?: number
}

/** A running skr process. */
export interface SkrProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** The HTTP port skr chose (it is started with Port 0), read back from the kernel. */
  readonly port: number
  /** http://127.0.0.1:port */
  readonly base: string
  /** Milliseconds from spawn() to the first /status 200. */
  readonly startupMs: number
  /** Date.now() at spawn(), to place skr's log timestamps on the same clock. */
  readonly spawnedAt: number
  /** Everything skr wrote to stdout and stderr so far (pino JSON lines and any crash text). */
  output (): string
  /** Resident set size now (VmRSS), in bytes; null once the process is gone. */
  rssBytes (): Promise<number | null>
  /** Settles when the process exits. */
  readonly exited: Promise<Exit>
  /** SIGTERM, then SIGKILL to its process group after `graceMs` (default 12 s); resolves with how it ended. */
  stop (graceMs?: number): Promise<Exit>
}

/** VmRSS of a process in bytes (Linux /proc); null when it is gone or /proc is unavailable. */
export async function rssOf (pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]
    return kb === undefined ? null : Number(kb) * 1024
  } catch {
    return null
  }
}

async function statusOk (base: string): Promise<boolean> {
  try {
    const res = await request(`${base}/status`, { headersTimeout: 1_000, bodyTimeout: 1_000, reset: true })
    await res.body.dump()
    return res.statusCode === 200
  } catch {
    return false
  }
}

/**
 * Spawns `node bin/skr.js serve` with the environment's settings (plus SKR_EXTRA_CA_CERTS naming
 * a temp file with env.extraCa) and resolves once /status answers 200.
 * @throws Error with skr's output when it exits or does not answer in time
 */
/**
 * The Dockerfile's `ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=256" MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=32768`, applied by default
 * so the benchmark measures what the image runs; `--node-args=` on the command line overrides the flags.
 */
export const IMAGE_NODE_ARGS: readonly string[] = ['--max-semi-space-size=4', '--max-old-space-size=256']
export const IMAGE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '32768' }

/** A port free a moment ago, for start-up measurements (spawnSkr's `port`); a bench, not a test, may take that race. */
export async function benchPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as AddressInfo
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  return port
}

export async function spawnSkr (env: EmulatedEnvironment, options: SpawnSkrOptions = {}): Promise<SkrProcess> {
  const work = await mkdtemp(join(tmpdir(), 'skr-proc-'))
  const caFile = join(work, 'extra-ca.pem')
  await writeFile(caFile, [...env.extraCa, ...(options.extraCa ?? [])].join('\n'))
  // A clean environment: nothing from the caller's shell (an SKR_* or Azure variable) may leak in.
  const childEnv: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? tmpdir(),
    ...env.skrEnv(0),
    SKR_EXTRA_CA_CERTS: caFile,
    AZURE_POD_IDENTITY_AUTHORITY_HOST: env.imds.url,
    LogLevel: options.logLevel ?? 'warning',
    // The image's runtime settings (Dockerfile ENV), so memory is measured as deployed.
    ...IMAGE_ENV,
    ...options.overrides,
    ...(options.port === undefined ? {} : { Port: String(options.port) })
  }
  const chunks: string[] = []
  const spawnedAt = Date.now()
  const started = performance.now()
  const argv = [...(options.nodeArgs ?? IMAGE_NODE_ARGS), options.bin ?? SKR_BIN, 'serve']
  const limit = options.openFileLimit
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new TypeError('openFileLimit must be a positive integer')
  // Node raises its soft limit to the hard one at start-up, so both are set (sh's ulimit -n does).
  // sh execs node, so the pid (and the process group) is skr's either way.
  const child = limit === undefined
    ? spawnTracked(options.owner ?? null, process.execPath, argv, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawnTracked(options.owner ?? null, '/bin/sh', ['-c', `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, ...argv], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = child.pid
  if (pid === undefined) {
    await rm(work, { recursive: true, force: true })
    throw new Error(`skr could not be started: ${await new Promise<string>(resolve => { child.once('error', err => { resolve(err.message) }) })}`)
  }
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { chunks.push(s) })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { chunks.push(s) })
  const exited = new Promise<Exit>(resolve => {
    // 'close', not 'exit': by then stdout and stderr are read to the end, so output() has the last lines.
    child.once('close', (code, signal) => { resolve({ code, signal }) })
  })
  const cleanup = exited.then(async () => { await rm(work, { recursive: true, force: true }) })
  let gone: Exit | null = null
  void exited.then(e => { gone = e })

  const output = (): string => chunks.join('')
  const kill = async (graceMs: number): Promise<Exit> => {
    if (gone === null) child.kill('SIGTERM')
    // Last resort: the whole group, so nothing skr started is left behind either.
    const timer = setTimeout(() => { killGroup(child) }, graceMs)
    const result = await exited
    clearTimeout(timer)
    killGroup(child)
    await cleanup
    return result
  }

  const timeoutMs = options.startTimeoutMs ?? 15_000
  const deadline = started + timeoutMs
  const pollMs = options.pollMs ?? 5
  let port = 0
  for (;;) {
    if (gone !== null) {
      await cleanup
      throw new Error(`skr exited during start-up (${JSON.stringify(gone)}):\n${output().slice(-4000)}`)
    }
    // Port 0: the kernel picked skr's port(s); the HTTP API is the one whose /status answers 200
    // (a gRPC or metrics listener does not).
    if (options.port !== undefined) {
      if (await statusOk(`http://127.0.0.1:${options.port}`)) port = options.port
    } else {
      for (const candidate of await listeningPorts(pid)) {
        if (await statusOk(`http://127.0.0.1:${candidate}`)) { port = candidate; break }
      }
    }
    if (port !== 0) break
    if (performance.now() > deadline) {
      await kill(2_000)
      throw new Error(`skr did not answer /status within ${timeoutMs} ms:\n${output().slice(-4000)}`)
    }
    await new Promise(resolve => setTimeout(resolve, pollMs))
  }
  const base = `http://127.0.0.1:${port}`
  const startupMs = performance.now() - started

  return {
    child,
    pid,
    port,
    base,
    startupMs,
    spawnedAt,
    output,
    rssBytes: async () => gone === null ? await rssOf(pid) : null,
    exited,
    stop: async (graceMs = 12_000) => await kill(graceMs)
  }
}

/**
 * spawnSkr for measurements: on a port picked just before (see SpawnSkrOptions.port), once more on
 * another if that port was taken meanwhile.
 */
export async function spawnSkrMeasured (env: EmulatedEnvironment, options: Omit<SpawnSkrOptions, 'port'> = {}): Promise<SkrProcess> {
  try {
    return await spawnSkr(env, { ...options, port: await benchPort() })
  } catch (err) {
    if (!(err instanceof Error) || !err.message.includes('EADDRINUSE')) throw err
    return await spawnSkr(env, { ...options, port: await benchPort() })
  }
}
