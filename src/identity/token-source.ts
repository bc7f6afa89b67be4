// Entra ID access tokens for the vault, from the container's own identity: managed identity via
// IMDS (ACI, VMs), or workload identity (AKS: a federated service-account token exchanged at
// Entra), both through @azure/identity (docs/protocols.md#managed-identity-tokens-from-imds, docs/protocols.md#workload-identity, docs/protocols.md#identity-sdk). On top of the SDK this module
// adds what a sidecar answering concurrent requests needs:
// - a per-resource cache until 5 minutes before expiry, single-flight (one fetch however many
//   callers), and no caching of failures; every lookup counts as a hit or a miss in the
//   `aad_token` cache metric (a caller that joins a fetch under way is a miss: it waits);
// - a deadline: the SDK ignores abortSignal on both paths (EXP: a hung IMDS or Entra never
//   settles), so each HTTP attempt gets a timeout through our own HttpClient (./sdk-http-client.ts:
//   skr's Upstream, so token requests also follow skr's proxy rules and extra CA roots, and are
//   timed under the 'imds' and 'entra' upstream metrics) and each fetch a whole-call deadline here;
// - one error: every failure is IdentityUnavailable (503) naming the identity, who answered what,
//   and what to check. Tokens never appear in messages or logs.
//
// @azure/identity is loaded on the first token request (./sdk-credential.ts), not at start-up:
// it is the heaviest module skr depends on, and /status must answer without it.
import type { AccessToken, TokenCredential } from '@azure/identity'
import { ConfigInvalid, IdentityUnavailable } from '../errors.ts'
import type { UpstreamOptions } from '../http/upstream.ts'
import type { Logger } from '../log.ts'
import { untrustedText } from '../text/untrusted.ts'
import { createSingleFlight } from '../util/single-flight.ts'
import { scopeOf } from './resource.ts'

/** Which identity supplies tokens. */
export type IdentityKind = 'managed identity' | 'workload identity'

/** Access tokens for Entra resources, cached and single-flight. */
export interface TokenSource {
  readonly kind: IdentityKind
  /** A bearer token for `resource` (e.g. https://vault.azure.net); IdentityUnavailable on failure. */
  getToken: (resource: string, signal?: AbortSignal) => Promise<string>
}

/** The part of the metrics seam (observability/metrics.ts) the token cache uses. */
export interface TokenCacheMetrics {
  cacheResult: (cache: string, hit: boolean) => void
}

/** The token cache's metrics plus, optionally, the upstream metric every token request is timed in ('imds', 'entra'). */
export interface IdentityMetrics extends TokenCacheMetrics {
  observeUpstream?: NonNullable<UpstreamOptions['metrics']>['observeUpstream']
}

/** How to wrap a credential; only `credential` and `kind` are required. */
export interface TokenSourceOptions {
  credential: Pick<TokenCredential, 'getToken'>
  kind: IdentityKind
  /** What to check when it fails, appended to every error message. */
  hint?: string
  now?: () => Date
  /** Refresh this long before expiry (default 5 minutes). */
  refreshMarginMs?: number
  /** Deadline for one token fetch including the SDK's retries (default 20 s). */
  timeoutMs?: number
  log?: Logger
  /** Records each token lookup under the cache name 'aad_token'; default none. */
  metrics?: TokenCacheMetrics
}

const REFRESH_MARGIN_MS = 5 * 60 * 1000
const TIMEOUT_MS = 20_000
const ATTEMPT_TIMEOUT_MS = 5_000
const MAX_TEXT = 200

class FetchTimeout extends Error {}

/** Upstream text made safe for a message: no controls, nothing token-shaped, at most 200 characters. */
function sanitise (text: string): string {
  return untrustedText(text, { trim: true, max: MAX_TEXT })
}

function field (err: unknown, name: string): unknown {
  return typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[name] : undefined
}

