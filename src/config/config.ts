// Configuration: read once at start-up from flags and the environment, validated, defaulted
// in one place, then frozen. This module is the only reader of process.env for skr's own
// settings (the Azure SDK reads its standard AZURE_* variables itself; they are documented
// in the README). A bad value stops start-up with ERR_CONFIG_INVALID naming the key, never
// the value (SkrSideCarArgs can carry client ids users consider sensitive). Every flag and
// variable is declared in config/settings.ts, which the README's configuration table is
// generated from: add a setting there first.
//
// The egress-proxy variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY and their lower-case forms) are
// parsed here too, from the same environment, into `proxy`, so every upstream the sidecar builds
// routes by the configuration it was started with. They are standard conventions, not skr
// settings: settings.ts does not declare them, and a value that cannot be used is not a
// configuration error (Go's transport fails only the calls that proxy would carry; so does skr's,
// see http/upstream.ts).
import { ConfigInvalid } from '../errors.ts'
import { FlagError, parseFlags, type FlagSpecs } from './flags.ts'
import { parseSkrSideCarArgs, type AzureInformation } from './sidecar-args.ts'
import { envName, flagName, type SettingKey } from './settings.ts'
import { serveFlags } from './serve-flags.ts'
import { boolSetting, nonEmpty, parseCount, parsePort, parsePositive } from './setting-parsers.ts'
import type { AttestationMode, Config, ServerType } from './config-types.ts'
import { parseProxyEnv } from '../http/proxy.ts'
import { DEFAULT_ALLOWED_HOSTS, parseAllowedHosts } from '../http/allowed-hosts.ts'
import { canonicalHost, HostSyntaxError } from '../http/host-name.ts'
import { isIP } from 'node:net'

export type { AttestationMode, Config, ListenerConfig, ServerType } from './config-types.ts'
export type { AzureInformation } from './sidecar-args.ts'
import type { LogLevel } from '../log.ts'
export type { LogLevel }

/** The listener defaults (ms). */
export const DEFAULT_LISTENER_TIMEOUTS = Object.freeze({
  idleConnectionTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  receiveTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000
})

/** The default deadline of one API request: a hung upstream answers 504 by then (SKR_REQUEST_TIMEOUT_MS). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000

/** The serve command's flags: the reference's Go flags plus skr's own (kebab-case aliases), from config/settings.ts. */
export const SERVE_FLAGS: FlagSpecs = serveFlags()

const LOGRUS_LEVELS: Readonly<Record<string, LogLevel>> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  warn: 'warn',
  error: 'error',
  fatal: 'fatal',
  panic: 'fatal',
  silent: 'silent'
}

const ATTESTATION_MODES: readonly AttestationMode[] = ['auto', 'tsm', 'sev-guest', 'sev', 'simulated']

type Env = Readonly<Record<string, string | undefined>>

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/** True for names and literals that only reach this machine. */
export function isLoopbackHost (host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h)
}

/**
 * Builds the frozen serve configuration.
 * @param argv flags after the command name (reference Go-style or kebab-case)
 * @param env the process environment
 */
