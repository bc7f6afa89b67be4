import t from 'tap'
import crypto, { X509Certificate } from 'node:crypto'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { buildKeyHsm } from '../../../src/akv/key-hsm.ts'
import type { ReleaseEnc } from '../../../src/akv/key-hsm.ts'
import type { ReleaseCall, ReleaseClient } from '../../../src/akv/release-client.ts'
import { wrapForRelease } from '../../../src/akv/wrap.ts'
import { createSignerChain, signReleaseJws } from '../../../src/emulator/signer-chain.ts'
import type { SignerChain } from '../../../src/emulator/signer-chain.ts'
import {
  IdentityUnavailable, KeyReleaseDenied, MaaTokenInvalid, UpstreamTimeout, UpstreamUnavailable
} from '../../../src/errors.ts'
import type { TokenSource } from '../../../src/identity/token-source.ts'
import { createKeyReleaseService, inStep } from '../../../src/release/key-release.ts'
import type { KeyReleaseDeps } from '../../../src/release/key-release.ts'
import { FAKE_TOKEN, FakeAttestationService } from '../../doubles/fake-services.ts'

const VAULT = 'myvault.vault.azure.net'
const HSM = 'myhsm.managedhsm.azure.net'
const MAA = 'sharedeus.eus.attest.azure.net'
const AAD_TOKEN = 'eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCJ9.aad-signature-SECRET'
const CALLER_TOKEN = 'eyJ0eXAiOiJKV1QifQ.eyJjYWxsZXIiOnRydWV9.caller-signature-SECRET'
const SECRET = crypto.randomBytes(32)
const VERSION = '0123456789abcdef0123456789abcdef'

const chain = await createSignerChain({ hosts: [VAULT, HSM] })
const untrusted = await createSignerChain({ hosts: [VAULT, HSM], label: 'untrusted' })
const roots = [new X509Certificate(chain.rootPem)]

/** The algorithm the in-process vault wraps with (what it was asked for). */
let currentEnc: ReleaseEnc = 'CKM_RSA_AES_KEY_WRAP'

/** How the in-process "vault" misbehaves. */
interface VaultFaults {
  error?: unknown
  signer?: SignerChain
  headerKid?: string
  headerEnc?: ReleaseEnc
  wrapTo?: crypto.KeyObject
  truncate?: boolean
  kty?: string
  keyHsm?: string
}

/** A release client that behaves like a vault: wraps SECRET to the attested JWKS key and signs the answer. */
function fakeVault (attestation: FakeAttestationService): ReleaseClient & { calls: ReleaseCall[], faults: VaultFaults, jws: string[] } {
  const calls: ReleaseCall[] = []
  const jws: string[] = []
  const faults: VaultFaults = {}
  return {
    calls,
    faults,
    jws,
    release: async (call) => {
      calls.push(call)
      if (faults.error !== undefined) throw faults.error
      const runtime = attestation.calls.at(-1)?.runtimeData ?? Buffer.alloc(0)
      const jwk = (JSON.parse(runtime.toString('utf8')) as { keys: Array<{ kid: string, n: string, e: string }> }).keys[0]
      if (jwk === undefined) throw new Error('no wrapping key attested')
      const publicKey = crypto.createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' })
      const enc = currentEnc
      let ciphertext = wrapForRelease(SECRET, enc, faults.wrapTo ?? publicKey)
      if (faults.truncate === true) ciphertext = ciphertext.subarray(0, ciphertext.length - 8)
      const keyHsm = faults.keyHsm ?? buildKeyHsm({ kid: faults.headerKid ?? jwk.kid, enc: faults.headerEnc ?? enc, ciphertext })
      const keyUrl = `https://${call.akvEndpoint}/keys/${call.keyName}`
      const payload = {
        request: { 'api-version': '7.4', enc, kid: call.keyVersion === null ? keyUrl : `${keyUrl}/${call.keyVersion}` },
        response: { key: { key: { kid: `${keyUrl}/${call.keyVersion ?? VERSION}`, kty: faults.kty ?? 'oct-HSM', key_ops: ['encrypt', 'decrypt'], key_hsm: keyHsm } } }
      }
      const signed = await signReleaseJws((faults.signer ?? chain).signer, payload)
      jws.push(signed)
      return signed
    }
  }
}