/** The facts an SDK/MSAL error chain carries: HTTP status, OAuth error code, description. */
function factsOf (err: unknown): { status?: number, code?: string, description?: string } {
  const out: { status?: number, code?: string, description?: string } = {}
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; e = field(e, 'cause'), depth++) {
    const status = field(e, 'statusCode') ?? field(e, 'status')
    if (out.status === undefined && typeof status === 'number' && status >= 100) out.status = status
    const response = field(e, 'errorResponse')
    const code = field(e, 'errorCode') ?? field(response, 'error')
    if (out.code === undefined && typeof code === 'string' && code !== '') out.code = code
    const text = String(field(e, 'message') ?? '')
    // MSAL formats server errors as "<code>: Error(s): … - Description: <text> - Correlation ID: …".
    const msal = /(\w+): Error\(s\):.*? - Description: (.*?) - Correlation ID/s.exec(text)
    if (msal !== null) {
      out.code ??= msal[1]
      out.description ??= msal[2]
    }
    const described = field(response, 'errorDescription')
    if (out.description === undefined && typeof described === 'string' && described !== '') out.description = described
  }
  return out
}

/** Maps any credential failure to IdentityUnavailable naming the identity, the answer and what to check. */
export function identityError (err: unknown, kind: IdentityKind, hint: string): IdentityUnavailable {
  const who = kind === 'managed identity' ? 'IMDS' : 'Entra ID'
  const check = hint === '' ? '' : ` (${hint})`
  if (err instanceof FetchTimeout) {
    return new IdentityUnavailable(`${kind} token request failed: ${who} did not answer in time${check}`,
      { details: { identity: kind, upstreamCode: 'timeout' } })
  }
  const facts = factsOf(err)
  let what: string
  if (facts.code === 'network_error') {
    what = `${who} unreachable (network_error)`
  } else if (facts.status !== undefined || facts.code !== undefined) {
    const status = facts.status === undefined ? '' : ` ${facts.status}`
    const code = facts.code === undefined ? '' : ` ${sanitise(facts.code)}`
    const description = facts.description === undefined ? '' : `: ${sanitise(facts.description)}`
    what = `${who} answered${status}${code}${description}`
  } else {
    what = sanitise(String(field(err, 'message') ?? 'unknown error'))
  }
  return new IdentityUnavailable(`${kind} token request failed: ${what}${check}`, {
    cause: err,
    details: { identity: kind, upstreamStatus: facts.status, upstreamCode: facts.code === undefined ? undefined : sanitise(facts.code) }
  })
}

/** Wraps a credential with the cache, single-flight, deadline and error mapping described above. */
export function createTokenSource (options: TokenSourceOptions): TokenSource {
  const { credential, kind } = options
  const hint = options.hint ?? ''
  const now = options.now ?? (() => new Date())
  const margin = options.refreshMarginMs ?? REFRESH_MARGIN_MS
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS
  const cache = new Map<string, { token: string, expiresOn: number }>()
  // A token is cached for later callers, so a fetch everyone stopped waiting for still finishes;
  // it has its own deadline.
  const flights = createSingleFlight<string>({ abortAbandoned: false })

  const fetch = async (scope: string): Promise<string> => {
    const deadline = new AbortController()
    let timer: ReturnType<typeof setTimeout> | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { deadline.abort(); reject(new FetchTimeout()) }, timeoutMs)
    })
    let token: AccessToken | null
    try {
      token = await Promise.race([credential.getToken(scope, { abortSignal: deadline.signal }), timedOut])
    } catch (err) {
      const mapped = identityError(err, kind, hint)
      options.log?.warn({ identity: kind, scope, code: mapped.code, details: mapped.details }, mapped.message)
      throw mapped
    } finally {
      clearTimeout(timer)
    }
    if (token === null || typeof token?.token !== 'string' || token.token === '' || !Number.isFinite(token.expiresOnTimestamp)) {
      throw identityError(new Error('the credential returned no token'), kind, hint)
    }
    cache.set(scope, { token: token.token, expiresOn: token.expiresOnTimestamp })
    options.log?.debug({ identity: kind, scope, expiresInS: Math.round((token.expiresOnTimestamp - now().getTime()) / 1000) }, 'access token acquired')
    return token.token
  }

  return {
    kind,
    getToken: async (resource, signal) => {
      if (typeof resource !== 'string' || !resource.startsWith('https://')) throw new TypeError('getToken: resource must be an https:// URL')
      const scope = scopeOf(resource)
      const hit = cache.get(scope)
      if (hit !== undefined && now().getTime() < hit.expiresOn - margin) {
        options.metrics?.cacheResult('aad_token', true)
        return hit.token
      }
      options.metrics?.cacheResult('aad_token', false)
      return await flights.run(scope, async () => await fetch(scope), signal)
    }
  }
}

