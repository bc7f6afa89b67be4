// Coalescing of identical releases, the one transparent re-attestation after a refusal under a
// reused token, and batch release, against an in-process vault that wraps to the attested key.
import t from 'tap'
import crypto, { X509Certificate } from 'node:crypto'
import { buildKeyHsm } from '../../../src/akv/key-hsm.ts'
import type { ReleaseCall, ReleaseClient } from '../../../src/akv/release-client.ts'
import { wrapForRelease } from '../../../src/akv/wrap.ts'
import { createSignerChain, signReleaseJws } from '../../../src/emulator/signer-chain.ts'
import { AccessDenied, KeyNotFound, KeyReleaseDenied, UpstreamUnavailable } from '../../../src/errors.ts'
import type { TokenSource } from '../../../src/identity/token-source.ts'
import type { AttestationService, AttestationStatus, CombinedEvidence } from '../../../src/service/types.ts'
import { createAttestationCache } from '../../../src/release/attestation-cache.ts'
import { createKeyReleaseService, STALE_TOKEN_MIN_AGE_MS } from '../../../src/release/key-release.ts'
import type { KeyReleaseDeps } from '../../../src/release/key-release.ts'
import { createWrappingKey } from '../../../src/release/wrapping-key.ts'
import type { WrappingKey } from '../../../src/release/wrapping-key.ts'

const VAULT = 'myvault.vault.azure.net'
const MAA = 'sharedeus.eus.attest.azure.net'
const VERSION = '0123456789abcdef0123456789abcdef'
const chain = await createSignerChain({ hosts: [VAULT] })
const roots = [new X509Certificate(chain.rootPem)]
const secrets = new Map<string, Buffer>()
const secretOf = (name: string): Buffer => {
  let s = secrets.get(name)
  if (s === undefined) { s = crypto.randomBytes(32); secrets.set(name, s) }
  return s
}
// Two real wrapping keys, reused round-robin: generating one per attestation would only slow the tests.
const keyring: WrappingKey[] = [await createWrappingKey(), await createWrappingKey()]

const DENIED = 'AKV denied the key release: Forbidden: Target environment attestation statement cannot be verified.'
const denied = (): KeyReleaseDenied => new KeyReleaseDenied(DENIED, { details: { upstream: 'akv', upstreamStatus: 403, upstreamCode: 'Forbidden', upstreamInnerCode: 'AccessDenied' } })

/** MAA double: tokens are JWT-shaped, valid 8 h, and remembered with the JWKS they attest. */
class Maa implements AttestationService {
  calls = 0
  readonly attested = new Map<string, Buffer>()
  failWith: unknown = null
  async maaToken (_maa: string, runtimeData: Buffer): Promise<string> {
    this.calls++
    if (this.failWith !== null) throw this.failWith
    const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
    const now = Math.floor(Date.now() / 1000)
    const token = `${part({ alg: 'RS256' })}.${part({ n: this.calls, exp: now + 8 * 3600 })}.c2ln`
    this.attested.set(token, runtimeData)
    return token
  }

  async rawReport (): Promise<Buffer> { throw new Error('unused') }
  async combined (): Promise<CombinedEvidence> { throw new Error('unused') }
  async status (): Promise<AttestationStatus> { return { backend: 'tsm', simulated: false, problems: [] } }
}

/** Vault double: wraps the key's secret to the wrapping key the presented token attests. */
class Vault implements ReleaseClient {
  readonly calls: ReleaseCall[] = []
  /** Tokens the vault no longer accepts (as if expired). */
  readonly stale = new Set<string>()
  /** Keys whose policy the workload does not satisfy. */
  readonly refuse = new Set<string>()
  /** Per-key failures that are not about the token. */
  readonly fail = new Map<string, unknown>()
  gate: Promise<void> | null = null
  private readonly maa: Maa
  constructor (maa: Maa) { this.maa = maa }

