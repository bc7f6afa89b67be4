// The settings of how skr is started and reached, in the order of the README's table: the
// reference sidecar's flags, skr's own serve flags (attestation backend, bind address, allowed
// hosts, server names) and its listeners (connection limits, Unix socket, gRPC and metrics ports).
// Every setting with a flag is here. ./settings.ts lists these, then ./release-settings.ts.
import { NONE, type Setting } from './setting.ts'

/** The serving settings, in order. */
export const SERVING_SETTINGS = [
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
  }
] as const satisfies readonly Setting[]
