// `skr emulate`: the emulated Azure (MAA, IMDS and AKV on loopback) and a real sidecar with
// simulated attestation, kept running until Ctrl-C so a developer can try the API by hand. It
// prints one ready-to-paste curl line per route, with this run's MAA and vault endpoints (their
// ports change every run) and keys the emulated vault holds: one it releases, one it refuses.
// The same wiring as `skr demo` (which runs the calls itself and exits).
import { pino } from 'pino'
import { defaultEmulatedCacheDir } from '../simulated/emulated-chain-cache.ts'
import { loadConfig } from '../config/config.ts'
import { startEmulatedEnvironment, type EmulatedEnvironment } from '../emulator/environment.ts'
import { loggerOptions, redactChildBindings, type Logger } from '../log.ts'
import { startSidecar, type Sidecar } from '../app/sidecar.ts'
import { importDemoKeys, sheddingLimits } from './demo.ts'
import { FlagError, formatFlags, parseFlags } from '../config/flags.ts'

export const summary = 'run the emulated Azure and a sidecar until Ctrl-C, printing a curl line for each route'

const EMULATE_FLAGS = {
  port: { type: 'string', help: 'the sidecar\'s port (default 8080, the reference\'s; 0 picks a free one)' },
  loglevel: { type: 'string', aliases: ['log-level'], help: 'the sidecar\'s log level; its JSON lines go to stderr (default warning; info shows each request)' },
  json: { type: 'boolean', help: 'print one JSON line (addresses, endpoints, keys, requests with their curl lines) instead of the text' },
  'uvm-layout': { type: 'string', help: 'layout of the UVM endorsement in the security context: cwt-claims (with a receipt, as ACI ships since 2026; default) or json-payload (older)' }
} as const

/** The emulated vault's keys (created by importDemoKeys). */
export const RELEASED_KEY = 'demo-key'
export const REFUSED_KEY = 'other-key'

/** One request a developer can paste. */
export interface TryRequest {
  readonly method: 'GET' | 'POST'
  readonly path: string
  readonly body?: Readonly<Record<string, string>>
  /** What it shows, and the status to expect. */
  readonly note: string
  readonly status: number
  readonly curl: string
}

// Single-quoted for POSIX shells: the bodies are JSON of host:port strings, key names and base64,
// never a single quote.
function curlLine (base: string, method: 'GET' | 'POST', path: string, body?: Readonly<Record<string, string>>): string {
  // -d sends a POST with curl's form content type, which skr accepts as JSON (as the reference does).
  return body === undefined ? `curl -s ${base}${path}` : `curl -s ${base}${path} -d '${JSON.stringify(body)}'`
}

/** The requests `skr emulate` suggests, one per route (two for /key/release: released and refused). */
export function tryRequests (base: string, maaEndpoint: string, akvEndpoint: string): TryRequest[] {
  // JSON text: MAA evaluates runtime data as JSON (the x-ms-runtime claim) and refuses anything else.
  const runtimeData = Buffer.from(JSON.stringify({ nonce: 'skr emulate' })).toString('base64')
  const rows: Array<Omit<TryRequest, 'curl'>> = [
    { method: 'GET', path: '/status', note: 'is the sidecar up, and which attestation backend (simulated)', status: 200 },
    { method: 'POST', path: '/attest/raw', body: { runtime_data: runtimeData }, note: 'an SNP report (hex); REPORT_DATA = sha256(runtime_data)', status: 200 },
    { method: 'POST', path: '/attest/combined', body: { runtime_data: runtimeData }, note: 'the report, the VCEK chain and the UVM endorsement, as MAA gets them', status: 200 },
    { method: 'POST', path: '/attest/maa', body: { maa_endpoint: maaEndpoint, runtime_data: runtimeData }, note: 'an MAA token (JWT) from the emulated MAA', status: 200 },
    { method: 'POST', path: '/key/release', body: { maa_endpoint: maaEndpoint, akv_endpoint: akvEndpoint, kid: RELEASED_KEY }, note: `${RELEASED_KEY} is released: its policy names this container group's HOST_DATA`, status: 200 },
    { method: 'POST', path: '/key/release', body: { maa_endpoint: maaEndpoint, akv_endpoint: akvEndpoint, kid: REFUSED_KEY }, note: `${REFUSED_KEY} is refused (403 ERR_KEY_RELEASE_DENIED): its policy names another container group`, status: 403 },
    { method: 'GET', path: '/metrics', note: 'Prometheus metrics', status: 200 }
  ]
  return rows.map(r => ({ ...r, curl: curlLine(base, r.method, r.path, r.body) }))
}

function parsePort (raw: string | undefined): number | null {
  if (raw === undefined) return 8080
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) return null
  return Number(raw)
}

