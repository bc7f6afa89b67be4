// The emulated Azure side (MAA, IMDS, AKV on loopback) plus a real sidecar with the pino lines it
// writes captured for secret scans; the fault-injection and overload tests drive it over HTTP.
// Two ways to run the sidecar:
// - 'in-process' (default): startSidecar from loadConfig, exactly as `skr serve` builds it.
//   @azure/identity reads AZURE_POD_IDENTITY_AUTHORITY_HOST from the process environment, once
//   per process, so every sidecar of one test file must share one EmulatedEnvironment (pass `env`).
//   Load shedding looks at the RSS of the whole process, and under tap the test process alone is
//   ~430 MB (its TypeScript loader), over the default SKR_MAX_RSS_BYTES once a sidecar or two
//   share it (every request then answers 503 ERR_OVERLOADED, reason rssBytes).
// - 'process': `node bin/skr.js serve` in a child (bench/skr-process.ts), with its own RSS and
//   its own @azure/identity, as in a deployment. It listens on port 0 (read back from the kernel)
//   in a process group of its own, killed at the owner's teardown or when this process ends.
// In both modes load shedding is off (TEST_SHEDDING_OFF, ./shedding.ts) unless the overrides turn
// it on.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { Agent, request } from 'undici'
import { loadConfig, type LogLevel } from '../../src/config/config.ts'
import { startEmulatedEnvironment, type EmulatedEnvironment, type EmulatedEnvironmentOptions } from '../../src/emulator/environment.ts'
import { loggerOptions } from '../../src/log.ts'
import { startSidecar, type Sidecar } from '../../src/app/sidecar.ts'
import { spawnSkr, type SkrProcess } from '../../bench/skr-process.ts'
import type { Owner } from './child-process.ts'
import { TEST_SHEDDING_OFF } from './shedding.ts'

export { TEST_SHEDDING_OFF } from './shedding.ts'

/**
 * Where the tests cache the emulated AMD chain (shared with test/e2e/key-release.test.ts). One
 * directory for every test file and every run: the cache is written to a temp file and linked or
 * renamed into place (loadOrCreateEmulatedChain), so readers never see half a file and concurrent
 * runs that both generate a chain each end up using a complete one.
 */
export const TEST_CHAIN_CACHE = join(tmpdir(), 'skr-test-emulated-chain')

/** Anything that looks like a compact JWT/JWS (a header starting `{"`, then a payload). */
export const JWT_SHAPE = /eyJ[\w-]{10,}\.[\w-]{10,}/

/** How to start the sidecar; every field is optional. */
export interface SidecarEnvOptions {
  /** Reuse a running environment (it is then not closed by close()). */
  env?: EmulatedEnvironment
  /** skr settings on top of env.skrEnv(0), e.g. { SKR_REQUEST_TIMEOUT_MS: '2000' }. */
  overrides?: Record<string, string>
  /** Captured log level (default debug: the most text to scan for secrets). */
  logLevel?: LogLevel
  /** More CA PEMs for skr to trust (e.g. the CA of a test double standing in for AKV). */
  extraCa?: string[]
  /** Where the sidecar runs (default in-process; see the top of this file). */
  mode?: 'in-process' | 'process'
  /** 'process' mode: the child's open-file limit (default inherited). */
  openFileLimit?: number
  /** 'process' mode: a tap test whose teardown kills the child's process group (close() stops it anyway). */
  owner?: Owner
}

/** The answer of one API call: status, headers and the raw body text (parse it yourself). */
export interface ApiAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  /** The body as JSON, or null when it is not JSON. */
  json: Record<string, unknown> | null
}

/** A running sidecar and its environment. */
export interface SidecarEnv {
  env: EmulatedEnvironment
  /** http://127.0.0.1:port of the sidecar. */
  base: string
  /** The in-process sidecar (null in 'process' mode). */
  sidecar: Sidecar | null
  /** The child process (null in 'in-process' mode). */
  process: SkrProcess | null
  /** Every line the sidecar wrote so far (pino JSON), in order. */
  readonly logs: string[]
  /** POST a JSON body (or GET when body is undefined) to the sidecar; never throws for HTTP statuses. */
  call: (path: string, body?: unknown, options?: { timeoutMs?: number }) => Promise<ApiAnswer>
  /** POST /key/release for `kid` at this environment's MAA and AKV (or `akvEndpoint`). */
  release: (kid: string, akvEndpoint?: string) => Promise<ApiAnswer>
  close: () => Promise<void>
}

/** A key the emulated vault will release to this environment: its name and secret `k` (for log scans). */
export interface ReleasableKey {
  name: string
  /** base64url of the octet key: must never appear in a log or an error. */
  k: string
}

/** Creates an exportable oct-HSM key bound to the environment's release policy. */
export async function createReleasableKey (env: EmulatedEnvironment, name: string): Promise<ReleasableKey> {
  const data = Buffer.from(JSON.stringify(env.releasePolicy())).toString('base64url')
  const key = await env.akv.store.createKey(name, { kty: 'oct-HSM', size: 256, exportable: true, releasePolicy: { data, immutable: false } })
  if (!Buffer.isBuffer(key.material)) throw new TypeError('createReleasableKey: expected octet key material')
  return { name, k: key.material.toString('base64url') }
}

