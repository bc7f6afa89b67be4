// `skr demo` (`npm run demo`): a full secure key release on one laptop. It starts the embedded
// MAA, IMDS (token + THIM) and AKV emulators on loopback, imports two keys whose release
// policies are bound to the simulated container group's HOST_DATA (one matching, one not), runs
// the real sidecar with simulated attestation, and calls it exactly as an app container would.
import { createHash } from 'node:crypto'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { loadConfig } from '../config/config.ts'
import { pino } from 'pino'
import { loggerOptions, redactChildBindings, type Logger } from '../log.ts'
import { FlagError, parseFlags } from '../config/flags.ts'
import { startSidecar } from '../app/sidecar.ts'
import { startEmulatedEnvironment, type EmulatedEnvironment } from '../emulator/environment.ts'
import { defaultEmulatedCacheDir } from '../simulated/emulated-chain-cache.ts'

export const summary = 'run a full key release against the embedded emulators (simulated attestation)'

const DEMO_FLAGS = {
  loglevel: { type: 'string', aliases: ['log-level'], help: 'skr log level during the demo (default warning)' },
  json: { type: 'boolean', help: 'print one JSON document instead of the walk-through' }
} as const

interface CallResult { status: number, body: Record<string, unknown> }

async function call (base: string, path: string, body: unknown): Promise<CallResult> {
  const res = await request(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    headersTimeout: 30_000,
    bodyTimeout: 30_000
  })
  return { status: res.statusCode, body: await res.body.json() as Record<string, unknown> }
}

function line (out: string[], text = ''): void {
  out.push(text)
}

/** Creates demo-key (released to the emulated container group) and other-key (bound to another one); also used by `skr emulate`. */
export async function importDemoKeys (env: EmulatedEnvironment): Promise<void> {
  const encode = (policy: Record<string, unknown>): string => Buffer.from(JSON.stringify(policy)).toString('base64url')
  await env.akv.store.createKey('demo-key', {
    kty: 'oct-HSM', size: 256, exportable: true, releasePolicy: { data: encode(env.releasePolicy()), immutable: false }
  })
  // Bound to another container group's policy: the vault must refuse to release it to us.
  const otherHostData = createHash('sha256').update('package policy\n# some other container group\n').digest('hex')
  await env.akv.store.createKey('other-key', {
    kty: 'RSA-HSM', size: 2048, exportable: true, releasePolicy: { data: encode(env.releasePolicy(otherHostData)), immutable: false }
  })
}

const SHEDDING_SETTINGS = ['SKR_MAX_EVENT_LOOP_DELAY_MS', 'SKR_MAX_RSS_BYTES', 'SKR_MAX_HEAP_USED_BYTES'] as const

/**
 * The load-shedding limits the caller's environment sets, for the embedded sidecar of `skr demo`
 * and `skr emulate` (which take no other skr setting from it: those could point it elsewhere).
 * The emulators share its event loop, so on a busy machine (a test run) it can shed its own demo.
 */
export function sheddingLimits (env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const limits: Record<string, string> = {}
  for (const name of SHEDDING_SETTINGS) {
    const value = env[name]
    if (value !== undefined) limits[name] = value
  }
  return limits
}

