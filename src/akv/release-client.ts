// The Key Vault / Managed HSM `release` call (docs/protocols.md#key-release-request, docs/protocols.md#key-release-response, docs/protocols.md#key-vault-errors): POST
// https://{vault}/keys/{name}[/{version}]/release?api-version=… with {"target": MAA token} and a
// bearer token; the answer {"value": JWS} is returned unverified (release-jws.ts verifies it).
//
// Why undici (through our Upstream) and not @azure/keyvault-keys KeyClient.releaseKey:
// - Retries: the SDK's pipeline does not retry a 429 without Retry-After (fails in 1 ms, docs/protocols.md#key-vault-sdk);
//   Upstream backs off on 408/429/5xx with or without it, under one whole-call deadline.
// - Deadlines and cancellation: Upstream takes the request's AbortSignal and has connect/headers/
//   body timeouts per upstream; one keep-alive Agent per upstream, shared by every release.
// - No challenge round trip: the SDK's challenge policy sends a first, body-less, token-less
//   request per client (docs/protocols.md#key-vault-sdk). The resource is known from the endpoint (identity/resource.ts),
//   so we send the token at once; a 401 challenge for another resource is honoured once, and only
//   for a parent domain of the vault (so a vault cannot make us mint tokens for other audiences).
// - api-version: the SDK's default (2025-07-01) is newer than the reference's 7.4, which every
//   vault and mHSM region accepts; ours is config.akv.apiVersion (default 7.4), sent as
//   `api-version` (the SDK sends `api%2Dversion`, docs/protocols.md#key-vault-sdk).
// - Test doubles need disableChallengeResourceVerification with the SDK; we need nothing.
// - The SDK does not verify the JWS either (docs/protocols.md#verifying-the-release-jws), so it would add nothing but one more error shape.
// The SDK stays the tool for key import/creation (`skr import-key`), where none of this matters.
import { AccessDenied, KeyNotFound, KeyReleaseDenied, UpstreamRejected, UpstreamResponseInvalid } from '../errors.ts'
import { parseAzureError } from '../http/azure-error.ts'
import type { AzureErrorInfo } from '../http/azure-error.ts'
import { statusError } from '../http/errors-map.ts'
import type { Upstream, UpstreamResponse } from '../http/upstream.ts'
import { hostnameOf, resourceFor, VAULT_RESOURCES } from '../identity/resource.ts'
import type { Logger } from '../log.ts'
import type { ReleaseEnc } from './key-hsm.ts'

/** One release: where, which key, the MAA token and the bearer token. */
export interface ReleaseCall {
  /** Normalised host[:port] of the vault or mHSM. */
  akvEndpoint: string
  keyName: string
  keyVersion: string | null
  /** The MAA token, sent as `target`. */
  target: string
  /** Bearer token for resourceFor(akvEndpoint) (or the caller's own). */
  accessToken: string
  /** Mints a token for a challenged resource; absent when the caller supplied the token (never substituted). */
  tokenFor?: (resource: string, signal?: AbortSignal) => Promise<string>
  signal?: AbortSignal
}

/** Performs releases; returns the compact JWS the vault signed. */
export interface ReleaseClient {
  release: (call: ReleaseCall) => Promise<string>
}

/** Release client settings. */
export interface ReleaseClientOptions {
  upstream: Pick<Upstream, 'request'>
  /** Key Vault api-version (config.akv.apiVersion; the reference uses 7.4). */
  apiVersion: string
  /** Sent as `enc` when not null; null omits it as the reference does (the vault then uses CKM_RSA_AES_KEY_WRAP). */
  enc: ReleaseEnc | null
  log?: Logger
}

// A 403 whose code or text says the identity lacks the permission/role (or a firewall/policy
// blocks it) is "your credentials are not allowed", not "your attestation is not allowed".
const PERMISSION_TEXT = /does not have .*permission|caller is not authorized|not authorized to perform|client address is not authorized/i

function isPermissionDenial (info: AzureErrorInfo): boolean {
  return /^ForbiddenBy/i.test(info.innerCode ?? '') || /^ForbiddenBy/i.test(info.code ?? '') || PERMISSION_TEXT.test(info.message ?? '')
}

function describe (info: AzureErrorInfo, status: number): string {
  if (info.code === undefined && info.message === undefined) return `HTTP ${status}`
  return [info.code, info.message].filter((s) => s !== undefined).join(': ')
}

