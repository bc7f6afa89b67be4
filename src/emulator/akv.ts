// An Azure Key Vault / Managed HSM double for `release` and the key set-up calls, speaking the real
// wire format over real HTTPS (wire-protocols §2, §6.2, §9 "AKV / mHSM double"):
//   POST /keys/{name}[/{version}]/release · POST /keys/{name}/create · PUT /keys/{name} · GET /keys/{name}[/{version}]
// Order of checks on every route: api-version (400 BadParameter), bearer (401 challenge, sent
// before the body is read: the Azure SDK's first request has neither token nor body), then the
// route's own work. For release: faults, body, key (404), exportable (403), the MAA token (RS256
// under the key the policy's authority publishes via OpenID metadata, exp/nbf), the policy, the
// wrapping key from x-ms-runtime (all 403), then wrap and sign.
// Where the sources are silent (UNCONFIRMED): a non-exportable (hence policy-less) key answers 403
// Forbidden with innererror KeyNotExportable; status faults and delays apply to release only.
// Never logs or records bodies, tokens or key material; never crashes on input.
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createPublicKey, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import { isReleaseEnc, buildKeyHsm, RELEASE_ENCS } from '../akv/key-hsm.ts'
import type { ReleaseEnc } from '../akv/key-hsm.ts'
import { wrapForRelease } from '../akv/wrap.ts'
import { RequestInvalid } from '../errors.ts'
import { Upstream } from '../http/upstream.ts'
import { parseJwks } from '../maa/jwks-cache.ts'
import { createKeyStore, isKeyName, publicMembers, releasePlaintext } from './akv-store.ts'
import type { EmulatedKey, KeyStore } from './akv-store.ts'
import { DEFAULT_TENANT_ID } from './bearer.ts'
import { authority, azureError, closeServer, listen, readBody, sendJson } from './http-util.ts'
import { evaluateReleasePolicy, parseReleasePolicy, policyAuthorities, sameAuthority } from '../akv/release-policy.ts'
import { createSignerChain, signReleaseJws, unsecuredReleaseJws } from './signer-chain.ts'
import type { ReleaseSigner, SignerChain } from './signer-chain.ts'

/** Hostile-but-well-formed release answers, for proving a client refuses them. */
export type CorruptJwsMode = 'signature' | 'x5c-untrusted' | 'wrong-kid' | 'wrong-enc' | 'truncate-ciphertext' | 'alg-none' | 'wrong-host'

/** Fault knobs, read on every release request (mutate them between requests). */
export interface AkvFaults { status?: number, retryAfter?: string, delayMs?: number, corruptJws?: CorruptJwsMode }

/** How to start the emulator; only `tls` and `tokenVerifier` are required. */
export interface AkvEmulatorOptions {
  host?: string
  port?: number
  tls: { certPem: string, keyPem: string }
  /** SAN names of the JWS signer leaf; default ['127.0.0.1', 'localhost']. */
  vaultHosts?: string[]
  kind?: 'vault' | 'mhsm'
  store?: KeyStore
  tenantId?: string
  /** Validates a bearer token and returns its claims (the emulator checks aud), or null. */
  tokenVerifier: (token: string) => Promise<Record<string, unknown> | null>
  /** CA PEM trusted (besides the system roots) when fetching an attestation issuer's metadata and keys. */
  maaCa?: string
  now?: () => Date
  faults?: AkvFaults
}

/** A running emulator. */
export interface AkvEmulator {
  url: string
  /** host:port, as skr is given it. */
  endpoint: string
  /** The trust anchor of the release JWS signer chain. */
  signerRootPem: string
  store: KeyStore
  /** The live fault knobs (the object given in the options, if any). */
  faults: AkvFaults
  /** Method, path (no query) and status of every request; never bodies. */
  requests: Array<{ method: string, path: string, status: number }>
  close: () => Promise<void>
}

/** The api-versions the emulator accepts (wire-protocols §2.1). */
export const AKV_API_VERSIONS: readonly string[] = Object.freeze(['7.3', '7.4', '7.5', '7.6-preview.2', '7.6', '2025-07-01'])

