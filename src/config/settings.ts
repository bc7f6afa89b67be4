// Every setting skr reads at start-up, declared once: its key, the serve flag (with aliases) and
// the environment variable that set it, the default as users see it, and what it means. The serve
// command's flags (SERVE_FLAGS in config.ts) are derived from this list, loadConfig reads the
// environment names from it, and the README's configuration table is rendered from it by
// scripts/gen-config-doc.mjs (test/unit/config/settings.test.ts fails when the README is stale, or
// when loadConfig reads a variable this list does not declare).
//
// `default` and `description` are Markdown (a `|` needs no escaping; the renderer does it).
// `help` is the flag's plain-text line for `skr serve --help`; the environment variable and the
// default are appended to it.
import type { FlagSpec, FlagSpecs } from './flags.ts'

/** One setting: at most one flag (with aliases) and one environment variable. */
export interface Setting {
  /** Stable name, e.g. 'port' (not shown to users). */
  readonly key: string
  /** The canonical flag name without dashes (a key of SERVE_FLAGS). */
  readonly flag?: string
  /** Other spellings of the flag, without dashes. */
  readonly aliases?: readonly string[]
  /** The flag's value type (default 'string'). */
  readonly type?: 'string' | 'boolean'
  /** The reference sidecar's flags are shown Go-style (`-port`); skr's own as `--host`. */
  readonly reference?: boolean
  /** The flag's one-line --help text (without env and default). */
  readonly help?: string
  /** The environment variable, exactly as loadConfig reads it. */
  readonly env?: string
  /** The default as shown to users, with units (Markdown); '–' when there is none. */
  readonly default: string
  /** What it does (Markdown). */
  readonly description: string
}

const NONE = '–'