function fakeTokens (): TokenSource & { asked: string[], error?: unknown } {
  const source: TokenSource & { asked: string[], error?: unknown } = {
    kind: 'managed identity',
    asked: [],
    getToken: async (resource) => {
      source.asked.push(resource)
      if (source.error !== undefined) throw source.error
      return AAD_TOKEN
    }
  }
  return source
}

function setup (extra: Partial<KeyReleaseDeps> = {}): {
  service: ReturnType<typeof createKeyReleaseService>
  attestation: FakeAttestationService
  tokens: ReturnType<typeof fakeTokens>
  vault: ReturnType<typeof fakeVault>
  logs: string[]
} {
  const attestation = new FakeAttestationService()
  const tokens = fakeTokens()
  const vault = fakeVault(attestation)
  const logs: string[] = []
  const log = pino({ level: 'trace' }, new Writable({ write (chunk: Buffer, _e, cb) { logs.push(chunk.toString()); cb() } }))
  const service = createKeyReleaseService({ attestation, tokens, release: vault, trustedRoots: () => roots, enc: null, log, ...extra })
  return { service, attestation, tokens, vault, logs }
}

/** Every secret a message or log line must never contain. */
function secretsIn (text: string, vault: ReturnType<typeof fakeVault>): string[] {
  const secrets = [AAD_TOKEN, CALLER_TOKEN, FAKE_TOKEN, SECRET.toString('base64url'), SECRET.toString('hex'), SECRET.toString('base64'), 'SECRET', ...vault.jws]
  return secrets.filter((s) => text.includes(s))
}

t.test('success: wrapping key → MAA token → AAD token → release → verify → unwrap → JWK', async (t) => {
  const { service, attestation, tokens, vault, logs } = setup()
  const jwk = await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'mykey' })
  t.same(jwk, { k: SECRET.toString('base64url'), key_ops: ['encrypt', 'decrypt'], kty: 'oct' })
  t.same(Object.keys(jwk), ['k', 'key_ops', 'kty'])

  const attest = attestation.calls[0]
  t.equal(attest?.op, 'maaToken')
  t.equal(attest?.maaEndpoint, MAA)
  t.match(attest?.runtimeData?.toString(), /^\{"keys":\[\{"e":"AQAB","key_ops":\["encrypt"\],"kid":"[\w-]{43}","kty":"RSA","n":"[\w-]+"\}\]\}$/)
  t.same(tokens.asked, ['https://vault.azure.net'])
  const call = vault.calls[0]
  t.match(call, { akvEndpoint: VAULT, keyName: 'mykey', keyVersion: null, target: FAKE_TOKEN, accessToken: AAD_TOKEN })
  t.type(call?.tokenFor, 'function', 'our own identity may answer a challenge')
  t.same(secretsIn(logs.join(''), vault), [], 'no token, JWS or key in the logs')
  t.match(logs.join(''), /"keyName":"mykey"/)
  t.match(logs.join(''), /key released/)
})

t.test('mHSM endpoint → managedhsm token; name/version kid; each release its own wrapping key', async (t) => {
  const { service, attestation, tokens, vault } = setup()
  await service.release({ maaEndpoint: MAA, akvEndpoint: HSM, kid: `k/${VERSION}` })
  await service.release({ maaEndpoint: MAA, akvEndpoint: HSM, kid: 'k' })
  t.same(tokens.asked, ['https://managedhsm.azure.net', 'https://managedhsm.azure.net'])
  t.equal(vault.calls[0]?.keyVersion, VERSION)
  t.not(attestation.calls[0]?.runtimeData?.toString(), attestation.calls[1]?.runtimeData?.toString())
})

