// skr-sidecar-client: a small typed client for app containers that sit beside the sidecar. It
// speaks the reference API (POST /key/release, /attest/maa, /attest/raw, /attest/combined, GET
// /status), so it works against skr and against the reference Go sidecar alike. It imports node
// built-ins only (no dependencies: an app container that installs it gets kilobytes), never logs,
// and hands released keys back as node:crypto KeyObjects.
import type { JsonWebKey, KeyObject } from 'node:crypto'
import { CLIENT_ERROR_CODES, SkrClientError } from './errors.ts'
import { parseReleasedKey, type ReleasedKey } from './jwk.ts'
import { requestJson, type FetchFn, type TransportSettings } from './transport.ts'
import { unixSocketFetch } from './unix-fetch.ts'

export { SIDECAR_ERROR_CODES, isSidecarErrorCode, type SidecarErrorCode } from './codes.ts'
export { CLIENT_ERROR_CODES, SkrClientError, isSkrClientError, type SkrClientErrorOptions } from './errors.ts'
export { jwkToKeyObject, type ReleasedKey } from './jwk.ts'
export type { JsonWebKey, KeyObject }

/** Options of createSkrClient. Every field is optional. */
export interface SkrClientOptions {
  /** The sidecar's address; default `http://localhost:8080` (the reference's port). */
  baseUrl?: string
  /** Dial this Unix socket (skr `--unix-socket`) instead of TCP; baseUrl's host is then ignored. Not with `fetch`. */
  socketPath?: string
  /** Budget of one attempt (headers and body), in ms. Default 20000: above skr's 15 s request deadline (SKR_REQUEST_TIMEOUT_MS), so its own 504 arrives first. */
  timeoutMs?: number
  /** Extra attempts after a 503/504 or an unreachable sidecar; default 3. */
  retries?: number
  /** First backoff step in ms (doubled per retry, jittered); default 250. */
  backoffMs?: number
  /** Upper bound on any wait between attempts, Retry-After included, in ms; default 10000. */
  maxRetryDelayMs?: number
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the call (and any wait between retries) with ERR_CLIENT_ABORTED. */
  signal?: AbortSignal
}

/** Arguments of releaseKey; endpoints are host names as the reference takes them (`myvault.vault.azure.net`). */
export interface ReleaseKeyRequest extends CallOptions {
  maaEndpoint: string
  akvEndpoint: string
  /** Key name, or `name/version`. */
  kid: string
  /** An AAD token for the vault; default: the sidecar's own identity. */
  accessToken?: string
}

/** Arguments of attest. */
export interface AttestRequest extends CallOptions {
  maaEndpoint: string
  /** Bytes to bind into the report (their SHA-256 becomes REPORT_DATA); a string is taken as UTF-8 text. The client base64-encodes it. */
  runtimeData: Uint8Array | string
}

/** POST /attest/combined, with the reference's fields in camelCase (each base64, as sent). */
export interface CombinedEvidence {
  endorsedTcb: string
  endorsements: string
  evidence: string
  uvmEndorsements: string
}

/** GET /status: `message` is "Status OK"; skr adds its attestation backend (the reference does not). */
export interface SkrStatus {
  message: string
  attestation?: { backend: string | null; simulated: boolean }
  warning?: string
}

/** The client. Every method throws SkrClientError on failure. */
export interface SkrClient {
  /** Releases a key from AKV / managed HSM through the sidecar. */
  releaseKey (request: ReleaseKeyRequest): Promise<ReleasedKey>
  /** An MAA token over a fresh report bound to runtimeData. */
  attest (request: AttestRequest): Promise<string>
  /** The raw SNP attestation report (1184 bytes) bound to runtimeData. */
  rawReport (runtimeData: Uint8Array | string, options?: CallOptions): Promise<Buffer>
  /** Report, VCEK chain and UVM endorsements in one answer. */
  combined (runtimeData: Uint8Array | string, options?: CallOptions): Promise<CombinedEvidence>
  /** GET /status. */
  status (options?: CallOptions): Promise<SkrStatus>
  /** Kept for compatibility: the client holds nothing of its own (connections belong to Node's global agents). */
  close (): Promise<void>
}

const DEFAULTS = { baseUrl: 'http://localhost:8080', timeoutMs: 20_000, retries: 3, backoffMs: 250, maxRetryDelayMs: 10_000 }

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function nonNegativeInteger (value: number | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min) throw new TypeError(`createSkrClient: ${name} must be an integer >= ${min}`)
  return value
}