/** Runs the walk-through; exit 0 when the matching key was released and the other refused. */
export async function run (argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: skr demo [--log-level LEVEL] [--json]\n\n${summary}\n`)
    return 0
  }
  let flags: Readonly<Record<string, string>>
  try {
    flags = parseFlags(argv, DEMO_FLAGS).values
  } catch (err) {
    if (!(err instanceof FlagError)) throw err
    process.stderr.write(`skr demo: ${err.message}\n`)
    return 2
  }
  const started = Date.now()
  const out: string[] = []
  // Progress goes to stderr: stdout is the walk-through, or the --json document.
  const emulated = await startEmulatedEnvironment({ cacheDir: defaultEmulatedCacheDir(env), progress: (message) => { process.stderr.write(`skr demo: ${message}\n`) } })
  let log: Logger | null = null
  let sidecar: Awaited<ReturnType<typeof startSidecar>> | null = null
  try {
    await importDemoKeys(emulated)
    // @azure/identity reads the IMDS redirect from the process environment itself.
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = emulated.imds.url
    const config = loadConfig([], { ...emulated.skrEnv(0), ...sheddingLimits(env), LogLevel: flags.loglevel ?? 'warning' })
    // The sidecar's log lines go to stderr: stdout is the walk-through (or the --json document).
    log = redactChildBindings(pino(loggerOptions(config.logLevel), pino.destination({ dest: 2, sync: false })))
    sidecar = await startSidecar(config, { log, extraCa: [...emulated.extraCa] })
    const base = sidecar.addresses[0] as string

    const runtimeData = Buffer.from(JSON.stringify({ demo: 'skr', at: new Date().toISOString() })).toString('base64')
    const attest = await call(base, '/attest/maa', { maa_endpoint: emulated.maa.endpoint, runtime_data: runtimeData })
    const claims = typeof attest.body.token === 'string' ? decodeJwt(attest.body.token) : {}
    const released = await call(base, '/key/release', { maa_endpoint: emulated.maa.endpoint, akv_endpoint: emulated.akv.endpoint, kid: 'demo-key' })
    const refused = await call(base, '/key/release', { maa_endpoint: emulated.maa.endpoint, akv_endpoint: emulated.akv.endpoint, kid: 'other-key' })
    const jwk = typeof released.body.key === 'string' ? JSON.parse(released.body.key) as Record<string, unknown> : null
    const ok = released.status === 200 && jwk !== null && refused.status === 403

    const shownClaims = Object.fromEntries(Object.entries(claims).filter(([k]) =>
      ['iss', 'x-ms-attestation-type', 'x-ms-sevsnpvm-hostdata', 'x-ms-sevsnpvm-launchmeasurement', 'x-ms-sevsnpvm-is-debuggable',
        'x-ms-sevsnpvm-vmpl', 'x-ms-sevsnpvm-snpfw-svn', 'x-ms-sevsnpvm-microcode-svn', 'x-ms-runtime'].includes(k)))

    if (flags.json === 'true') {
      process.stdout.write(JSON.stringify({ ok, sidecar: base, hostData: emulated.hostData, claims: shownClaims, released: { status: released.status, jwk }, refused, seconds: (Date.now() - started) / 1000 }, null, 2) + '\n')
      return ok ? 0 : 1
    }
    line(out, 'skr demo: secure key release against embedded emulators (attestation is SIMULATED)')
    line(out)
    line(out, `  sidecar   ${base}  (simulated SEV-SNP, emulated AMD chain ARK ${emulated.chain.arkFingerprint.slice(0, 23)}...)`)
    line(out, `  MAA       ${emulated.maa.url}`)
    line(out, `  AKV       ${emulated.akv.url}`)
    line(out, `  IMDS      ${emulated.imds.url}  (managed identity tokens, THIM certificates)`)
    line(out, `  HOST_DATA ${emulated.hostData}  (sha256 of the container group's security policy)`)
    line(out)
    line(out, '1. POST /attest/maa -> MAA token claims:')
    for (const [k, v] of Object.entries(shownClaims)) line(out, `     ${k}: ${JSON.stringify(v)}`)
    line(out)
    line(out, `2. POST /key/release {"kid":"demo-key"} -> ${released.status}`)
    line(out, '   policy: authority = the MAA issuer, x-ms-sevsnpvm-hostdata = HOST_DATA, not debuggable, VMPL 0')
    line(out, `   released JWK: ${jwk === null ? JSON.stringify(released.body) : JSON.stringify(jwk)}`)
    line(out)
    line(out, `3. POST /key/release {"kid":"other-key"} (policy bound to another container group) -> ${refused.status}`)
    line(out, `   ${JSON.stringify(refused.body)}`)
    line(out)
    line(out, ok ? `demo OK in ${((Date.now() - started) / 1000).toFixed(1)} s` : 'demo FAILED: see the answers above')
    process.stdout.write(out.join('\n') + '\n')
    return ok ? 0 : 1
  } finally {
    await sidecar?.close()
    log?.flush()
    await emulated.close()
  }
}