  release = async (call: ReleaseCall): Promise<string> => {
    this.calls.push(call)
    if (this.gate !== null) await this.gate
    const failure = this.fail.get(call.keyName)
    if (failure !== undefined) throw failure
    if (this.stale.has(call.target) || this.refuse.has(call.keyName)) throw denied()
    const runtime = this.maa.attested.get(call.target)
    if (runtime === undefined) throw denied()
    const jwk = (JSON.parse(runtime.toString()) as { keys: Array<{ kid: string, n: string, e: string }> }).keys[0]
    if (jwk === undefined) throw new Error('no key attested')
    const publicKey = crypto.createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' })
    const keyHsm = buildKeyHsm({ kid: jwk.kid, enc: 'CKM_RSA_AES_KEY_WRAP', ciphertext: wrapForRelease(secretOf(call.keyName), 'CKM_RSA_AES_KEY_WRAP', publicKey) })
    const keyUrl = `https://${call.akvEndpoint}/keys/${call.keyName}`
    return await signReleaseJws(chain.signer, {
      request: { 'api-version': '7.4', enc: 'CKM_RSA_AES_KEY_WRAP', kid: call.keyVersion === null ? keyUrl : `${keyUrl}/${call.keyVersion}` },
      response: { key: { key: { kid: `${keyUrl}/${call.keyVersion ?? VERSION}`, kty: 'oct-HSM', key_ops: ['encrypt', 'decrypt'], key_hsm: keyHsm } } }
    })
  }
}

const tokens: TokenSource = { kind: 'managed identity', getToken: async () => 'aad-token' }

function setup (options: { ttlMs?: number, deps?: Partial<KeyReleaseDeps> } = {}): {
  maa: Maa
  vault: Vault
  service: ReturnType<typeof createKeyReleaseService>
  /** Moves the clock the cache and the service share forward. */
  advance: (ms: number) => void
} {
  const maa = new Maa()
  const vault = new Vault(maa)
  let next = 0
  let clock = Date.now()
  const now = (): Date => new Date(clock)
  const wrappingKey = async (): Promise<WrappingKey> => keyring[next++ % keyring.length] as WrappingKey
  const attestationCache = createAttestationCache({ attestation: maa, wrappingKey, ttlMs: options.ttlMs ?? 300_000, now })
  const service = createKeyReleaseService({ attestation: maa, tokens, release: vault, trustedRoots: () => roots, enc: null, attestationCache, coalesce: true, now, ...options.deps })
  t.teardown(() => { service.close(); attestationCache.close() })
  return { maa, vault, service, advance: (ms) => { clock += ms } }
}

// Past the age below which a refused reused token is never taken for stale.
const AGED = STALE_TOKEN_MIN_AGE_MS + 1_000

const expected = (name: string): Record<string, unknown> => ({ k: secretOf(name).toString('base64url'), key_ops: ['encrypt', 'decrypt'], kty: 'oct' })

function hold (vault: Vault): () => void {
  let open = (): void => {}
  vault.gate = new Promise<void>((resolve) => { open = resolve })
  return () => { vault.gate = null; open() }
}

t.test('10 concurrent identical releases: one attestation, one AKV call, a copy of the JWK each', async (t) => {
  const { maa, vault, service } = setup()
  const open = hold(vault)
  const pending = Array.from({ length: 10 }, async () => await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }))
  await new Promise((resolve) => setImmediate(resolve))
  open()
  const jwks = await Promise.all(pending)
  t.equal(vault.calls.length, 1)
  t.equal(maa.calls, 1)
  for (const jwk of jwks) t.same(jwk, expected('k'))
  t.not(jwks[0], jwks[1], 'distinct objects')
  ;(jwks[0] as Record<string, unknown>)['k'] = 'mutated'
  t.same(jwks[1], expected('k'), 'one caller cannot touch another\'s copy')

  // Different keys or versions are different releases.
  await Promise.all([
    service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }),
    service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: `k/${VERSION}` }),
    service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'other' })
  ])
  t.equal(vault.calls.length, 4)
  t.equal(maa.calls, 1, 'and all reuse the one attestation')
})

t.test('releases carrying access tokens are never coalesced (not even with the same token)', async (t) => {
  const { vault, service } = setup()
  const open = hold(vault)
  const pending = Array.from({ length: 10 }, async (_v, i) => await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k', accessToken: `caller-${i % 5}` }))
  await new Promise((resolve) => setImmediate(resolve))
  open()
  await Promise.all(pending)
  t.equal(vault.calls.length, 10)
  t.same(vault.calls.map((c) => c.accessToken).sort(), ['caller-0', 'caller-0', 'caller-1', 'caller-1', 'caller-2', 'caller-2', 'caller-3', 'caller-3', 'caller-4', 'caller-4'])
})

t.test('a coalesced failure reaches every waiter and is not remembered', async (t) => {
  const { vault, service } = setup()
  vault.fail.set('k', new UpstreamUnavailable('akv: HTTP 503'))
  const open = hold(vault)
  const pending = Array.from({ length: 3 }, async () => await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }).catch((e: unknown) => e))
  await new Promise((resolve) => setImmediate(resolve))
  open()
  for (const err of await Promise.all(pending)) t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', message: 'release: akv: HTTP 503' })
  t.equal(vault.calls.length, 1)
  vault.fail.delete('k')
  t.same(await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }), expected('k'))
  t.equal(vault.calls.length, 2)
})