export function loadConfig (argv: readonly string[], env: Env): Config {
  let flags: Readonly<Record<string, string>>
  let positionals: readonly string[]
  try {
    const parsed = parseFlags(argv, SERVE_FLAGS)
    flags = parsed.values
    positionals = parsed.positionals
  } catch (err) {
    if (err instanceof FlagError) throw new ConfigInvalid(err.message)
    throw err
  }
  const problems: string[] = []
  if (positionals.length > 2) problems.push(`unexpected arguments after the first two (the reference's skr.sh takes SkrSideCarArgs and Port)`)

  // Every flag and variable name comes from config/settings.ts (the README table is rendered from it).
  const rawEnv = (key: SettingKey): string | undefined => env[envName(key)]
  const fromEnv = (key: SettingKey): string | null => nonEmpty(rawEnv(key))
  const fromFlag = (key: SettingKey): string | undefined => flags[flagName(key)]
  const setting = (key: SettingKey): string | null => fromFlag(key) ?? fromEnv(key)

  // Precedence: flag, then environment, then the reference skr.sh positional arguments ($1, $2).
  const sidecarArgs = setting('sidecarArgs') ?? nonEmpty(positionals[0])
  let azure: AzureInformation = parseSkrSideCarArgs(null)
  try {
    azure = parseSkrSideCarArgs(sidecarArgs)
  } catch (err) {
    problems.push(err instanceof ConfigInvalid ? err.message : 'SkrSideCarArgs is invalid')
  }

  const port = parsePort(setting('port') ?? nonEmpty(positionals[1]) ?? '8080', envName('port'), problems)
  const grpcPort = parsePort(setting('grpcPort') ?? '50000', envName('grpcPort'), problems)
  const metricsListener = parseMetricsListener(setting('metricsPort'), setting('metricsHost'), problems)

  const levelRaw = (setting('logLevel') ?? 'warning').toLowerCase()
  const logLevel = LOGRUS_LEVELS[levelRaw]
  if (logLevel === undefined) problems.push('LogLevel must be one of trace, debug, info, warning, error, fatal, panic')

  const serverTypeRaw = (setting('serverType') ?? 'http').toLowerCase()
  if (!['http', 'grpc', 'both'].includes(serverTypeRaw)) problems.push('ServerType must be http, grpc or both')
  const metricsPort = metricsListener?.port ?? 0
  if (metricsPort !== 0 && (metricsPort === port || (serverTypeRaw === 'both' && metricsPort === grpcPort))) {
    problems.push(`${envName('metricsPort')} must differ from the API's port (${envName('port')}, and ${envName('grpcPort')} with ServerType=both)`)
  }

  const attestationRaw = (setting('attestation') ?? 'auto').toLowerCase()
  if (!(ATTESTATION_MODES as readonly string[]).includes(attestationRaw)) problems.push('SKR_ATTESTATION must be auto, tsm, sev-guest, sev or simulated')

  const host = setting('host') ?? 'localhost'
  const allowNonLoopback = boolSetting(fromFlag('allowNonLoopback'), rawEnv('allowNonLoopback'), envName('allowNonLoopback'), problems)
  if (!isLoopbackHost(host) && !allowNonLoopback) {
    problems.push('SKR_HOST is not a loopback address; the API must not leave the pod unless SKR_ALLOW_NON_LOOPBACK=1 is set')
  }

  const fingerprints = (fromEnv('trustedArkFingerprints') ?? '').split(',').map(s => s.trim()).filter(Boolean)
  for (const fp of fingerprints) {
    if (!/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/.test(fp)) problems.push('SKR_TRUSTED_ARK_FINGERPRINTS must be comma-separated SHA-256 fingerprints')
  }

  const serverNames: string[] = []
  ;(setting('serverNames') ?? '').split(',').map(n => n.trim()).forEach((name, i) => {
    if (name === '') return
    try {
      serverNames.push(canonicalHost(name).host)
    } catch (err) {
      if (!(err instanceof HostSyntaxError)) throw err
      problems.push(`${envName('serverNames')} entry ${i + 1} is not a host name: it has ${err.kind}`)
    }
  })
  const timeout = (key: 'idleConnectionTimeoutMs' | 'headersTimeoutMs' | 'receiveTimeoutMs' | 'keepAliveTimeoutMs'): number =>
    parseCount(fromEnv(key), envName(key), DEFAULT_LISTENER_TIMEOUTS[key], 3_600_000, problems)
  const listener = {
    serverNames,
    idleConnectionTimeoutMs: timeout('idleConnectionTimeoutMs'),
    headersTimeoutMs: timeout('headersTimeoutMs'),
    receiveTimeoutMs: timeout('receiveTimeoutMs'),
    keepAliveTimeoutMs: timeout('keepAliveTimeoutMs'),
    maxConnections: fromEnv('maxConnections') === null ? null : parseCount(fromEnv('maxConnections'), envName('maxConnections'), 0, 1_000_000, problems)
  }
  for (const key of ['idleConnectionTimeoutMs', 'headersTimeoutMs', 'receiveTimeoutMs', 'keepAliveTimeoutMs'] as const) {
    if (listener[key] < 1) problems.push(`${envName(key)} must be at least 1 ms`)
  }
  // Node refuses a headers timeout longer than the whole-request timeout.
  if (listener.headersTimeoutMs > listener.receiveTimeoutMs) problems.push(`${envName('headersTimeoutMs')} must not exceed ${envName('receiveTimeoutMs')}`)
  if (listener.maxConnections !== null && listener.maxConnections < 1) problems.push(`${envName('maxConnections')} must be at least 1`)

  let allowedHosts = DEFAULT_ALLOWED_HOSTS
  try {
    allowedHosts = parseAllowedHosts(setting('allowedHosts'))
  } catch (err) {
    if (!(err instanceof RangeError)) throw err
    problems.push(`${envName('allowedHosts')} ${err.message}`)
  }

  const requestTimeoutMs = parsePositive(fromEnv('requestTimeoutMs'), envName('requestTimeoutMs'), DEFAULT_REQUEST_TIMEOUT_MS, problems)
  const attestationTtlSeconds = parseCount(fromEnv('attestationTtlSeconds'), envName('attestationTtlSeconds'), 300, 28_800, problems)
  const keyPoolSize = parseCount(fromEnv('keyPoolSize'), envName('keyPoolSize'), 4, 64, problems)
  const maxInFlight = parseCount(fromEnv('maxInFlight'), envName('maxInFlight'), 256, 100_000, problems)
  const maxInFlightPerDestination = parseCount(fromEnv('maxInFlightPerDestination'), envName('maxInFlightPerDestination'), 64, 100_000, problems)
  if (maxInFlightPerDestination < 1) problems.push(`${envName('maxInFlightPerDestination')} must be at least 1`)
  const maxEventLoopDelayMs = parseCount(fromEnv('maxEventLoopDelayMs'), envName('maxEventLoopDelayMs'), 1000, 600_000, problems)
  const maxHeapUsedBytes = parseCount(fromEnv('maxHeapUsedBytes'), envName('maxHeapUsedBytes'), 0, 2 ** 40, problems)
  const maxRssBytes = parseCount(fromEnv('maxRssBytes'), envName('maxRssBytes'), 512 * 1024 * 1024, 2 ** 40, problems)
  const shutdownGraceMs = parseCount(fromEnv('shutdownGraceMs'), envName('shutdownGraceMs'), 10_000, 600_000, problems)
  const verifyToken = fromEnv('maaVerifyToken') === null ? true : boolSetting(undefined, rawEnv('maaVerifyToken'), envName('maaVerifyToken'), problems)
  const releaseEnc = fromEnv('releaseEnc')
  if (releaseEnc !== null && !['CKM_RSA_AES_KEY_WRAP', 'RSA_AES_KEY_WRAP_256', 'RSA_AES_KEY_WRAP_384'].includes(releaseEnc)) {
    problems.push('SKR_RELEASE_ENC must be CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384')
  }
  const allowTestingMismatchedTcb = boolSetting(fromFlag('allowTestingMismatchedTcb'), rawEnv('allowTestingMismatchedTcb'), envName('allowTestingMismatchedTcb'), problems)

  if (problems.length > 0) {
    throw new ConfigInvalid(`invalid configuration: ${problems.join('; ')}`, { details: { problems: problems.length } })
  }

  return deepFreeze<Config>({
    port,
    host,
    allowNonLoopback,
    unixSocket: setting('unixSocket'),
    listener,
    serverType: serverTypeRaw as ServerType,
    grpcPort,
    metricsListener,
    logLevel: logLevel as LogLevel,
    logFile: setting('logFile'),
    attestation: attestationRaw as AttestationMode,
    tsmRoot: fromEnv('tsmRoot') ?? '/sys/kernel/config/tsm/report',
    azure,
    allowTestingMismatchedTcb,
    simulated: {
      cacheDir: fromEnv('simulatedCacheDir'),
      vcekKeyPem: fromEnv('simulatedVcekKey'),
      certChainPem: fromEnv('simulatedCertChain')
    },
    trustedArkFingerprints: fingerprints.map(normaliseFingerprint),
    extraCaFile: fromEnv('extraCaFile'),
    maa: { apiVersion: fromEnv('maaApiVersion') ?? '2020-10-01', verifyToken },
    akv: { apiVersion: fromEnv('akvApiVersion') ?? '7.4', enc: releaseEnc as Config['akv']['enc'] },
    allowedHosts,
    requestTimeoutMs,
    proxy: parseProxyEnv(env),
    performance: { attestationTtlSeconds, keyPoolSize, maxInFlight, maxInFlightPerDestination, maxEventLoopDelayMs, maxHeapUsedBytes, maxRssBytes, shutdownGraceMs },
    env: {
      uvmSecurityContextDir: fromEnv('uvmSecurityContextDir'),
      uvmSecurityPolicy: fromEnv('uvmSecurityPolicy'),
      uvmHostAmdCertificate: fromEnv('uvmHostAmdCertificate'),
      uvmReferenceInfo: fromEnv('uvmReferenceInfo'),
      azureClientId: fromEnv('azureClientId'),
      azureTenantId: fromEnv('azureTenantId'),
      azureFederatedTokenFile: fromEnv('azureFederatedTokenFile'),
      azureAuthorityHost: fromEnv('azureAuthorityHost')
    }
  })
}

/**
 * The metrics listener's port and bind address, or null when SKR_METRICS_PORT is unset. Its port
 * clashing with the API's is checked by loadConfig, which knows the server type.
 */
function parseMetricsListener (portRaw: string | null, hostRaw: string | null, problems: string[]): Config['metricsListener'] {
  if (portRaw === null) {
    if (hostRaw !== null) problems.push(`${envName('metricsHost')} is set but ${envName('metricsPort')} is not: the metrics listener is off`)
    return null
  }
  const port = parsePort(portRaw, envName('metricsPort'), problems)
  // Bound by address, like the API: a name would be resolved, and could bind somewhere unexpected.
  const host = (hostRaw ?? '0.0.0.0').trim()
  if (host !== 'localhost' && isIP(host.replace(/^\[|\]$/g, '')) === 0) problems.push(`${envName('metricsHost')} must be an IP address (0.0.0.0, ::, the pod IP) or localhost`)
  return { port, host }
}

/** Normalises a SHA-256 fingerprint to X509Certificate.fingerprint256's form (AA:BB:...). */
export function normaliseFingerprint (fp: string): string {
  const hex = fp.replace(/:/g, '').toUpperCase()
  return hex.match(/../g)?.join(':') ?? hex
}
