// The settings of how skr attests and releases, all read from the environment, in the order of
// the README's table: the attestation device and the simulator, trusted roots, MAA and AKV, the
// request deadline and load limits, the UVM security context and the Azure identity.
// ./settings.ts lists these after ./serving-settings.ts.
import { NONE, type Setting } from './setting.ts'

/** The attestation and release settings, in order. */
export const RELEASE_SETTINGS = [
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