const RESOURCE = { vault: 'https://vault.azure.net', mhsm: 'https://managedhsm.azure.net' } as const
const MAX_BODY = 1024 * 1024
const ISSUER_KEYS_TTL_MS = 5 * 60 * 1000
const DENIED = { error: { code: 'Forbidden', message: 'Target environment attestation statement cannot be verified.', innererror: { code: 'AccessDenied' } } }
const NOT_EXPORTABLE = { error: { code: 'Forbidden', message: 'The key is not exportable or has no release policy.', innererror: { code: 'KeyNotExportable' } } }
const FAULT_BODIES: Readonly<Record<number, { code: string, message: string, innererror?: { code: string } }>> = Object.freeze({
  401: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
  403: { code: 'Forbidden', message: 'Caller is not authorized to perform action on resource. Action: \'Microsoft.KeyVault/vaults/keys/release/action\'', innererror: { code: 'ForbiddenByRbac' } },
  429: { code: 'Throttled', message: 'Request was not processed because too many requests were received.' },
  500: { code: 'InternalServerError', message: 'The service encountered an internal error.' },
  503: { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' }
})

/** What a route answers; no body (undefined) for the Managed HSM challenge. */
interface Answer { status: number, body?: unknown, headers?: Record<string, string> }

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function akvError (status: number, code: string, message: string): Answer {
  return { status, body: azureError(code, message) }
}

function badParameter (message: string): Answer {
  return akvError(400, 'BadParameter', message)
}

function keyNotFound (id: string): Answer {
  return akvError(404, 'KeyNotFound', `A key with (name/id) ${id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`)
}

async function readJson (req: IncomingMessage): Promise<{ doc: Record<string, unknown> } | { answer: Answer }> {
  const body = await readBody(req, MAX_BODY)
  if (body === null) return { answer: badParameter('The request body is too large.') }
  try {
    const doc: unknown = JSON.parse(body.toString('utf8'))
    if (isObject(doc)) return { doc }
  } catch {
    // not JSON: answered below like any other non-object body
  }
  return { answer: badParameter('The request body is not a JSON object.') }
}

/** Resolves an attestation issuer's signing keys the way Key Vault does: {authority}/.well-known/openid-configuration → jwks_uri. */
function createIssuerKeys (upstream: Upstream, now: () => Date): (authority: string, kid: string) => Promise<KeyObject | null> {
  const cache = new Map<string, { keys: Map<string, KeyObject>, at: number }>()
  const getJson = async (url: string): Promise<Buffer | null> => {
    const res = await upstream.request({ method: 'GET', url, headers: { accept: 'application/json' }, retry: false })
    return res.status === 200 ? res.body : null
  }
  const fetchKeys = async (authority: string): Promise<Map<string, KeyObject> | null> => {
    const meta = await getJson(`${authority.replace(/\/+$/, '')}/.well-known/openid-configuration`)
    const doc: unknown = meta === null ? null : JSON.parse(meta.toString('utf8'))
    const jwksUri = isObject(doc) ? doc['jwks_uri'] : undefined
    if (typeof jwksUri !== 'string' || !jwksUri.startsWith('https://')) return null
    const jwks = await getJson(jwksUri)
    return jwks === null ? null : parseJwks(jwks)
  }
  return async (authority, kid) => {
    const hit = cache.get(authority)
    const fresh = hit !== undefined && now().getTime() - hit.at < ISSUER_KEYS_TTL_MS
    if (fresh && hit.keys.has(kid)) return hit.keys.get(kid) ?? null
    try {
      const keys = await fetchKeys(authority)
      if (keys === null) return null
      if (cache.size >= 64) cache.clear()
      cache.set(authority, { keys, at: now().getTime() })
      return keys.get(kid) ?? null
    } catch {
      return null // unreachable, not JSON, not a JWKS: the statement cannot be verified
    }
  }
}

/** The first RSA JWK in x-ms-runtime.keys with a kid that may encrypt (wire-protocols §2.4). */
function wrappingKeyOf (claims: Record<string, unknown>): { kid: string, key: KeyObject } | null {
  const runtime = claims['x-ms-runtime']
  const keys = isObject(runtime) ? runtime['keys'] : undefined
  if (!Array.isArray(keys)) return null
  for (const jwk of keys) {
    if (!isObject(jwk) || jwk['kty'] !== 'RSA' || typeof jwk['kid'] !== 'string' || jwk['kid'] === '') continue
    const ops = jwk['key_ops']
    if (!((Array.isArray(ops) && ops.includes('encrypt')) || jwk['use'] === 'enc')) continue
    try {
      const x5c = jwk['x5c']
      if (typeof jwk['n'] === 'string' && typeof jwk['e'] === 'string') {
        return { kid: jwk['kid'], key: createPublicKey({ key: { kty: 'RSA', n: jwk['n'], e: jwk['e'] }, format: 'jwk' }) }
      }
      if (Array.isArray(x5c) && typeof x5c[0] === 'string') {
        return { kid: jwk['kid'], key: new X509Certificate(Buffer.from(x5c[0], 'base64')).publicKey }
      }
    } catch {
      // an unusable key is not a suitable one: keep looking
    }
  }
  return null
}

function keyBundle (key: EmulatedKey, host: string, keyHsm?: string): Record<string, unknown> {
  const policy = key.releasePolicy
  return {
    key: { kid: `https://${host}/keys/${key.name}/${key.version}`, kty: key.kty, key_ops: [...key.keyOps], ...publicMembers(key), ...(keyHsm === undefined ? {} : { key_hsm: keyHsm }) },
    attributes: { enabled: true, created: key.created, updated: key.created, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90, exportable: key.exportable },
    tags: {},
    ...(policy === null
      ? {}
      : { release_policy: { ...(keyHsm === undefined ? { contentType: policy.contentType ?? 'application/json; charset=utf-8' } : {}), data: policy.data, immutable: policy.immutable } })
  }
}

function hostOf (req: IncomingMessage, fallback: string): string {
  const host = req.headers.host
  return typeof host === 'string' && /^[A-Za-z0-9.:[\]-]{1,255}$/.test(host) ? host : fallback
}

function otherEnc (enc: ReleaseEnc): ReleaseEnc {
  return RELEASE_ENCS.find((e) => e !== enc) ?? enc
}

/** Starts the emulator on https://{host}:{port} (default 127.0.0.1, an ephemeral port). */
export async function startAkvEmulator (options: AkvEmulatorOptions): Promise<AkvEmulator> {
  if (typeof options?.tokenVerifier !== 'function') throw new TypeError('startAkvEmulator: tokenVerifier is required')
  const kind = options.kind ?? 'vault'
  const resource = RESOURCE[kind]
  const tenantId = options.tenantId ?? DEFAULT_TENANT_ID
  const now = options.now ?? (() => new Date())
  const vaultHosts = options.vaultHosts ?? ['127.0.0.1', 'localhost']
  const store = options.store ?? createKeyStore({ now })
  const faults: AkvFaults = options.faults ?? {}
  const requests: AkvEmulator['requests'] = []
  const chain = await createSignerChain({ hosts: vaultHosts, now: now() })
  const upstream = new Upstream({
    name: 'maa',
    ...(options.maaCa === undefined ? {} : { ca: options.maaCa }),
    policy: { maxRetries: 0, connectTimeoutMs: 3000, headersTimeoutMs: 5000, bodyTimeoutMs: 5000, totalTimeoutMs: 10_000, maxResponseBytes: 1024 * 1024 }
  })
  const issuerKeys = createIssuerKeys(upstream, now)
  // A policy is text that never changes once stored: parse each one once, not per release.
  const parsedPolicies = new Map<string, ReturnType<typeof parseReleasePolicy>>()
  const policyOf = (data: string): ReturnType<typeof parseReleasePolicy> => {
    let policy = parsedPolicies.get(data)
    if (policy === undefined) {
      policy = parseReleasePolicy(data)
      if (parsedPolicies.size >= 256) parsedPolicies.clear()
      parsedPolicies.set(data, policy)
    }
    return policy
  }
  let untrusted: Promise<SignerChain> | null = null
  let wrongHost: Promise<ReleaseSigner> | null = null
  let endpoint = ''

  const challenge = (message: string): Answer => kind === 'mhsm'
    ? { status: 401, headers: { 'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="${resource}"` } }
    : { status: 401, body: azureError('Unauthorized', message), headers: { 'WWW-Authenticate': `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="${resource}"` } }

  const authenticate = async (req: IncomingMessage): Promise<Answer | null> => {
    const header = req.headers.authorization
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
    if (match === null) return challenge('AKV10000: Request is missing a Bearer or PoP token.')
    const claims = await options.tokenVerifier(match[1] as string).catch(() => null)
    const aud = claims?.['aud']
    const auds = Array.isArray(aud) ? aud : [aud]
    if (!auds.some((a) => typeof a === 'string' && a.replace(/\/+$/, '') === resource)) return challenge('The bearer token is not valid for this resource.')
    return null
  }

  const verifyTarget = async (token: string, authorities: string[]): Promise<{ issuer: string, claims: Record<string, unknown> } | null> => {
    let kid: unknown
    let iss: unknown
    try {
      const header = decodeProtectedHeader(token)
      if (header.alg !== 'RS256') return null
      kid = header.kid
      iss = decodeJwt(token).iss
    } catch {
      return null
    }
    if (typeof kid !== 'string' || typeof iss !== 'string') return null
    // Keys come from the authority the policy names, never from a URL the token chose.
    const authority = authorities.find((a) => sameAuthority(a, iss))
    if (authority === undefined) return null
    const key = await issuerKeys(authority, kid)
    if (key === null) return null
    try {
      const { payload } = await jwtVerify(token, key, { algorithms: ['RS256'], currentDate: now(), requiredClaims: ['exp', 'iss'] })
      return sameAuthority(authority, String(payload.iss)) ? { issuer: String(payload.iss), claims: { ...payload } } : null
    } catch {
      return null
    }
  }

  const sign = async (payload: unknown, mode: CorruptJwsMode | undefined): Promise<string> => {
    if (mode === 'alg-none') return unsecuredReleaseJws(chain.signer, payload)
    if (mode === 'x5c-untrusted') {
      untrusted ??= createSignerChain({ hosts: vaultHosts, now: now(), label: 'untrusted' })
      return await signReleaseJws((await untrusted).signer, payload)
    }
    if (mode === 'wrong-host') {
      wrongHost ??= chain.issueLeaf(['wrong-host.invalid'])
      return await signReleaseJws(await wrongHost, payload)
    }
    const jws = await signReleaseJws(chain.signer, payload)
    if (mode !== 'signature') return jws
    const [h, p, s] = jws.split('.') as [string, string, string]
    const sig = Buffer.from(s, 'base64url')
    sig[0] = (sig[0] ?? 0) ^ 0x01
    return `${h}.${p}.${sig.toString('base64url')}`
  }

  const release = async (req: IncomingMessage, host: string, apiVersion: string, name: string, version: string | undefined): Promise<Answer> => {
    const delayMs = faults.delayMs
    if (typeof delayMs === 'number' && delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
    const status = faults.status
    if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599) {
      const headers: Record<string, string> = faults.retryAfter === undefined ? {} : { 'Retry-After': faults.retryAfter }
      if (status === 404) return { ...keyNotFound(name), headers }
      return { status, body: { error: FAULT_BODIES[status] ?? { code: 'EmulatedFault', message: `Emulated fault ${status}.` } }, headers }
    }
    const read = await readJson(req)
    if ('answer' in read) return read.answer
    const { target, enc: encIn, nonce } = read.doc
    if (typeof target !== 'string' || target === '') return badParameter('target is required.')
    if (encIn !== undefined && !isReleaseEnc(encIn)) return badParameter('enc is not a supported key export encryption algorithm.')
    if (nonce !== undefined && typeof nonce !== 'string') return badParameter('nonce must be a string.')
    const key = store.get(name, version)
    if (key === undefined) return keyNotFound(version === undefined ? name : `${name}/${version}`)
    if (!key.exportable || key.releasePolicy === null) return { status: 403, body: NOT_EXPORTABLE }
    const policy = policyOf(key.releasePolicy.data)
    const verified = await verifyTarget(target, policyAuthorities(policy))
    if (verified === null) return { status: 403, body: DENIED }
    if (!evaluateReleasePolicy(policy, verified.issuer, verified.claims).allowed) return { status: 403, body: DENIED }
    const wrapping = wrappingKeyOf(verified.claims)
    if (wrapping === null) return { status: 403, body: DENIED }

    const mode = faults.corruptJws
    const requested: ReleaseEnc = encIn ?? 'CKM_RSA_AES_KEY_WRAP'
    // wrong-enc lies consistently (payload, key_hsm header and wrapping agree) so only a client that checks request.enc notices.
    const enc = mode === 'wrong-enc' ? otherEnc(requested) : requested
    const plaintext = releasePlaintext(key)
    let ciphertext: Buffer
    try {
      ciphertext = wrapForRelease(plaintext, enc, wrapping.key)
    } finally {
      plaintext.fill(0)
    }
    if (mode === 'truncate-ciphertext') ciphertext = ciphertext.subarray(0, ciphertext.length - 8)
    const keyHsm = buildKeyHsm({ kid: wrapping.kid, enc, ciphertext })
    const shown = mode === 'wrong-kid' ? { ...key, name: `${key.name}-replayed` } : key
    const askedName = mode === 'wrong-kid' ? shown.name : name
    const payload = {
      request: { 'api-version': apiVersion, enc, kid: `https://${host}/keys/${askedName}${version === undefined ? '' : `/${version}`}`, ...(nonce === undefined ? {} : { nonce }) },
      response: { key: keyBundle(shown, host, keyHsm) }
    }
    return { status: 200, body: { value: await sign(payload, mode) } }
  }

  const setup = async (req: IncomingMessage, host: string, name: string, create: boolean): Promise<Answer> => {
    const read = await readJson(req)
    if ('answer' in read) return read.answer
    const body = read.doc
    const attributes = isObject(body['attributes']) ? body['attributes'] : {}
    const settings = {
      exportable: attributes['exportable'] as boolean | undefined,
      releasePolicy: body['release_policy'] as { data: string } | undefined,
      // @azure/keyvault-keys sends `Hsm` (capitalised) on import; the REST reference spells it `hsm`.
      hsm: kind === 'mhsm' || body['hsm'] === true || body['Hsm'] === true
    }
    try {
      const key = create
        ? await store.createKey(name, { ...settings, kty: body['kty'] as 'RSA', size: body['key_size'] as number | undefined, crv: body['crv'] as string | undefined, keyOps: body['key_ops'] as string[] | undefined })
        : store.importKey(name, isObject(body['key']) ? body['key'] : {}, settings)
      return { status: 200, body: keyBundle(key, host) }
    } catch (err) {
      if (err instanceof RequestInvalid) return badParameter(err.message)
      throw err
    }
  }

  const route = async (req: IncomingMessage, url: URL): Promise<Answer> => {
    const method = req.method ?? ''
    const parts = url.pathname.replace(/\/+$/, '').split('/').slice(1).map((p) => { try { return decodeURIComponent(p) } catch { return '\u0000' } })
    if (parts[0]?.toLowerCase() !== 'keys' || parts.length < 2 || parts.length > 4) return akvError(404, 'NotFound', 'The requested resource was not found.')
    const last = parts.at(-1)?.toLowerCase()
    const op = method === 'POST' && last === 'release' && parts.length >= 3
      ? 'release'
      : method === 'POST' && last === 'create' && parts.length === 3
        ? 'create'
        : method === 'PUT' && parts.length === 2 ? 'import' : method === 'GET' && parts.length <= 3 ? 'get' : null
    if (op === null) return akvError(405, 'MethodNotAllowed', 'The method is not allowed on this resource.')
    // URLSearchParams decodes names too, so the SDK's `api%2Dversion` is found as `api-version`.
    const apiVersion = url.searchParams.get('api-version')
    if (apiVersion === null || !AKV_API_VERSIONS.includes(apiVersion)) {
      return badParameter(`The api-version is missing or not supported; supported: ${AKV_API_VERSIONS.join(', ')}.`)
    }
    const denied = await authenticate(req)
    if (denied !== null) return denied
    const name = parts[1] as string
    if (!isKeyName(name)) return badParameter('The key name is invalid.')
    const host = hostOf(req, endpoint)
    if (op === 'release') return await release(req, host, apiVersion, name, parts.length === 4 ? parts[2] : undefined)
    if (op === 'create' || op === 'import') return await setup(req, host, name, op === 'create')
    const key = store.get(name, parts[2])
    return key === undefined ? keyNotFound(parts.length === 3 ? `${name}/${parts[2] ?? ''}` : name) : { status: 200, body: keyBundle(key, host) }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.on('error', () => {})
    let answer: Answer
    let path = '/'
    try {
      const url = new URL(req.url ?? '/', 'https://akv.invalid')
      path = url.pathname
      answer = await route(req, url)
    } catch {
      answer = akvError(500, 'InternalServerError', 'The emulator failed to process the request.')
    }
    requests.push({ method: req.method ?? '', path, status: answer.status })
    sendJson(res, answer.status, answer.body, answer.headers)
  }

  const server = https.createServer({ cert: options.tls.certPem, key: options.tls.keyPem }, (req, res) => { void handle(req, res) })
  const { port } = await listen(server, options)
  endpoint = authority(options.host ?? '127.0.0.1', port)
  let closing: Promise<void> | null = null
  return {
    url: `https://${endpoint}`,
    endpoint,
    signerRootPem: chain.rootPem,
    store,
    faults,
    requests,
    close: async () => {
      closing ??= (async () => {
        await closeServer(server)
        await upstream.close()
      })()
      return await closing
    }
  }
}
