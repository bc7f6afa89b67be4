// Where `skr explain` gets its two inputs: the key's release policy from the vault (KeyClient
// getKey, with operator credentials), and the claims skr would present, as an MAA token from a
// running sidecar (`POST /attest/maa`, exactly what a release attests with, the runtime data
// aside). The token is held in memory only long enough to decode its claims, never printed.
import { decodePolicy } from './import-key.ts'
import type { TokenCredential } from '@azure/identity'
import { UpstreamRejected, UpstreamResponseInvalid, UpstreamUnavailable } from '../errors.ts'
import { openKeyClient, vaultError } from './vault-client.ts'
import { untrustedText } from '../text/untrusted.ts'
import type { VaultKeyPolicy } from './explain.ts'

/** What reading a key's policy needs. */
export interface ReadKeyPolicyRequest {
  /** host[:port], already normalised. */
  vault: string
  name: string
  version?: string
  credential: TokenCredential
  serviceVersion: string
  extraCa: readonly string[]
  timeoutMs: number
  maxRetries?: number
}

/** The permission a 403 on reading a key means is missing. */
const READ_PERMISSION = 'the identity needs permission to read the key (keys/get: Key Vault Crypto User, or on a Managed HSM Managed HSM Crypto User or Crypto Auditor)'

/** Reads the key (its properties: id, exportable, release policy; never key material) through KeyClient.getKey. */
export async function readKeyPolicy (request: ReadKeyPolicyRequest): Promise<VaultKeyPolicy> {
  const { client, close } = openKeyClient({
    vault: request.vault,
    credential: request.credential,
    serviceVersion: request.serviceVersion,
    extraCa: request.extraCa,
    ...(request.maxRetries === undefined ? {} : { maxRetries: request.maxRetries })
  })
  try {
    const key = await client.getKey(request.name, {
      abortSignal: AbortSignal.timeout(request.timeoutMs),
      ...(request.version === undefined ? {} : { version: request.version })
    })
    if (typeof key.id !== 'string' || key.id === '') throw new UpstreamResponseInvalid('the vault answered without a key id', { details: { upstream: 'akv' } })
    const policy = decodePolicy(key.properties.releasePolicy?.encodedPolicy)
    return { keyId: key.id, exportable: key.properties.exportable ?? null, policy }
  } catch (err) {
    throw vaultError(err, request.vault, READ_PERMISSION)
  } finally {
    close()
  }
}

/** What asking a sidecar for a token needs. */
export interface SidecarTokenRequest {
  /** The sidecar's base URL (http://localhost:8080). */
  url: string
  maaEndpoint: string
  timeoutMs: number
  /** Replaces global fetch (tests). */
  fetch?: typeof fetch
}

// MAA takes the runtime data as JSON (dataType JSON), so this is JSON too; it only ends up in the
// token's x-ms-runtime claim, which release policies do not test.
const RUNTIME_DATA = Buffer.from(JSON.stringify({ purpose: 'skr explain' })).toString('base64')

function said (body: unknown): string {
  const record = typeof body === 'object' && body !== null ? body as Record<string, unknown> : {}
  const code = typeof record['code'] === 'string' ? untrustedText(record['code'], { max: 60, ellipsis: false }) : ''
  const error = typeof record['error'] === 'string' ? untrustedText(record['error'], { max: 300, ellipsis: false }) : ''
  return [code, error].filter((s) => s !== '').join(': ') || 'no error text'
}

// What fetch's "fetch failed" was: the errno of its cause (or of a part of an AggregateError),
// else the cause's own short text ("bad port"), else a generic phrase.
function fetchFailure (err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause
  const parts = cause instanceof AggregateError ? [cause, ...cause.errors] : [cause]
  for (const part of parts) {
    const code = (part as { code?: unknown } | null)?.code
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code)) return code
  }
  const message = cause instanceof Error ? untrustedText(cause.message, { trim: true }) : ''
  return message !== '' && message.length <= 80 ? message : 'request failed'
}

/**
 * Asks the sidecar at `url` for an MAA token (`POST /attest/maa` with `maaEndpoint` and a fixed
 * JSON runtime data) and returns it. The sidecar's refusal is reported with its code and sentence
 * (4xx: UpstreamRejected; 5xx or unreachable: UpstreamUnavailable).
 */
export async function tokenFromSidecar (request: SidecarTokenRequest): Promise<string> {
  const doFetch = request.fetch ?? fetch
  const target = new URL('/attest/maa', request.url)
  let res: Response
  try {
    res = await doFetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ maa_endpoint: request.maaEndpoint, runtime_data: RUNTIME_DATA }),
      signal: AbortSignal.timeout(request.timeoutMs)
    })
  } catch (err) {
    const why = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${request.timeoutMs} ms` : fetchFailure(err)
    throw new UpstreamUnavailable(`the sidecar at ${target.origin} could not be reached (${why}): is it running, and is --sidecar its address?`, { cause: err })
  }
  const text = await res.text()
  let body: unknown = null
  try {
    body = JSON.parse(text)
  } catch {
    // Reported below.
  }
  if (res.status !== 200) {
    const ErrorClass = res.status >= 500 ? UpstreamUnavailable : UpstreamRejected
    throw new ErrorClass(`the sidecar at ${target.origin} answered ${res.status} to POST /attest/maa (${said(body)})`)
  }
  const token = (body as { token?: unknown } | null)?.token
  if (typeof token !== 'string' || token === '') throw new UpstreamResponseInvalid(`the sidecar at ${target.origin} answered 200 without a token`)
  return token
}
