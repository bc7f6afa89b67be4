// End to end over real HTTPS on loopback: simulated SEV-SNP attestation → the MAA emulator → the
// IMDS double (managed identity) → the AKV / mHSM emulators, through buildAttestation and
// buildKeyRelease exactly as `skr serve` wires them, and once through the HTTP route.
import t from 'tap'
import dns from 'node:dns'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { buildAttestation } from '../../src/app/attestation.ts'
import { loadConfig } from '../../src/config/config.ts'
import type { CorruptJwsMode } from '../../src/emulator/akv-faults.ts'
import { startAkvEmulator } from '../../src/emulator/akv.ts'
import type { EmulatedKey } from '../../src/emulator/akv-key-types.ts'
import { startEmulatedEnvironment } from '../../src/emulator/environment.ts'
import { buildApp } from '../../src/server/app.ts'
import { buildKeyRelease } from '../../src/app/release.ts'
import { NO_SHEDDING } from '../doubles/fake-services.ts'

// The mHSM emulator must be reached under a managedhsm-shaped name (that is how skr picks the
// token audience), without touching /etc/hosts: names under .skr.test resolve to loopback in
// this test process only; names under .nx.skr.test do not exist (NXDOMAIN, as getaddrinfo reports it).
const MHSM_HOST = 'myhsm.managedhsm.skr.test'
const originalLookup = dns.lookup
const patchedLookup = function (this: unknown, host: string, options: unknown, callback?: unknown): void {
  const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void
  const opts = (typeof options === 'object' && options !== null ? options : {}) as { all?: boolean }
  if (typeof host === 'string' && host.endsWith('.nx.skr.test')) {
    process.nextTick(() => { cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host })) })
    return
  }
  if (typeof host === 'string' && host.endsWith('.skr.test')) {
    if (opts.all === true) cb(null, [{ address: '127.0.0.1', family: 4 }])
    else cb(null, '127.0.0.1', 4)
    return
  }
  ;(originalLookup as (...args: unknown[]) => void).call(this, host, options, callback)
}
;(dns as { lookup: unknown }).lookup = patchedLookup
t.teardown(() => { (dns as { lookup: unknown }).lookup = originalLookup })

const env = await startEmulatedEnvironment({ cacheDir: join(tmpdir(), 'skr-test-emulated-chain') })
t.teardown(env.close)
// @azure/identity reads the IMDS redirect itself (once per process): this file runs in its own process.
process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = env.imds.url

const mhsm = await startAkvEmulator({
  tls: await env.pki.issue([MHSM_HOST]),
  vaultHosts: [MHSM_HOST],
  kind: 'mhsm',
  tokenVerifier: env.bearer.verify,
  maaCa: env.pki.caCertPem
})
t.teardown(mhsm.close)
const mhsmEndpoint = `${MHSM_HOST}:${mhsm.endpoint.split(':')[1] ?? ''}`

const logLines: string[] = []
const log = pino({ level: 'trace' }, new Writable({ write (chunk: Buffer, _e, cb) { logLines.push(chunk.toString()); cb() } }))
const config = loadConfig([], env.skrEnv())
const attestation = await buildAttestation(config, { extraCa: [...env.extraCa], log })
t.teardown(async () => {
  attestation.service.close()
  await Promise.all(Object.values(attestation.upstreams).map(async (u) => { await u.close() }))
})
await attestation.ready
const keyRelease = await buildKeyRelease(config, attestation.service, { extraCa: [...env.extraCa, mhsm.signerRootPem], log })
t.teardown(keyRelease.close)

const policy = { exportable: true, releasePolicy: { data: Buffer.from(JSON.stringify(env.releasePolicy())).toString('base64url') } }
const oct = await env.akv.store.createKey('oct-key', { kty: 'oct-HSM', size: 256, ...policy })
const rsa = await env.akv.store.createKey('rsa-key', { kty: 'RSA-HSM', size: 2048, ...policy })
const ec = await env.akv.store.createKey('ec-key', { kty: 'EC-HSM', crv: 'P-256', ...policy })
const otherHost = Buffer.from(JSON.stringify(env.releasePolicy('00'.repeat(32)))).toString('base64url')
await env.akv.store.createKey('other-workload', { kty: 'oct-HSM', exportable: true, releasePolicy: { data: otherHost } })
const hsmKey = await mhsm.store.createKey('hsm-key', { kty: 'oct-HSM', ...policy })

const vault = env.akv.endpoint
const maa = env.maa.endpoint
const released: string[] = []