export const SETTINGS = [
  {
    key: 'port',
    flag: 'port',
    reference: true,
    help: 'TCP port to listen on',
    env: 'Port',
    default: '`8080`',
    description: 'TCP port'
  },
  {
    key: 'sidecarArgs',
    flag: 'base64',
    aliases: ['skr-sidecar-args'],
    reference: true,
    help: 'base64 JSON with certcache, identity and maaconfig',
    env: 'SkrSideCarArgs',
    default: NONE,
    description: 'base64 (or raw) JSON `{"certcache": {"endpoint_type": "AMD"|"AzCache"|"LocalTHIM", "endpoint", "tee_type", "api_version", "client_id"}, "identity": {"client_id"}, "maaconfig": {"user_agent"}}`; unknown keys are refused'
  },
  {
    key: 'logLevel',
    flag: 'loglevel',
    aliases: ['log-level'],
    reference: true,
    help: 'trace, debug, info, warning, error, fatal, panic',
    env: 'LogLevel',
    default: '`warning`',
    description: '`trace`, `debug`, `info`, `warning`, `error`, `fatal`, `panic` (mapped to pino levels)'
  },
  {
    key: 'logFile',
    flag: 'logfile',
    aliases: ['log-file'],
    reference: true,
    help: 'append logs to this file instead of stdout',
    env: 'LogFile',
    default: 'stdout',
    description: 'append JSON logs to this file'
  },
  {
    key: 'serverType',
    flag: 'server_type',
    aliases: ['server-type'],
    reference: true,
    help: 'http, grpc or both',
    env: 'ServerType',
    default: '`http`',
    description: '`http`, `grpc` (the gRPC key provider on `Port`), or `both` (gRPC on `SKR_GRPC_PORT`)'
  },
  {
    key: 'allowTestingMismatchedTcb',
    flag: 'allowTestingMismatchedTCB',
    aliases: ['allow-testing-mismatched-tcb'],
    type: 'boolean',
    reference: true,
    help: 'TESTING ONLY: start with a TCBM that cannot match',
    env: 'AllowTestingMismatchedTCB',
    default: '`false`',
    description: 'TESTING ONLY: start with a TCBM that cannot match, to exercise the refresh path'
  },
  {
    key: 'attestation',
    flag: 'attestation',
    help: 'auto, tsm, sev-guest, sev or simulated',
    env: 'SKR_ATTESTATION',
    default: '`auto`',
    description: '`auto` (configfs-tsm, then `/dev/sev-guest`, then `/dev/sev`), `tsm`, `sev-guest`, `sev`, `simulated`'
  },
  {
    key: 'host',
    flag: 'host',
    help: 'address to bind; a non-loopback address needs --allow-non-loopback',
    env: 'SKR_HOST',
    default: '`localhost`',
    description: 'bind address; a non-loopback address also needs `--allow-non-loopback` / `SKR_ALLOW_NON_LOOPBACK=1` and is logged loudly'
  },
  {
    key: 'allowNonLoopback',
    flag: 'allow-non-loopback',
    type: 'boolean',
    help: 'DANGEROUS: allow binding a non-loopback address',
    env: 'SKR_ALLOW_NON_LOOPBACK',
    default: '`false`',
    description: 'DANGEROUS: allow `--host` to be a non-loopback address (the API then leaves the pod)'
  },
  {
    key: 'allowedHosts',
    flag: 'allowed-hosts',
    help: 'hosts callers may name as maa_endpoint/akv_endpoint: host, host:port, .suffix, or * for any',
    env: 'SKR_ALLOWED_HOSTS',
    default: 'Azure Key Vault, Managed HSM and Attestation hosts',
    description: 'comma-separated hosts a caller may name as `maa_endpoint` / `akv_endpoint` (HTTP and gRPC): `host` (any port), `host:port`, `.suffix` (any name under it) or IP literals; `*` allows any host, as the reference does (logged as a warning). Unset: the Key Vault and Managed HSM (as `akv_endpoint`) and Attestation (as `maa_endpoint`) DNS suffixes of the Azure public, China and US Government clouds, on port 443 ([docs/security.md](docs/security.md#egress-allow-list)). A refused host answers 403 `ERR_ENDPOINT_NOT_ALLOWED` before anything is sent'
  },
  {
    key: 'serverNames',
    flag: 'server-names',
    help: 'host names (Host header) the API answers to besides loopback ones, for a non-loopback listener',
    env: 'SKR_SERVER_NAMES',
    default: NONE,
    description: 'comma-separated host names the API accepts in the `Host` header besides `localhost` and loopback addresses (for a non-loopback listener, e.g. a Service name; IP-literal hosts are accepted there anyway). Any other `Host` gets 403 `ERR_HOST_NOT_ALLOWED`: this is what stops DNS rebinding'
  },
  {
    key: 'idleConnectionTimeoutMs',
    env: 'SKR_IDLE_CONNECTION_TIMEOUT_MS',
    default: '`5000` ms',
    description: 'a connection that sends nothing at all is closed after this'
  },
  {
    key: 'headersTimeoutMs',
    env: 'SKR_HEADERS_TIMEOUT_MS',
    default: '`10000` ms',
    description: 'a request\'s headers must have arrived this long after the connection opened (or after its previous request): trickled headers get 408 `ERR_REQUEST_TIMEOUT`'
  },
  {
    key: 'receiveTimeoutMs',
    env: 'SKR_RECEIVE_TIMEOUT_MS',
    default: '`30000` ms',
    description: 'a whole request (headers and body) must have arrived within this: a never-ending body gets 408 `ERR_REQUEST_TIMEOUT`'
  },
  {
    key: 'keepAliveTimeoutMs',
    env: 'SKR_KEEP_ALIVE_TIMEOUT_MS',
    default: '`5000` ms',
    description: 'an idle keep-alive connection is closed after this'
  },
  {
    key: 'maxConnections',
    env: 'SKR_MAX_CONNECTIONS',
    default: 'from the open-file limit',
    description: 'open API connections (all listeners together) past which new ones are closed at once, while the open ones keep being served; the default is the process\'s open-file limit less the descriptors skr needs for everything else (its upstream connections, files, the device), so it can never run out of descriptors'
  },
  {
    key: 'unixSocket',
    flag: 'unix-socket',
    help: 'also listen on this Unix socket',
    env: 'SKR_UNIX_SOCKET',
    default: NONE,
    description: 'also serve on this Unix socket (mode 0660)'
  },
  {
    key: 'grpcPort',
    flag: 'grpc-port',
    help: 'gRPC port when --server-type both',
    env: 'SKR_GRPC_PORT',
    default: '`50000`',
    description: 'gRPC port when `ServerType=both`'
  },
  {
    key: 'metricsPort',
    flag: 'metrics-port',
    help: 'also serve GET /metrics, /livez and /readyz, and nothing else, on this port (for the cluster)',
    env: 'SKR_METRICS_PORT',
    default: 'off',
    description: 'also serve `GET /metrics`, `/livez` and `/readyz`, and nothing else (every other path is 404), on this TCP port at `SKR_METRICS_HOST`: for Prometheus scrapes and kubelet probes from the cluster, while the key API stays on loopback. Must differ from `Port` (and `SKR_GRPC_PORT` with `ServerType=both`)'
  },
  {
    key: 'metricsHost',
    flag: 'metrics-host',
    help: 'bind address of --metrics-port',
    env: 'SKR_METRICS_HOST',
    default: '`0.0.0.0`',
    description: 'bind address (an IP literal or `localhost`) of `SKR_METRICS_PORT`: by default every IPv4 address of the pod, so Prometheus can reach it at the pod IP; `::` for IPv6 as well, `127.0.0.1` to keep it in the pod'
  },
  {
    key: 'tsmRoot',
    env: 'SKR_TSM_ROOT',
    default: '`/sys/kernel/config/tsm/report`',
    description: 'configfs-tsm root'
  },
  {
    key: 'simulatedCacheDir',
    env: 'SKR_SIMULATED_CACHE_DIR',
    default: '`$XDG_CACHE_HOME/skr`, else `~/.cache/skr`',
    description: 'where the emulated AMD chain is cached'
  },
  {
    key: 'simulatedVcekKey',
    env: 'SKR_SIMULATED_VCEK_KEY',
    default: 'generated',
    description: 'PEM VCEK private key for the simulator (set together with `SKR_SIMULATED_CERT_CHAIN`)'
  },
  {
    key: 'simulatedCertChain',
    env: 'SKR_SIMULATED_CERT_CHAIN',
    default: 'generated',
    description: 'PEM VCEK+ASK+ARK for the simulator (set together with `SKR_SIMULATED_VCEK_KEY`)'
  },
  {
    key: 'trustedArkFingerprints',
    env: 'SKR_TRUSTED_ARK_FINGERPRINTS',
    default: 'AMD\'s',
    description: 'extra SHA-256 fingerprints of ARKs to trust (comma-separated)'
  },
  {
    key: 'extraCaFile',
    env: 'SKR_EXTRA_CA_CERTS',
    default: NONE,
    description: 'PEM file of extra roots for upstream TLS and the release-signer chain (`NODE_EXTRA_CA_CERTS` is honoured too)'
  },
  {
    key: 'maaApiVersion',
    env: 'SKR_MAA_API_VERSION',
    default: '`2020-10-01`',
    description: 'MAA api-version'
  },
  {
    key: 'maaVerifyToken',
    env: 'SKR_MAA_VERIFY_TOKEN',
    default: '`true`',
    description: 'verify the MAA token (signature via `/certs`, issuer, lifetime, report-data binding)'
  },
  {
    key: 'akvApiVersion',
    env: 'SKR_AKV_API_VERSION',
    default: '`7.4`',
    description: 'AKV/mHSM release api-version'
  },
  {
    key: 'releaseEnc',
    env: 'SKR_RELEASE_ENC',
    default: 'omitted',
    description: '`CKM_RSA_AES_KEY_WRAP`, `RSA_AES_KEY_WRAP_256` or `RSA_AES_KEY_WRAP_384`; omitted, the vault uses `CKM_RSA_AES_KEY_WRAP` (as with the reference)'
  },
  {
    key: 'requestTimeoutMs',
    env: 'SKR_REQUEST_TIMEOUT_MS',
    default: '`15000` ms',
    description: 'deadline for one API request (HTTP and gRPC): a hung upstream ends in 504 `ERR_UPSTREAM_TIMEOUT` by then'
  },
  {
    key: 'attestationTtlSeconds',
    env: 'SKR_ATTESTATION_TTL_SECONDS',
    default: '`300` s',
    description: 'how long one wrapping key + MAA token serve releases per MAA endpoint (never past the token\'s expiry minus 60 s; at most 28800); `0` = a new attestation per release, as the reference ([docs/security.md](docs/security.md))'
  },
  {
    key: 'keyPoolSize',
    env: 'SKR_KEY_POOL_SIZE',
    default: '`4`',
    description: 'RSA-2048 wrapping keys generated ahead in the background (at most 64); `0` = on demand'
  },
  {
    key: 'maxInFlight',
    env: 'SKR_MAX_INFLIGHT',
    default: '`256`',
    description: 'key releases + MAA attestations in flight before 503 `ERR_OVERLOADED` with `Retry-After`'
  },
  {
    key: 'maxInFlightPerDestination',
    env: 'SKR_MAX_INFLIGHT_PER_DESTINATION',
    default: '`64`',
    description: 'key releases in flight for one vault host (MAA attestations: for one MAA host) before 503 `ERR_OVERLOADED`: a vault that hangs holds only this share, and releases from other vaults keep being admitted'
  },
  {
    key: 'maxEventLoopDelayMs',
    env: 'SKR_MAX_EVENT_LOOP_DELAY_MS',
    default: '`1000` ms',
    description: 'load shedding: event-loop delay past which requests get 503 `ERR_OVERLOADED` (`0` = off)'
  },
  {
    key: 'maxRssBytes',
    env: 'SKR_MAX_RSS_BYTES',
    default: '512 MiB',
    description: 'load shedding: resident set size (bytes) past which requests get 503 `ERR_OVERLOADED` (`0` = off)'
  },
  {
    key: 'maxHeapUsedBytes',
    env: 'SKR_MAX_HEAP_USED_BYTES',
    default: 'off',
    description: 'load shedding: JavaScript heap in use (bytes) past which requests get 503 `ERR_OVERLOADED` (`0` = off)'
  },
  {
    key: 'shutdownGraceMs',
    env: 'SKR_SHUTDOWN_GRACE_MS',
    default: '`10000` ms',
    description: 'how long in-flight requests may finish after SIGTERM/SIGINT'
  },
  {
    key: 'uvmSecurityContextDir',
    env: 'UVM_SECURITY_CONTEXT_DIR',
    default: 'the first `/security-context-*`, else `/opt/confidential-containers/share/kata-containers`',
    description: 'directory of the UVM security context (files `security-policy-base64`, `host-amd-cert-base64`, `reference-info-base64`)'
  },
  {
    key: 'uvmSecurityPolicy',
    env: 'UVM_SECURITY_POLICY',
    default: NONE,
    description: 'the security policy (base64), when the security context directory has none'
  },
  {
    key: 'uvmHostAmdCertificate',
    env: 'UVM_HOST_AMD_CERTIFICATE',
    default: NONE,
    description: 'the host\'s THIM certificates (base64 JSON), when the security context directory has none'
  },
  {
    key: 'uvmReferenceInfo',
    env: 'UVM_REFERENCE_INFO',
    default: NONE,
    description: 'the UVM reference info (base64 COSE_Sign1 endorsement), when the security context directory has none'
  },
  {
    key: 'azureClientId',
    env: 'AZURE_CLIENT_ID',
    default: 'system-assigned',
    description: 'client id of the managed identity (when `identity.client_id` is not set), or of the workload identity'
  },
  {
    key: 'azureTenantId',
    env: 'AZURE_TENANT_ID',
    default: NONE,
    description: 'workload identity: the tenant (with `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`)'
  },
  {
    key: 'azureFederatedTokenFile',
    env: 'AZURE_FEDERATED_TOKEN_FILE',
    default: NONE,
    description: 'workload identity: the projected service-account token exchanged at Entra ID'
  },
  {
    key: 'azureAuthorityHost',
    env: 'AZURE_AUTHORITY_HOST',
    default: '`https://login.microsoftonline.com`',
    description: 'Entra ID authority for workload identity (sovereign clouds, test doubles); https only'
  }
] as const satisfies readonly Setting[]