function requireString (value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`)
  return value
}

function encodeRuntimeData (data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data instanceof Uint8Array ? Buffer.from(data) : null
  if (bytes === null) throw new TypeError('runtimeData must be a Uint8Array or a string')
  if (bytes.length === 0) throw new TypeError('runtimeData must not be empty')
  return bytes.toString('base64')
}

function invalidAnswer (path: string, what: string): SkrClientError {
  return new SkrClientError(`skr answered 200 to ${path} without ${what}`, { code: CLIENT_ERROR_CODES.responseInvalid, status: 200, requestId: null })
}

function stringField (body: unknown, field: string, path: string): string {
  const value = isRecord(body) ? body[field] : undefined
  if (typeof value !== 'string') throw invalidAnswer(path, `a string "${field}"`)
  return value
}

function normaliseBaseUrl (raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new TypeError('createSkrClient: baseUrl must be an absolute http(s) URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('createSkrClient: baseUrl must be an http(s) URL')
  return url.href.replace(/\/+$/, '')
}

/** Creates a client for the sidecar in the same pod or container group. */
export function createSkrClient (options: SkrClientOptions = {}): SkrClient {
  const socketPath = options.socketPath
  if (socketPath !== undefined && (typeof socketPath !== 'string' || socketPath === '')) throw new TypeError('createSkrClient: socketPath must be a non-empty string')
  const userFetch = options.fetch as FetchFn | undefined
  if (socketPath !== undefined && userFetch !== undefined) throw new TypeError('createSkrClient: socketPath and fetch cannot be combined (the global fetch cannot dial a Unix socket)')
  // A Unix socket is dialled through node:http (./unix-fetch.ts): the global fetch cannot.
  const fetchFn: FetchFn = userFetch ?? (socketPath === undefined ? (globalThis.fetch as FetchFn) : unixSocketFetch(socketPath))
  const connect = async (): Promise<{ fetch: FetchFn }> => ({ fetch: fetchFn })
  const settings: TransportSettings = {
    baseUrl: normaliseBaseUrl(options.baseUrl ?? (socketPath === undefined ? DEFAULTS.baseUrl : 'http://localhost')),
    timeoutMs: nonNegativeInteger(options.timeoutMs, 'timeoutMs', DEFAULTS.timeoutMs, 1),
    retries: nonNegativeInteger(options.retries, 'retries', DEFAULTS.retries, 0),
    backoffMs: nonNegativeInteger(options.backoffMs, 'backoffMs', DEFAULTS.backoffMs, 0),
    maxRetryDelayMs: nonNegativeInteger(options.maxRetryDelayMs, 'maxRetryDelayMs', DEFAULTS.maxRetryDelayMs, 0),
    connect
  }
  const post = async (path: string, payload: unknown, signal: AbortSignal | undefined): Promise<unknown> =>
    await requestJson(settings, 'POST', path, payload, signal)

  return {
    async releaseKey (request) {
      const payload: Record<string, string> = {
        maa_endpoint: requireString(request.maaEndpoint, 'maaEndpoint'),
        akv_endpoint: requireString(request.akvEndpoint, 'akvEndpoint'),
        kid: requireString(request.kid, 'kid')
      }
      if (request.accessToken !== undefined) payload.access_token = requireString(request.accessToken, 'accessToken')
      return parseReleasedKey(await post('/key/release', payload, request.signal))
    },
    async attest (request) {
      const payload = { maa_endpoint: requireString(request.maaEndpoint, 'maaEndpoint'), runtime_data: encodeRuntimeData(request.runtimeData) }
      return stringField(await post('/attest/maa', payload, request.signal), 'token', '/attest/maa')
    },
    async rawReport (runtimeData, callOptions = {}) {
      const hex = stringField(await post('/attest/raw', { runtime_data: encodeRuntimeData(runtimeData) }, callOptions.signal), 'report', '/attest/raw')
      if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) throw invalidAnswer('/attest/raw', 'a hex "report"')
      return Buffer.from(hex, 'hex')
    },
    async combined (runtimeData, callOptions = {}) {
      const body = await post('/attest/combined', { runtime_data: encodeRuntimeData(runtimeData) }, callOptions.signal)
      return {
        endorsedTcb: stringField(body, 'endorsed_tcb', '/attest/combined'),
        endorsements: stringField(body, 'endorsements', '/attest/combined'),
        evidence: stringField(body, 'evidence', '/attest/combined'),
        uvmEndorsements: stringField(body, 'uvm_endorsements', '/attest/combined')
      }
    },
    async status (callOptions = {}) {
      const body = await requestJson(settings, 'GET', '/status', undefined, callOptions.signal)
      const message = stringField(body, 'message', '/status')
      const out: SkrStatus = { message }
      const record = body as Record<string, unknown>
      const attestation = record.attestation
      if (isRecord(attestation) && typeof attestation.simulated === 'boolean') {
        out.attestation = { backend: typeof attestation.backend === 'string' ? attestation.backend : null, simulated: attestation.simulated }
      }
      if (typeof record.warning === 'string') out.warning = record.warning
      return out
    },
    async close () {
      // Nothing of the client's own to release: connections belong to Node's global agents.
    }
  }
}