function text (base: string, env: EmulatedEnvironment, requests: readonly TryRequest[]): string {
  return [
    'skr emulate: a sidecar with SIMULATED attestation, against an emulated Azure on loopback',
    '',
    `  sidecar       ${base}`,
    `  maa_endpoint  ${env.maa.endpoint}  (emulated Microsoft Azure Attestation)`,
    `  akv_endpoint  ${env.akv.endpoint}  (emulated Key Vault, holding ${RELEASED_KEY} and ${REFUSED_KEY})`,
    `  HOST_DATA     ${env.hostData}`,
    '',
    'Try it (the emulators\' ports change every run):',
    '',
    ...requests.flatMap(r => [`# ${r.method} ${r.path}: ${r.note}`, r.curl, '']),
    'Ctrl-C stops the sidecar and the emulators.'
  ].join('\n') + '\n'
}

/** The run's stop request: the first SIGINT or SIGTERM. */
interface StopRequest {
  readonly requested: boolean
  readonly signalled: Promise<void>
  /** Gives the signals back to Node's default handling. */
  dispose (): void
}

/**
 * Listens for SIGINT and SIGTERM for the whole run: the first one asks the run to stop, and any
 * later one is ignored, so that a second Ctrl-C while the emulators shut down cannot kill the
 * process half way (and leave their temporary files behind).
 */
function stopRequest (): StopRequest {
  let requested = false
  let resolve = (): void => {}
  const signalled = new Promise<void>(done => { resolve = done })
  const onSignal = (): void => {
    if (requested) return
    requested = true
    resolve()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return {
    get requested () { return requested },
    signalled,
    dispose () {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
    }
  }
}

/** Runs until SIGINT/SIGTERM; resolves to the exit code. */
export async function run (argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const { stdout, stderr } = process
  if (argv.includes('--help') || argv.includes('-h')) {
    stdout.write(`usage: skr emulate [--port N] [--log-level LEVEL] [--uvm-layout L] [--json]\n\n${summary}\n\n${formatFlags(EMULATE_FLAGS)}\n`)
    return 0
  }
  let flags: Readonly<Record<string, string>>
  try {
    const parsed = parseFlags(argv, EMULATE_FLAGS)
    if (parsed.positionals.length > 0) throw new FlagError(`unexpected argument ${parsed.positionals[0] ?? ''}`)
    flags = parsed.values
  } catch (err) {
    if (!(err instanceof FlagError)) throw err
    stderr.write(`skr emulate: ${err.message}\n`)
    return 2
  }
  const port = parsePort(flags.port)
  if (port === null) {
    stderr.write('skr emulate: --port must be a TCP port number 0..65535\n')
    return 2
  }
  const layout = flags['uvm-layout'] ?? 'cwt-claims'
  if (layout !== 'cwt-claims' && layout !== 'json-payload') {
    stderr.write('skr emulate: --uvm-layout must be cwt-claims or json-payload\n')
    return 2
  }

  // Listening from here on: Ctrl-C while the emulators start still closes them and removes their
  // files, and stops the start-up at the next step.
  const stop = stopRequest()
  // The chain cache the simulated `skr serve` uses, so a first run's chain serves both.
  const cacheDir = env.SKR_SIMULATED_CACHE_DIR !== undefined && env.SKR_SIMULATED_CACHE_DIR !== '' ? env.SKR_SIMULATED_CACHE_DIR : defaultEmulatedCacheDir(env)
  let emulated
  try {
    emulated = await startEmulatedEnvironment({ cacheDir, uvmEndorsementLayout: layout, progress: (message) => { stderr.write(`skr emulate: ${message}\n`) } })
  } catch (err) {
    stop.dispose()
    throw err
  }
  // @azure/identity reads the IMDS redirect from the process environment itself; put back after.
  const identityHost = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
  let log: Logger | null = null
  let sidecar: Sidecar | null = null
  try {
    if (stop.requested) return 0
    await importDemoKeys(emulated)
    if (stop.requested) return 0
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = emulated.imds.url
    // Only the emulator's settings: a shell's own Azure or skr variables (a workload identity, a
    // proxy, a real vault's allow-list) must not point this sidecar anywhere else.
    const config = loadConfig([], { ...emulated.skrEnv(port), ...sheddingLimits(env), LogLevel: flags.loglevel ?? 'warning' })
    // The sidecar's JSON log lines go to stderr: stdout is for the curl lines (or the --json line).
    log = redactChildBindings(pino(loggerOptions(config.logLevel), pino.destination({ dest: 2, sync: false })))
    sidecar = await startSidecar(config, { log, extraCa: [...emulated.extraCa] })
    if (stop.requested) return 0
    const base = sidecar.addresses[0] as string
    const requests = tryRequests(base, emulated.maa.endpoint, emulated.akv.endpoint)
    if (flags.json === 'true') {
      stdout.write(JSON.stringify({
        sidecar: base,
        maa_endpoint: emulated.maa.endpoint,
        akv_endpoint: emulated.akv.endpoint,
        imds: emulated.imds.url,
        hostData: emulated.hostData,
        keys: { released: RELEASED_KEY, refused: REFUSED_KEY },
        requests
      }) + '\n')
    } else {
      stdout.write(text(base, emulated, requests))
    }
    await stop.signalled
    return 0
  } finally {
    await sidecar?.close()
    log?.flush()
    await emulated.close()
    if (identityHost === undefined) delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
    else process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = identityHost
    stop.dispose()
  }
}