function header (res: UpstreamResponse, name: string): string | undefined {
  const value = res.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

/** The resource a `WWW-Authenticate: Bearer …, resource="…"` (or `scope="…/.default"`) challenge names. */
export function challengedResource (wwwAuthenticate: string | undefined): string | null {
  if (wwwAuthenticate === undefined) return null
  const params = new Map<string, string>()
  for (const match of wwwAuthenticate.matchAll(/([A-Za-z_]+)="([^"]*)"/g)) params.set((match[1] as string).toLowerCase(), match[2] as string)
  const resource = params.get('resource') ?? params.get('scope')?.replace(/\/\.default$/, '')
  return resource === undefined || resource === '' ? null : resource
}

/**
 * The normalised challenged resource (`https://host`) when we may fetch a token for it: https, no
 * port/path/credentials, and a strict parent domain of the vault host (vault.azure.net for
 * x.vault.azure.net). For a host under a suffix skr knows (identity/resource.ts VAULT_RESOURCES)
 * only that suffix's own resource qualifies: such a vault may not make skr mint a token for a
 * broader audience (`https://azure.net`). Hosts outside the table (a cloud skr does not know,
 * which the operator allowed by name) keep the parent-domain rule. Anything else: null.
 */
export function trustedChallenge (resource: string, akvEndpoint: string): string | null {
  let url: URL
  try {
    url = new URL(resource)
  } catch {
    return null
  }
  if (url.protocol !== 'https:' || url.port !== '' || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return null
  if (url.pathname !== '/' && url.pathname !== '') return null
  const host = url.hostname.toLowerCase().replace(/\.$/, '')
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(host) || /^[\d.]+$/.test(host)) return null
  const vaultHost = hostnameOf(akvEndpoint)
  const known = VAULT_RESOURCES.find((entry) => vaultHost.endsWith(`.${entry.suffix}`))
  if (known !== undefined && known.resource !== `https://${host}`) return null
  return vaultHost.endsWith(`.${host}`) ? `https://${host}` : null
}

/** Creates the release client. */
export function createReleaseClient (options: ReleaseClientOptions): ReleaseClient {
  const { upstream, apiVersion, enc } = options
  if (typeof apiVersion !== 'string' || apiVersion === '') throw new TypeError('createReleaseClient: apiVersion is required')

  const send = async (call: ReleaseCall, url: URL, token: string): Promise<UpstreamResponse> => {
    return await upstream.request({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ target: call.target, ...(enc === null ? {} : { enc }) }),
      ...(call.signal === undefined ? {} : { signal: call.signal })
    })
  }

  return {
    release: async (call) => {
      const host = call.akvEndpoint
      const keyPath = call.keyVersion === null
        ? encodeURIComponent(call.keyName)
        : `${encodeURIComponent(call.keyName)}/${encodeURIComponent(call.keyVersion)}`
      const url = new URL(`https://${host}/keys/${keyPath}/release`)
      url.searchParams.set('api-version', apiVersion)
      const keyId = call.keyVersion === null ? call.keyName : `${call.keyName}/${call.keyVersion}`

      let res = await send(call, url, call.accessToken)
      if (res.status === 401 && call.tokenFor !== undefined) {
        const asked = challengedResource(header(res, 'www-authenticate'))
        const used = resourceFor(host).resource
        if (asked !== null && asked.replace(/\/+$/, '').toLowerCase() !== used) {
          const trusted = trustedChallenge(asked, host)
          if (trusted === null) {
            options.log?.warn({ akv: host, challenge: asked.slice(0, 100) }, 'ignoring a 401 challenge for a resource outside the vault domain')
          } else {
            options.log?.info({ akv: host, resource: trusted }, 'vault challenged for another resource; retrying once with its token')
            res = await send(call, url, await call.tokenFor(trusted, call.signal))
          }
        }
      }

      const info = res.status === 200 ? {} : parseAzureError(res.body)
      const details = { upstream: 'akv', host, upstreamStatus: res.status, upstreamCode: info.code, upstreamInnerCode: info.innerCode, attempts: res.attempts }
      switch (res.status) {
        case 200: {
          let value: unknown
          try {
            value = (JSON.parse(res.body.toString('utf8')) as { value?: unknown } | null)?.value
          } catch {
            // Not JSON: reported below as a missing value.
          }
          if (typeof value !== 'string' || value === '') {
            throw new UpstreamResponseInvalid(`AKV ${host}: release answer has no "value" string`, { details })
          }
          // The orchestrator logs the outcome at info; this line only helps when tracing retries.
          options.log?.debug({ akv: host, kid: keyId, attempts: res.attempts }, 'key release answered')
          return value
        }
        case 401:
          throw new AccessDenied(`AKV rejected the access token: ${describe(info, res.status)}`, { details })
        case 403:
          if (isPermissionDenial(info)) throw new AccessDenied(`AKV denied the identity: ${describe(info, res.status)}`, { details })
          throw new KeyReleaseDenied(`AKV denied the key release: ${describe(info, res.status)}`, { details })
        case 404:
          throw new KeyNotFound(`AKV has no key ${keyId}: ${describe(info, res.status)}`, { details })
        case 400:
          throw new UpstreamRejected(`AKV rejected the release request: HTTP 400 ${describe(info, res.status)}`, { details })
        default:
          throw statusError({ upstream: 'akv', host, attempts: res.attempts }, res.status, res.body, 'key release')
      }
    }
  }
}
