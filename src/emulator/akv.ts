// An Azure Key Vault / Managed HSM double for `release` and the key set-up calls, speaking the real
// wire format over real HTTPS (docs/protocols.md#test-doubles and the Key Vault sections it links):
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
import { isReleaseEnc, buildKeyHsm, RELEASE_ENCS } from '../akv/key-hsm.ts'
import type { ReleaseEnc } from '../akv/key-hsm.ts'
import { wrapForRelease } from '../akv/wrap.ts'
import { RequestInvalid } from '../errors.ts'
import { isObject } from '../text/untrusted.ts'
import { Upstream } from '../http/upstream.ts'
import { akvError, badParameter, DENIED, keyNotFound, NOT_EXPORTABLE, readJson, type Answer } from './akv-answers.ts'
import { faultAnswer, type AkvFaults } from './akv-faults.ts'
import { createIssuerKeys } from './akv-issuer-keys.ts'
import { keyBundle } from './akv-key-bundle.ts'
import { releasePlaintext } from './akv-key-material.ts'
import { createReleaseSigning } from './akv-release-signing.ts'
import { createTargetVerifier, wrappingKeyOf } from './akv-release-target.ts'
import { createKeyStore, isKeyName } from './akv-store.ts'
import type { KeyStore } from './akv-store.ts'
import { DEFAULT_TENANT_ID } from './bearer.ts'
import { authority, azureError, closeServer, listen, sendJson } from './http-util.ts'
import { parseReleasePolicy, policyAuthorities } from '../akv/release-policy.ts'
import { evaluateReleasePolicy } from '../akv/release-policy-evaluate.ts'
import { createSignerChain } from './signer-chain.ts'

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

/** The api-versions the emulator accepts (docs/protocols.md#key-release-request). */
export const AKV_API_VERSIONS: readonly string[] = Object.freeze(['7.3', '7.4', '7.5', '7.6-preview.2', '7.6', '2025-07-01'])

const RESOURCE = { vault: 'https://vault.azure.net', mhsm: 'https://managedhsm.azure.net' } as const

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
  const verifyTarget = createTargetVerifier(createIssuerKeys(upstream, now), now)
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
  const sign = createReleaseSigning(chain, vaultHosts, now)
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

  const release = async (req: IncomingMessage, host: string, apiVersion: string, name: string, version: string | undefined): Promise<Answer> => {
    const fault = await faultAnswer(faults, name)
    if (fault !== null) return fault
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
