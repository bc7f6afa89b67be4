// The shape of skr's configuration: the frozen Config that loadConfig (./config.ts) builds once
// at start-up, and the listener settings within it. Import these from ./config.ts.
import type { AllowedHosts } from '../http/allowed-hosts.ts'
import type { ProxySettings } from '../http/proxy.ts'
import type { LogLevel } from '../log.ts'
import type { AzureInformation } from './sidecar-args.ts'

export type AttestationMode = 'auto' | 'tsm' | 'sev-guest' | 'sev' | 'simulated'
export type ServerType = 'http' | 'grpc' | 'both'

export interface Config {
  readonly port: number
  readonly host: string
  readonly allowNonLoopback: boolean
  readonly unixSocket: string | null
  /** Limits and names of the HTTP listeners (issue 11: idle sockets, slow clients, DNS rebinding). */
  readonly listener: ListenerConfig
  readonly serverType: ServerType
  /** The gRPC port when serverType is 'both' (with 'grpc' alone, `port` is used, as in the reference). */
  readonly grpcPort: number
  /**
   * The metrics listener (SKR_METRICS_PORT, SKR_METRICS_HOST): GET /metrics, /livez and /readyz
   * only, on an address the cluster can reach (server/metrics-listener.ts); null when off.
   */
  readonly metricsListener: { readonly port: number; readonly host: string } | null
  readonly logLevel: LogLevel
  readonly logFile: string | null
  readonly attestation: AttestationMode
  readonly tsmRoot: string
  readonly azure: AzureInformation
  /** Test only: start with a TCBM that cannot match, to exercise the refresh path (reference flag). */
  readonly allowTestingMismatchedTcb: boolean
  readonly simulated: {
    readonly cacheDir: string | null
    readonly vcekKeyPem: string | null
    readonly certChainPem: string | null
  }
  /** Extra ARK SHA-256 fingerprints to trust besides AMD's (the emulated ARK is added in simulated mode). */
  readonly trustedArkFingerprints: readonly string[]
  /** PEM file with extra roots for upstream TLS and release-signer chains (besides NODE_EXTRA_CA_CERTS). */
  readonly extraCaFile: string | null
  readonly maa: { readonly apiVersion: string; readonly verifyToken: boolean }
  /** apiVersion of the release call; enc = the key wrapping asked of the vault (null: omit it, as the reference does, so the vault uses CKM_RSA_AES_KEY_WRAP). */
  readonly akv: { readonly apiVersion: string; readonly enc: 'CKM_RSA_AES_KEY_WRAP' | 'RSA_AES_KEY_WRAP_256' | 'RSA_AES_KEY_WRAP_384' | null }
  /**
   * The hosts a caller may name as an MAA or AKV/mHSM endpoint (SKR_ALLOWED_HOSTS; default: the
   * Azure Key Vault, Managed HSM and Attestation suffixes). Checked before any work.
   */
  readonly allowedHosts: AllowedHosts
  /** Deadline for one whole API request (attestation, release), in milliseconds. */
  readonly requestTimeoutMs: number
  /**
   * Egress proxy settings from HTTPS_PROXY/https_proxy, HTTP_PROXY/http_proxy and NO_PROXY/no_proxy
   * (http/proxy.ts parseProxyEnv, Go's rules); passed to every Upstream built for serving. Printing
   * it shows proxy origins only, never credentials.
   */
  readonly proxy: ProxySettings
  /** Performance and load settings (issue 6); see docs/security.md for the reuse trade-off. */
  readonly performance: {
    /** How long one wrapping key + MAA token serves releases per MAA endpoint; 0 = the reference's per-release attestation. */
    readonly attestationTtlSeconds: number
    /** RSA-2048 wrapping keys kept pre-generated; 0 = generate on demand. */
    readonly keyPoolSize: number
    /** Releases/attestations in flight before skr answers 503 ERR_OVERLOADED with Retry-After. */
    readonly maxInFlight: number
    /** Releases in flight for one vault host (attestations: one MAA host) before 503 ERR_OVERLOADED. */
    readonly maxInFlightPerDestination: number
    /** Event-loop delay (ms) past which requests are shed with 503; 0 = off. */
    readonly maxEventLoopDelayMs: number
    /** Heap used (bytes) past which requests are shed; 0 = off. */
    readonly maxHeapUsedBytes: number
    /** RSS (bytes) past which requests are shed; 0 = off. */
    readonly maxRssBytes: number
    /** How long in-flight requests may run after SIGTERM before they are cut off (ms). */
    readonly shutdownGraceMs: number
  }
  /** Raw environment facts other modules need, captured here so nobody else reads process.env. */
  readonly env: {
    readonly uvmSecurityContextDir: string | null
    readonly uvmSecurityPolicy: string | null
    readonly uvmHostAmdCertificate: string | null
    readonly uvmReferenceInfo: string | null
    readonly azureClientId: string | null
    readonly azureTenantId: string | null
    readonly azureFederatedTokenFile: string | null
    readonly azureAuthorityHost: string | null
  }
}

/** How the HTTP listeners treat connections and which Host names they answer to. */
export interface ListenerConfig {
  /** Canonical host names accepted in the Host header besides loopback ones (SKR_SERVER_NAMES). */
  readonly serverNames: readonly string[]
  /** A connection that sends nothing is closed after this (ms). */
  readonly idleConnectionTimeoutMs: number
  /** Headers must arrive within this of the connection (or the previous request) (ms). */
  readonly headersTimeoutMs: number
  /** A whole request, headers and body, must arrive within this (ms). */
  readonly receiveTimeoutMs: number
  /** An idle keep-alive connection is closed after this (ms). */
  readonly keepAliveTimeoutMs: number
  /** Open connections over all listeners; null: derived from the open-file limit at start-up. */
  readonly maxConnections: number | null
}
