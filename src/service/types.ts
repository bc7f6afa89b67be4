// The contracts between the transports (HTTP, gRPC, CLI) and the domain. Transports parse
// and validate input, call these, and render results or SidecarErrors; they never talk to
// devices or upstreams themselves. Keeping this seam explicit lets the server be tested with
// in-memory services and the services be tested without a server.
import type { SidecarError } from '../errors.ts'
import type { AttestationBackend } from '../snp/provider.ts'

/** What /attest/combined (and gRPC GetAttestationData) returns, in the reference's encodings. */
export interface CombinedEvidence {
  /** The THIM-style TCBM of the certified chain: 16 hex digits ("7308000000000003"). */
  readonly endorsedTcb: string
  /** base64 of the PEM chain VCEK ‖ ASK ‖ ARK. */
  readonly endorsements: string
  /** base64 of the raw attestation report. */
  readonly evidence: string
  /** base64 of the UVM reference info (COSE_Sign1) as the UVM provided it; '' when absent. */
  readonly uvmEndorsements: string
}

/** Facts /status and /readyz show about attestation. */
export interface AttestationStatus {
  readonly backend: AttestationBackend | null
  readonly simulated: boolean
  /** Human-readable reasons the service is not ready (empty when ready). */
  readonly problems: readonly string[]
}

export interface AttestationService {
  /** A fresh report whose REPORT_DATA is sha256(runtimeData) ‖ 32 zero bytes. */
  rawReport (runtimeData: Buffer, signal?: AbortSignal): Promise<Buffer>
  /** Report + certified chain + UVM endorsements, refreshing the chain when the TCB moved. */
  combined (runtimeData: Buffer, signal?: AbortSignal): Promise<CombinedEvidence>
  /** An MAA token for runtimeData (sent as JSON runtime data). `maaEndpoint` is already normalised (host[:port]). */
  maaToken (maaEndpoint: string, runtimeData: Buffer, signal?: AbortSignal): Promise<string>
  status (): Promise<AttestationStatus>
}

export interface KeyReleaseRequest {
  /** Normalised host[:port]. */
  readonly maaEndpoint: string
  /** Normalised host[:port]. */
  readonly akvEndpoint: string
  /** Key name, or name/version. */
  readonly kid: string
  /** A caller-supplied AAD token, used instead of the sidecar's identity. */
  readonly accessToken?: string
}

/** Several keys of one vault released under one attestation (skr's batch extension of POST /key/release). */
export type KeyReleaseBatchRequest = Omit<KeyReleaseRequest, 'kid'> & {
  /** Key names or name/version ids, distinct; at most the service's batch limit (16 by default). */
  readonly kids: readonly string[]
}

/** Per-kid outcomes of a batch: every requested kid is in exactly one of the two records. */
export interface KeyReleaseBatchResult {
  /** Released keys by kid, as JWK objects. */
  readonly keys: Readonly<Record<string, Record<string, unknown>>>
  /** Failures by kid, each with its own code and status. */
  readonly errors: Readonly<Record<string, SidecarError>>
}

export interface KeyReleaseService {
  /** Releases the key and returns it as a JWK object (the transport stringifies it for the reference shape). */
  release (request: KeyReleaseRequest, signal?: AbortSignal): Promise<Record<string, unknown>>
  /**
   * Releases several keys under one attestation, concurrently; per-kid failures are results, not
   * rejections (it rejects only when nothing could be tried: a bad batch, attestation failed, or
   * `signal` fired). Optional: services without it answer a batch request with 400.
   */
  releaseMany? (request: KeyReleaseBatchRequest, signal?: AbortSignal): Promise<KeyReleaseBatchResult>
}