/** The key of a declared setting. */
export type SettingKey = typeof SETTINGS[number]['key']

/** Settings by key. */
export const SETTING_BY_KEY: Readonly<Record<SettingKey, Setting>> = Object.freeze(
  Object.fromEntries(SETTINGS.map((s) => [s.key, s])) as Record<SettingKey, Setting>
)

/** The environment variable of a setting (every declared setting has one). */
export function envName (key: SettingKey): string {
  const name = SETTING_BY_KEY[key].env
  if (name === undefined) throw new TypeError(`setting ${key} has no environment variable`)
  return name
}

/** The canonical flag name of a setting (a key of SERVE_FLAGS). */
export function flagName (key: SettingKey): string {
  const name = SETTING_BY_KEY[key].flag
  if (name === undefined) throw new TypeError(`setting ${key} has no flag`)
  return name
}

/** Markdown → the plain text of --help: backticks dropped. */
function plain (markdown: string): string {
  return markdown.replace(/`/g, '')
}

/** The serve command's flags, from the settings that have one. */
export function serveFlags (settings: readonly Setting[] = SETTINGS): FlagSpecs {
  const specs: Record<string, FlagSpec> = {}
  for (const s of settings) {
    if (s.flag === undefined) continue
    const facts = [
      ...(s.env === undefined ? [] : [`env ${s.env}`]),
      ...(s.default === NONE ? [] : [`default ${plain(s.default)}`])
    ]
    const help = `${s.help ?? plain(s.description)}${facts.length === 0 ? '' : ` (${facts.join('; ')})`}`
    specs[s.flag] = { type: s.type ?? 'string', ...(s.aliases === undefined ? {} : { aliases: s.aliases }), help }
  }
  return specs
}

/** A cell's Markdown: pipes escaped, never a line break. */
function cell (markdown: string): string {
  return markdown.replace(/\r?\n/g, ' ').replace(/(?<!\\)\|/g, '\\|')
}

function flagCell (s: Setting): string {
  if (s.flag === undefined) return ''
  const dash = (name: string): string => (s.reference === true && name === s.flag ? `-${name}` : `--${name}`)
  return [s.flag, ...(s.aliases ?? [])].map((n) => `\`${dash(n)}\``).join(', ')
}