t.test('a caller that gives up leaves the others waiting on the shared release', async (t) => {
  const { vault, service } = setup()
  const open = hold(vault)
  const leaving = new AbortController()
  const left = service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }, leaving.signal)
  const staying = service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' })
  await new Promise((resolve) => setImmediate(resolve))
  leaving.abort(new Error('deadline'))
  await t.rejects(left, { message: 'deadline' })
  open()
  t.same(await staying, expected('k'))
  t.equal(vault.calls.length, 1)
})

t.test('a token the vault stopped accepting: evicted and re-attested once, transparently', async (t) => {
  const { maa, vault, service, advance } = setup()
  await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' })
  const first = vault.calls[0]?.target as string
  vault.stale.add(first)
  advance(AGED)
  t.same(await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }), expected('k'))
  t.equal(maa.calls, 2, 'one re-attestation')
  t.equal(vault.calls.length, 3)
  t.not(vault.calls[2]?.target, first, 'retried with the new token')
  await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' })
  t.equal(maa.calls, 2, 'the new entry is reused from then on')
})

t.test('a policy denial: at most one re-attestation, then remembered; other keys keep reusing', async (t) => {
  const { maa, vault, service, advance } = setup()
  await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'ok' })
  vault.refuse.add('nope')
  advance(AGED)
  await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'nope' }), { code: 'ERR_KEY_RELEASE_DENIED', statusCode: 403, message: `release: ${DENIED}` })
  t.equal(maa.calls, 2, 'a reused token was refused: one fresh attempt')
  t.equal(vault.calls.length, 3)
  await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'nope' }), { code: 'ERR_KEY_RELEASE_DENIED' })
  t.equal(maa.calls, 2, 'refused under a fresh token before: not retried again')
  t.equal(vault.calls.length, 4)
  await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'ok' })
  t.equal(maa.calls, 2)

  // A refusal under a token attested for that very request is never retried.
  const fresh = setup()
  fresh.vault.refuse.add('nope')
  await t.rejects(fresh.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'nope' }), { code: 'ERR_KEY_RELEASE_DENIED' })
  t.equal(fresh.maa.calls, 1)
  t.equal(fresh.vault.calls.length, 1)
})

t.test('refusals under a token younger than a minute are the policy\'s answer: alternating denied keys force no re-attestation', async (t) => {
  const { maa, vault, service, advance } = setup()
  await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'ok' })
  vault.refuse.add('no-a')
  vault.refuse.add('no-b')
  for (let i = 0; i < 10; i++) {
    await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: i % 2 === 0 ? 'no-a' : 'no-b' }), { code: 'ERR_KEY_RELEASE_DENIED' })
  }
  t.equal(maa.calls, 1, 'the shared attestation survived ten denials')
  t.same(await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'ok' }), expected('ok'))
  t.equal(maa.calls, 1)
  // Once the token is older, keys it was refused for stay refused without a retry; a refusal of
  // another key may mean it went stale: one re-attestation, and the fresh entry is young again.
  advance(AGED)
  await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'no-a' }), { code: 'ERR_KEY_RELEASE_DENIED' })
  t.equal(maa.calls, 1, 'remembered refusals are not retried')
  vault.refuse.add('no-c')
  vault.refuse.add('no-d')
  for (let i = 0; i < 10; i++) {
    await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: i % 2 === 0 ? 'no-c' : 'no-d' }), { code: 'ERR_KEY_RELEASE_DENIED' })
  }
  t.equal(maa.calls, 2, 'one re-attestation for ten denials of new keys')
})