import type { IdentityConfig } from './identity-config.ts'
export type { IdentityConfig }

function checkAuthorityHost (value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigInvalid('AZURE_AUTHORITY_HOST is not a URL')
  }
  if (url.protocol !== 'https:') throw new ConfigInvalid('AZURE_AUTHORITY_HOST must be an https:// URL')
  return value.replace(/\/+$/, '')
}

/** Which identity a configuration selects and what to check when it fails (pure: no SDK loaded). */
export function credentialPlan (config: IdentityConfig): { kind: IdentityKind, hint: string, authorityHost: string | null } {
  // Checked here, at start-up, so a bad AZURE_AUTHORITY_HOST stops skr rather than the first release.
  const authorityHost = config.authorityHost === null ? null : checkAuthorityHost(config.authorityHost)
  const wi = config.workload
  if (wi !== null) {
    return {
      kind: 'workload identity',
      hint: `check AZURE_CLIENT_ID ${wi.clientId}, AZURE_TENANT_ID ${wi.tenantId} and the identity's federated credential for the token in AZURE_FEDERATED_TOKEN_FILE`,
      authorityHost
    }
  }
  const clientId = config.managedIdentityClientId
  return {
    kind: 'managed identity',
    hint: `is the identity assigned to the container group? ${clientId === null ? 'system-assigned identity' : `client_id ${clientId}`}`,
    authorityHost
  }
}

/** Builds the SDK credential for a configuration (loads @azure/identity), with what to check when it fails. */
export async function createCredential (
  config: IdentityConfig,
  metrics?: UpstreamOptions['metrics']
): Promise<{ credential: TokenCredential, kind: IdentityKind, hint: string }> {
  const plan = credentialPlan(config)
  const { sdkCredential } = await import('./sdk-credential.ts')
  return { credential: sdkCredential(config, plan.authorityHost, ATTEMPT_TIMEOUT_MS, metrics), kind: plan.kind, hint: plan.hint }
}

/** A TokenSource over the credential `config` selects. */
export function createIdentityTokenSource (
  config: IdentityConfig,
  options: Pick<TokenSourceOptions, 'now' | 'timeoutMs' | 'log'> & { metrics?: IdentityMetrics } = {}
): TokenSource {
  const { kind, hint } = credentialPlan(config)
  const observeUpstream = options.metrics?.observeUpstream?.bind(options.metrics)
  const upstreamMetrics = observeUpstream === undefined ? undefined : { observeUpstream }
  let loading: Promise<TokenCredential> | null = null
  // The SDK credential is built on first use; a failure to build it is reported like any token
  // failure (and retried on the next request) rather than cached.
  const credential: Pick<TokenCredential, 'getToken'> = {
    getToken: async (scopes, opts) => {
      loading ??= createCredential(config, upstreamMetrics).then(c => c.credential, (err: unknown) => { loading = null; throw err })
      return await (await loading).getToken(scopes, opts)
    }
  }
  return createTokenSource({ credential, kind, hint, ...options })
}