/** The private JWK members the emulator holds for a key (what a release must reproduce). */
function materialOf (key: EmulatedKey): Record<string, unknown> {
  if (Buffer.isBuffer(key.material)) return { kty: 'oct', k: key.material.toString('base64url') }
  return key.material.export({ format: 'jwk' }) as Record<string, unknown>
}

async function release (akvEndpoint: string, kid: string, accessToken?: string): Promise<Record<string, unknown>> {
  const jwk = await keyRelease.release({ maaEndpoint: maa, akvEndpoint, kid, ...(accessToken === undefined ? {} : { accessToken }) })
  released.push(JSON.stringify(jwk))
  return jwk
}

t.test('oct, RSA and EC keys: the JWK material equals the emulator\'s', async (t) => {
  const o = await release(vault, 'oct-key')
  t.same(o, { ...materialOf(oct), key_ops: oct.keyOps })
  const r = await release(vault, 'rsa-key')
  t.match(r, { ...materialOf(rsa), kty: 'RSA' })
  for (const m of ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi']) t.equal(r[m], materialOf(rsa)[m], `RSA ${m}`)
  const e = await release(vault, 'ec-key')
  t.match(e, { ...materialOf(ec), kty: 'EC', crv: 'P-256' })
  t.equal(e['d'], materialOf(ec)['d'])
  t.ok(env.imds.tokenRequests >= 1, 'the vault token came from IMDS')
})

t.test('name/version kids pick that version', async (t) => {
  const newer = await env.akv.store.createKey('oct-key', { kty: 'oct-HSM', size: 256, ...policy })
  t.equal((await release(vault, `oct-key/${oct.version}`))['k'], materialOf(oct)['k'])
  t.equal((await release(vault, `oct-key/${newer.version}`))['k'], materialOf(newer)['k'])
  t.equal((await release(vault, 'oct-key'))['k'], materialOf(newer)['k'], 'no version: the newest')
})

t.test('vault vs mHSM: the mHSM gets a managedhsm token (it refuses a vault one)', async (t) => {
  const before = env.imds.tokenRequests
  t.same(await release(mhsmEndpoint, 'hsm-key'), { ...materialOf(hsmKey), key_ops: hsmKey.keyOps })
  t.equal(env.imds.tokenRequests, before + 1, 'one IMDS request for the managedhsm resource')
  const vaultToken = await env.bearer.mint({ aud: 'https://vault.azure.net' })
  await t.rejects(release(mhsmEndpoint, 'hsm-key', vaultToken), { code: 'ERR_ACCESS_DENIED', statusCode: 403, message: /^release: AKV rejected the access token/ })
})

t.test('the caller\'s access_token is used instead of the identity', async (t) => {
  const before = env.imds.tokenRequests
  const token = await env.bearer.mint({ aud: 'https://vault.azure.net', appid: 'caller-app' })
  t.equal((await release(vault, 'oct-key', token))['kty'], 'oct')
  t.equal(env.imds.tokenRequests, before, 'IMDS not asked')
  await t.rejects(release(vault, 'oct-key', 'not-a-token'), { code: 'ERR_ACCESS_DENIED', message: /^release: AKV rejected the access token: Unauthorized/ })
})

t.test('policy denial and unknown key: 403 with their own codes', async (t) => {
  // The vault's sentence names no claim; skr adds the ones it presented (the emulated UVM's).
  await t.rejects(release(vault, 'other-workload'), {
    code: 'ERR_KEY_RELEASE_DENIED',
    statusCode: 403,
    message: new RegExp('^release: AKV denied the key release: Forbidden: Target environment attestation statement cannot be verified\\. ' +
      `Claims presented: iss="${env.maa.issuer}", x-ms-attestation-type="sevsnpvm", x-ms-compliance-status="azure-compliant-uvm", ` +
      `x-ms-sevsnpvm-hostdata="${env.hostData}", x-ms-sevsnpvm-is-debuggable=false, x-ms-sevsnpvm-vmpl=0, x-ms-sevsnpvm-launchmeasurement="[0-9a-f]{96}"$`)
  })
  await t.rejects(release(vault, 'no-such-key'), { code: 'ERR_KEY_NOT_FOUND', statusCode: 403, message: /^release: AKV has no key no-such-key: KeyNotFound/ })
})

t.test('hostile vault answers never yield a key', async (t) => {
  const expected: Record<CorruptJwsMode, { code: string, status: number, message: RegExp }> = {
    signature: { code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: release JWS signature invalid$/ },
    'x5c-untrusted': { code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: release JWS signer chain does not reach a trusted root$/ },
    'wrong-host': { code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: release JWS signer certificate does not name the vault host$/ },
    // Its empty signature segment already fails the compact-form check, before alg is read.
    'alg-none': { code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: release JWS (is not a compact JWS|alg not allowed)$/ },
    'wrong-kid': { code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: release JWS request\.kid does not name the requested key$/ },
    'wrong-enc': { code: 'ERR_RELEASE_UNVERIFIED', status: 403, message: /^verification: release JWS request\.enc does not match$/ },
    'truncate-ciphertext': { code: 'ERR_KEY_UNWRAP_FAILED', status: 502, message: /^unwrap: key unwrap failed/ }
  }
  t.teardown(() => { delete env.akv.faults.corruptJws })
  for (const [mode, want] of Object.entries(expected) as Array<[CorruptJwsMode, typeof expected[CorruptJwsMode]]>) {
    env.akv.faults.corruptJws = mode
    const err = await release(vault, 'oct-key').then(() => null, (e: unknown) => e as { code: string, statusCode: number, message: string })
    t.ok(err !== null, `${mode}: no key`)
    t.equal(err?.code, want.code, `${mode}: code`)
    t.equal(err?.statusCode, want.status, `${mode}: status`)
    t.match(err?.message, want.message, `${mode}: message`)
  }
})

t.test('through POST /key/release: the reference\'s {"key"} and {"error","code"} shapes', async (t) => {
  const app = buildApp({ config, attestation: attestation.service, keyRelease, backpressure: NO_SHEDDING })
  t.teardown(async () => { await app.close() })
  const ok = await app.inject({ method: 'POST', url: '/key/release', payload: { maa_endpoint: `https://${maa}/`, akv_endpoint: `https://${vault}`, kid: 'rsa-key' } })
  t.equal(ok.statusCode, 200)
  const body = ok.json<{ key: string }>()
  t.same(Object.keys(body), ['key'])
  t.equal((JSON.parse(body.key) as Record<string, unknown>)['d'], materialOf(rsa)['d'])
  released.push(body.key)

  const denied = await app.inject({ method: 'POST', url: '/key/release', payload: { maa_endpoint: maa, akv_endpoint: vault, kid: 'other-workload' } })
  t.equal(denied.statusCode, 403)
  t.match(denied.json(), { error: /^release: AKV denied the key release: .* Claims presented: .*x-ms-sevsnpvm-hostdata="[0-9a-f]{64}"/, code: 'ERR_KEY_RELEASE_DENIED' })
  t.notMatch(denied.body, /eyJ[\w-]{10,}\.[\w-]{10,}/, 'claims, never the token')
})

t.test('a vault host that does not exist: 502 ERR_UPSTREAM_NOT_FOUND after one attempt, the host named in the body', async (t) => {
  const nx = 'myvaultt.nx.skr.test'
  await t.rejects(release(nx, 'oct-key'), {
    code: 'ERR_UPSTREAM_NOT_FOUND',
    statusCode: 502,
    message: `release: akv ${nx}: host name not found (ENOTFOUND) after 1 attempt`,
    details: { step: 'release', upstream: 'akv', host: nx, errorCode: 'ENOTFOUND', attempts: 1 }
  })
  // Through the route, with the name allowed (the default allow-list would refuse it first).
  const allowing = loadConfig([], { ...env.skrEnv(), SKR_ALLOWED_HOSTS: `${maa},${vault},.nx.skr.test` })
  const app = buildApp({ config: allowing, attestation: attestation.service, keyRelease, backpressure: NO_SHEDDING })
  t.teardown(async () => { await app.close() })
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: { maa_endpoint: maa, akv_endpoint: nx, kid: 'oct-key' } })
  t.equal(res.statusCode, 502)
  t.match(res.json(), { error: `upstream host not found (step: release, upstream: akv ${nx}, error ENOTFOUND)`, code: 'ERR_UPSTREAM_NOT_FOUND' })
  t.equal(res.headers['retry-after'], undefined)
})

t.test('no token, JWS or released key material in any log line', async (t) => {
  const text = logLines.join('')
  t.ok(text.length > 0, 'log lines captured')
  t.ok(released.length > 0, `${released.length} released keys to look for`)
  t.notMatch(text, /eyJ[\w-]{10,}\.[\w-]{10,}/, 'nothing JWT-shaped')
  for (const jwk of released) {
    const parsed = JSON.parse(jwk) as Record<string, unknown>
    for (const m of ['k', 'd', 'p', 'q']) {
      const v = parsed[m]
      if (typeof v === 'string') t.notOk(text.includes(v), `released ${m} not logged`)
    }
  }
})