t.test('refusals that no token can fix are never retried', async (t) => {
  const cases = [
    new KeyReleaseDenied('AKV denied the key release: Forbidden: The key is not exportable or has no release policy.', { details: { upstreamStatus: 403, upstreamInnerCode: 'KeyNotExportable' } }),
    new AccessDenied('AKV rejected the access token: Unauthorized: AKV10000: Request is missing a Bearer or PoP token.', { details: { upstreamStatus: 401 } }),
    new KeyNotFound('AKV has no key k: KeyNotFound')
  ]
  for (const error of cases) {
    const { maa, vault, service } = setup()
    await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'warm' })
    vault.fail.set('k', error)
    await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }), { code: error.code })
    t.equal(maa.calls, 1, `${error.code}: no re-attestation`)
    t.equal(vault.calls.length, 2, `${error.code}: no second AKV call`)
  }
})

t.test('ttl 0: every release attests, and a refusal is never retried', async (t) => {
  const { maa, vault, service } = setup({ ttlMs: 0 })
  for (let i = 0; i < 3; i++) await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' })
  t.equal(maa.calls, 3)
  vault.refuse.add('nope')
  await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'nope' }), { code: 'ERR_KEY_RELEASE_DENIED' })
  t.equal(maa.calls, 4)
  t.equal(vault.calls.length, 4)
})

t.test('batch: one attestation for every kid, per-kid keys and errors in request order', async (t) => {
  const { maa, vault, service } = setup({ ttlMs: 0 })
  vault.fail.set('missing', new KeyNotFound('AKV has no key missing: KeyNotFound'))
  vault.refuse.add('nope')
  const result = await service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['b', 'missing', `a/${VERSION}`, 'nope', 'bad/kid/x'] })
  t.equal(maa.calls, 1, 'one attestation shared by the batch, even with ttl 0')
  t.equal(vault.calls.length, 4, 'the malformed kid never reached the vault')
  t.same(Object.keys(result.keys), ['b', `a/${VERSION}`])
  t.same(result.keys['b'], expected('b'))
  t.same(result.keys[`a/${VERSION}`], expected('a'))
  t.same(Object.keys(result.errors), ['missing', 'nope', 'bad/kid/x'])
  t.match(result.errors['missing'], { code: 'ERR_KEY_NOT_FOUND', message: /^release: AKV has no key missing/ })
  t.match(result.errors['nope'], { code: 'ERR_KEY_RELEASE_DENIED' })
  t.match(result.errors['bad/kid/x'], { code: 'ERR_REQUEST_INVALID' })
})

t.test('batch: releases run concurrently, at most batchConcurrency at a time', async (t) => {
  const { vault, service } = setup({ deps: { batchConcurrency: 2 } })
  const open = hold(vault)
  const pending = service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['a', 'b', 'c', 'd', 'e'] })
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(vault.calls.length, 2, 'two in flight')
  open()
  const result = await pending
  t.equal(Object.keys(result.keys).length, 5)
  t.equal(vault.calls.length, 5)
})

t.test('batch: malformed batches and a failed attestation reject as a whole', async (t) => {
  const { maa, service } = setup({ deps: { maxBatch: 3 } })
  await t.rejects(service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: [] }), { code: 'ERR_REQUEST_INVALID', message: 'kids must list 1 to 3 key ids, got 0' })
  await t.rejects(service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['a', 'b', 'c', 'd'] }), { code: 'ERR_REQUEST_INVALID', message: 'kids must list 1 to 3 key ids, got 4' })
  await t.rejects(service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['a', 'a'] }), { code: 'ERR_REQUEST_INVALID', message: 'kids must not list a key id twice' })
  t.equal(maa.calls, 0)
  maa.failWith = new UpstreamUnavailable('maa: HTTP 503')
  await t.rejects(service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['a'] }), { code: 'ERR_UPSTREAM_UNAVAILABLE', message: 'attestation: maa: HTTP 503' })
  const only = await service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['x/y/z'] })
  t.same(Object.keys(only.keys), [])
  t.same(Object.keys(only.errors), ['x/y/z'], 'nothing valid to release: no attestation needed')
  await t.rejects(service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['a'] }, AbortSignal.abort(new Error('gone'))), { message: 'gone' })
})

t.test('batch: a stale reused token is re-attested once for the whole batch', async (t) => {
  const { maa, vault, service, advance } = setup()
  await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'warm' })
  vault.stale.add(vault.calls[0]?.target as string)
  advance(AGED)
  const result = await service.releaseMany({ maaEndpoint: MAA, akvEndpoint: VAULT, kids: ['a', 'b', 'c'] })
  t.same(Object.keys(result.keys), ['a', 'b', 'c'])
  t.equal(maa.calls, 2, 'the kids shared one re-attestation')
})