/** Starts the emulated environment that the tests share (chain cached under TEST_CHAIN_CACHE). */
export async function startTestEnvironment (options: Omit<EmulatedEnvironmentOptions, 'cacheDir'> = {}): Promise<EmulatedEnvironment> {
  const env = await startEmulatedEnvironment({ ...options, cacheDir: TEST_CHAIN_CACHE })
  process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = env.imds.url
  return env
}

/** An HTTP client for one sidecar: JSON in, ApiAnswer out. */
function apiClient (base: string, agent: Agent): SidecarEnv['call'] {
  return async (path, body, callOptions = {}) => {
    // A bound for a busy machine (skr's own deadline answers first), not a timing check.
    const timeout = callOptions.timeoutMs ?? 120_000
    const res = await request(`${base}${path}`, {
      dispatcher: agent,
      method: body === undefined ? 'GET' : 'POST',
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      headersTimeout: timeout,
      bodyTimeout: timeout
    })
    const text = await res.body.text()
    let json: Record<string, unknown> | null = null
    try {
      const parsed: unknown = JSON.parse(text)
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>
    } catch {
      // not JSON: json stays null and the test sees `text`
    }
    return { status: res.statusCode, headers: res.headers, text, json }
  }
}

interface Running { base: string, sidecar: Sidecar | null, process: SkrProcess | null, logs: () => string[], close: () => Promise<void> }

async function startInProcess (env: EmulatedEnvironment, options: SidecarEnvOptions): Promise<Running> {
  const logs: string[] = []
  process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = env.imds.url
  const config = loadConfig([], { ...env.skrEnv(0), LogLevel: options.logLevel ?? 'debug', ...TEST_SHEDDING_OFF, ...options.overrides })
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { logs.push(chunk.toString('utf8')); done() } })
  const log = pino(loggerOptions(config.logLevel), sink)
  const sidecar = await startSidecar(config, { log, extraCa: [...env.extraCa, ...(options.extraCa ?? [])] })
  const base = sidecar.addresses.find(a => a.startsWith('http://127.0.0.1:'))
  if (base === undefined) {
    await sidecar.close()
    throw new Error(`sidecar has no 127.0.0.1 listener: ${sidecar.addresses.join(', ')}`)
  }
  return { base, sidecar, process: null, logs: () => logs, close: async () => { await sidecar.close() } }
}

async function startChild (env: EmulatedEnvironment, options: SidecarEnvOptions): Promise<Running> {
  const child = await spawnSkr(env, {
    logLevel: options.logLevel ?? 'debug',
    overrides: { ...TEST_SHEDDING_OFF, ...options.overrides },
    // Start-up on a busy machine (two test runs at once) can take many seconds: a bound, not a check.
    startTimeoutMs: 120_000,
    ...(options.owner === undefined ? {} : { owner: options.owner }),
    ...(options.extraCa === undefined ? {} : { extraCa: options.extraCa }),
    ...(options.openFileLimit === undefined ? {} : { openFileLimit: options.openFileLimit })
  })
  return {
    base: child.base,
    sidecar: null,
    process: child,
    logs: () => child.output().split('\n').filter(line => line !== ''),
    close: async () => {
      const exit = await child.stop()
      if (exit.code !== 0) throw new Error(`skr exited ${JSON.stringify(exit)}:\n${child.output().slice(-2000)}`)
    }
  }
}

/** Starts a sidecar (and an environment unless one is given). */
export async function startSidecarEnv (options: SidecarEnvOptions = {}): Promise<SidecarEnv> {
  const owned = options.env === undefined
  const env = options.env ?? await startTestEnvironment()
  const agent = new Agent({ connections: 256, keepAliveTimeout: 2_000 })
  let running: Running
  try {
    running = options.mode === 'process' ? await startChild(env, options) : await startInProcess(env, options)
  } catch (err) {
    await agent.close()
    if (owned) await env.close()
    throw err
  }
  const call = apiClient(running.base, agent)
  let closing: Promise<void> | null = null
  return {
    env,
    base: running.base,
    sidecar: running.sidecar,
    process: running.process,
    get logs () { return running.logs() },
    call,
    release: async (kid, akvEndpoint = env.akv.endpoint) =>
      await call('/key/release', { maa_endpoint: env.maa.endpoint, akv_endpoint: akvEndpoint, kid }),
    close: async () => {
      closing ??= (async () => {
        await agent.close()
        try {
          await running.close()
        } finally {
          if (owned) await env.close()
        }
      })()
      await closing
    }
  }
}

/** Where `secrets` (or anything JWT-shaped) occur in `texts`: a list of findings, empty when clean. */
export function findSecrets (texts: readonly string[], secrets: readonly string[]): string[] {
  const found: string[] = []
  texts.forEach((text, i) => {
    if (JWT_SHAPE.test(text)) found.push(`text ${i}: JWT-shaped string`)
    for (const secret of secrets) {
      if (secret !== '' && text.includes(secret)) found.push(`text ${i}: contains a secret (${secret.length} chars)`)
    }
  })
  return found
}

/** Polls `check` every `everyMs` until it is true; false when `withinMs` passes first. */
export async function waitFor (check: () => boolean, withinMs: number, everyMs = 10): Promise<boolean> {
  const until = Date.now() + withinMs
  while (!check()) {
    if (Date.now() > until) return false
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
  return true
}