t.test('the caller\'s access_token is used as is and never swapped for ours', async (t) => {
  const { service, tokens, vault } = setup()
  await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k', accessToken: CALLER_TOKEN })
  t.same(tokens.asked, [])
  t.equal(vault.calls[0]?.accessToken, CALLER_TOKEN)
  t.equal(vault.calls[0]?.tokenFor, undefined)
})

t.test('configured enc is what verification and unwrap expect', async (t) => {
  currentEnc = 'RSA_AES_KEY_WRAP_256'
  t.teardown(() => { currentEnc = 'CKM_RSA_AES_KEY_WRAP' })
  const ok = setup({ enc: 'RSA_AES_KEY_WRAP_256' })
  t.same((await ok.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }))['k'], SECRET.toString('base64url'))
  const mismatch = setup({ enc: 'RSA_AES_KEY_WRAP_384' })
  await t.rejects(mismatch.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }),
    { code: 'ERR_RELEASE_UNVERIFIED', message: 'verification: release JWS request.enc does not match' })
})

interface Case {
  name: string
  arrange: (s: ReturnType<typeof setup>) => void | Promise<void>
  code: string
  status: number
  message: RegExp
  deps?: Partial<KeyReleaseDeps>
}

const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey
const cases: Case[] = [
  { name: 'wrapping key generation', arrange: () => {}, deps: { wrappingKey: async () => { throw new TypeError(`boom ${AAD_TOKEN}`) } }, code: 'ERR_INTERNAL', status: 500, message: /^wrapping key: internal error$/ },
  { name: 'MAA down', arrange: (s) => { s.attestation.mode = { kind: 'fail', error: new UpstreamUnavailable('maa sharedeus.eus.attest.azure.net: HTTP 503 after 4 attempts', { details: { upstream: 'maa', upstreamStatus: 503 } }) } }, code: 'ERR_UPSTREAM_UNAVAILABLE', status: 503, message: /^attestation: maa sharedeus\.eus\.attest\.azure\.net: HTTP 503/ },
  { name: 'MAA token invalid', arrange: (s) => { s.attestation.mode = { kind: 'fail', error: new MaaTokenInvalid('MAA token signature invalid') } }, code: 'ERR_MAA_TOKEN_INVALID', status: 502, message: /^attestation: MAA token signature invalid$/ },
  { name: 'identity unavailable', arrange: (s) => { s.tokens.error = new IdentityUnavailable('managed identity token request failed: IMDS answered 400 invalid_request: Identity not found (is the identity assigned to the container group? client_id abc)') }, code: 'ERR_IDENTITY_UNAVAILABLE', status: 503, message: /^identity: managed identity token request failed: IMDS answered 400/ },
  { name: 'policy denial', arrange: (s) => { s.vault.faults.error = new KeyReleaseDenied('AKV denied the key release: Forbidden: Target environment attestation statement cannot be verified.') }, code: 'ERR_KEY_RELEASE_DENIED', status: 403, message: /^release: AKV denied the key release: Forbidden: Target environment attestation statement cannot be verified\. Claims presented: iss absent, x-ms-attestation-type="sevsnpvm", x-ms-compliance-status absent, /u },
  { name: 'AKV timeout', arrange: (s) => { s.vault.faults.error = new UpstreamTimeout('akv myvault.vault.azure.net: no answer within the 30000 ms deadline after 2 attempts') }, code: 'ERR_UPSTREAM_TIMEOUT', status: 504, message: /^release: akv myvault/ },
  { name: 'release client bug', arrange: (s) => { s.vault.faults.error = new Error(`oops ${AAD_TOKEN}`) }, code: 'ERR_INTERNAL', status: 500, message: /^release: internal error$/ },
  { name: 'untrusted signer chain', arrange: (s) => { s.vault.faults.signer = untrusted }, code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: release JWS signer chain does not reach a trusted root$/ },
  { name: 'key_hsm wrapped to another kid', arrange: (s) => { s.vault.faults.headerKid = 'someone-elses-key' }, code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: key_hsm is not wrapped to this release's wrapping key/ },
  { name: 'key_hsm header.enc differs', arrange: (s) => { s.vault.faults.headerEnc = 'RSA_AES_KEY_WRAP_384' }, code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: key_hsm header\.enc "RSA_AES_KEY_WRAP_384" is not the requested CKM_RSA_AES_KEY_WRAP$/ },
  { name: 'malformed key_hsm', arrange: (s) => { s.vault.faults.keyHsm = 'not!base64' }, code: 'ERR_KEY_UNWRAP_FAILED', status: 502, message: /^verification: key_hsm envelope malformed/ },
  { name: 'truncated ciphertext', arrange: (s) => { s.vault.faults.truncate = true }, code: 'ERR_KEY_UNWRAP_FAILED', status: 502, message: /^unwrap: key unwrap failed: / },
  { name: 'wrapped to another RSA key', arrange: (s) => { s.vault.faults.wrapTo = otherKey }, code: 'ERR_KEY_UNWRAP_FAILED', status: 502, message: /^unwrap: key unwrap failed: RSA-OAEP decryption$/ },
  { name: 'unsupported kty', arrange: (s) => { s.vault.faults.kty = 'OKP' }, code: 'ERR_KEY_UNWRAP_FAILED', status: 502, message: /^unwrap: released key material invalid: unsupported kty$/ },
  { name: 'bad kid', arrange: () => {}, code: 'ERR_REQUEST_INVALID', status: 400, message: /^kid must be/ }
]

t.test('each failing step keeps its code and status, and its message starts with the step', async (t) => {
  for (const c of cases) {
    const s = setup(c.deps)
    await c.arrange(s)
    const err = await s.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: c.name === 'bad kid' ? 'a/b/c' : 'k' }).then(
      () => null,
      (e: unknown) => e as Error & { code: string, statusCode: number, details: Record<string, unknown>, cause?: unknown }
    )
    if (err === null) { t.fail(`${c.name}: released a key`); continue }
    t.equal(err.code, c.code, `${c.name}: code`)
    t.equal(err.statusCode, c.status, `${c.name}: status`)
    t.match(err.message, c.message, `${c.name}: message`)
    if (c.code !== 'ERR_REQUEST_INVALID') {
      t.equal(err.details['step'], err.message.split(':')[0], `${c.name}: details.step`)
      t.ok(err.cause !== undefined, `${c.name}: the original is the cause`)
    }
    t.same(secretsIn(`${err.message} ${JSON.stringify(err.details)}`, s.vault), [], `${c.name}: no secret in the message`)
    t.same(secretsIn(s.logs.join(''), s.vault), [], `${c.name}: no secret in the logs`)
  }
})