/** The README's configuration table: flag | environment | default | meaning, one row per setting. */
export function renderSettingsTable (settings: readonly Setting[] = SETTINGS): string {
  const row = (cells: readonly string[]): string => `|${cells.map((c) => (c === '' ? ' ' : ` ${c} `)).join('|')}|`
  return [
    row(['flag', 'environment', 'default', 'meaning']),
    row(['---', '---', '---', '---']),
    ...settings.map((s) => row([flagCell(s), s.env === undefined ? '' : `\`${s.env}\``, cell(s.default), cell(s.description)]))
  ].join('\n') + '\n'
}

/** The markers around the generated table in README.md. */
export const SETTINGS_BEGIN = '<!-- settings:begin -->'
export const SETTINGS_END = '<!-- settings:end -->'

/** `readme` with the text between the markers replaced by `table`; throws when the markers are missing. */
export function replaceSettingsBlock (readme: string, table: string = renderSettingsTable()): string {
  const begin = readme.indexOf(SETTINGS_BEGIN)
  const end = readme.indexOf(SETTINGS_END)
  if (begin === -1 || end === -1 || end < begin) throw new Error(`README.md has no ${SETTINGS_BEGIN} … ${SETTINGS_END} block`)
  return `${readme.slice(0, begin + SETTINGS_BEGIN.length)}\n\n${table}\n${readme.slice(end)}`
}