t.test('a policy denial names the claims the token presented, never the token', async (t) => {
  const claims = {
    iss: `https://${MAA}`,
    'x-ms-attestation-type': 'sevsnpvm',
    'x-ms-compliance-status': 'azure-compliant-uvm',
    'x-ms-sevsnpvm-hostdata': 'ab'.repeat(32),
    'x-ms-sevsnpvm-is-debuggable': false,
    'x-ms-sevsnpvm-vmpl': 0,
    'x-ms-sevsnpvm-launchmeasurement': 'cd'.repeat(48),
    'x-ms-runtime': { keys: [{ kid: 'wrapping', n: 'PUBLIC-MODULUS' }] },
    nonce: '12345'
  }
  const token = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2lnbmF0dXJlLVNFQ1JFVA`
  const denied = 'AKV denied the key release: Forbidden: Target environment attestation statement cannot be verified.'
  const s = setup()
  s.attestation.token = token
  s.vault.faults.error = new KeyReleaseDenied(denied, { details: { upstream: 'akv', upstreamStatus: 403, upstreamCode: 'Forbidden', upstreamInnerCode: 'AccessDenied' } })
  const err = await s.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }).then(() => { throw new Error('released') }, (e: unknown) => e as KeyReleaseDenied)
  t.equal(err.code, 'ERR_KEY_RELEASE_DENIED')
  t.equal(err.message, `release: ${denied} Claims presented: iss="https://${MAA}", x-ms-attestation-type="sevsnpvm", ` +
    `x-ms-compliance-status="azure-compliant-uvm", x-ms-sevsnpvm-hostdata="${'ab'.repeat(32)}", x-ms-sevsnpvm-is-debuggable=false, ` +
    `x-ms-sevsnpvm-vmpl=0, x-ms-sevsnpvm-launchmeasurement="${'cd'.repeat(48)}"`)
  t.match(err.details, { step: 'release', upstreamInnerCode: 'AccessDenied', claimsShown: true })
  for (const secret of [token, token.split('.')[2] ?? '', 'PUBLIC-MODULUS', '12345']) t.notOk(err.message.includes(secret), 'no token, signature, runtime key or nonce')
  t.same(secretsIn(s.logs.join(''), s.vault), [])

  // Not a policy denial: the vault's answer passes unchanged.
  for (const other of [
    new KeyReleaseDenied('AKV denied the key release: Forbidden: key is not exportable', { details: { upstreamInnerCode: 'KeyNotExportable' } }),
    new UpstreamUnavailable('akv myvault.vault.azure.net: HTTP 503 after 4 attempts')
  ]) {
    const o = setup()
    o.attestation.token = token
    o.vault.faults.error = other
    const e = await o.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }).then(() => { throw new Error('released') }, (x: unknown) => x as Error)
    t.equal(e.message, `release: ${other.message}`, `${other.code}: no claims appended`)
  }
})

t.test('the original details survive the relabelling', async (t) => {
  const s = setup()
  s.attestation.mode = { kind: 'fail', error: new UpstreamUnavailable('maa x: HTTP 503', { details: { upstream: 'maa', upstreamStatus: 503 } }) }
  const err = await s.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }).catch((e: unknown) => e)
  t.type(err, UpstreamUnavailable)
  t.same({ ...(err as UpstreamUnavailable).details }, { upstream: 'maa', upstreamStatus: 503, step: 'attestation' })
})

t.test('the caller\'s cancellation surfaces unchanged (the route maps it)', async (t) => {
  const s = setup()
  s.attestation.mode = { kind: 'hang', honourSignal: true }
  const controller = new AbortController()
  const pending = s.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }, controller.signal)
  while (s.attestation.calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  controller.abort(new UpstreamTimeout('request deadline exceeded'))
  await t.rejects(pending, { name: 'AbortError' }, 'what the aborted dependency threw, not relabelled')
  t.equal(s.attestation.calls[0]?.signal, controller.signal, 'the signal reached attestation')

  const reason = new UpstreamTimeout('request deadline exceeded')
  const gone = setup()
  await t.rejects(gone.service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'k' }, AbortSignal.abort(reason)), reason, 'no step starts after the abort')
  t.equal(gone.attestation.calls.length, 0)
  t.equal(inStep('release', reason, AbortSignal.abort(reason)), reason, 'the abort reason itself is not relabelled')
  const other = inStep('release', new KeyReleaseDenied('x'), AbortSignal.abort(reason))
  t.match(other, { code: 'ERR_KEY_RELEASE_DENIED', message: 'release: x' }, 'a real answer that raced the abort keeps its meaning')
})

t.test('a key_hsm header without kid is accepted (it is informational); a different kid is not', async (t) => {
  const { service, vault } = setup()
  vault.faults.headerKid = ''
  t.same(await service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'mykey' }), { k: SECRET.toString('base64url'), key_ops: ['encrypt', 'decrypt'], kty: 'oct' })
  vault.faults.headerKid = 'another-kid'
  await t.rejects(service.release({ maaEndpoint: MAA, akvEndpoint: VAULT, kid: 'mykey' }), { code: 'ERR_RELEASE_UNVERIFIED' })
})
