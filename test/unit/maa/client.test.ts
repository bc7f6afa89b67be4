import 'reflect-metadata'
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as x509 from '@peculiar/x509'
import { SignJWT } from 'jose'
import t from 'tap'
import { AMD_ARK_FINGERPRINTS } from '../../../src/certs/amd-roots.ts'
import { loadOrCreateEmulatedChain } from '../../../src/simulated/emulated-chain-cache.ts'
import { startMaaEmulator } from '../../../src/emulator/maa.ts'
import type { MaaEmulatorOptions } from '../../../src/emulator/maa.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { Upstream } from '../../../src/http/upstream.ts'
import { createMaaClient, DEFAULT_MAA_API_VERSION } from '../../../src/maa/client.ts'
import type { MaaClientOptions } from '../../../src/maa/client.ts'
import { buildAttestBody } from '../../../src/maa/request.ts'
import { verifyMaaToken } from '../../../src/maa/token.ts'
import { createJwksCache } from '../../../src/maa/jwks-cache.ts'
import { reportDataFor } from '../../../src/snp/report-data.ts'
import { createSimulatedProvider, simulatedMeasurement } from '../../../src/simulated/provider.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

const pki = await createLocalPki()
const tls = await pki.issue(['127.0.0.1'])
const upstream = new Upstream({ name: 'maa', ca: pki.caCertPem, policy: { maxRetries: 0 } })
t.teardown(async () => { await upstream.close() })

const chain = await loadOrCreateEmulatedChain({ cacheDir: join(tmpdir(), 'skr-test-emulated-chain') })
const simOptions = { chain, securityPolicy: 'allow all', measurementSeed: 'maa-client-test' }
const provider = createSimulatedProvider(simOptions)
const jwksText = JSON.stringify({ keys: [{ e: 'AQAB', key_ops: ['encrypt'], kid: 'wrap', kty: 'RSA', n: 'abc' }] })
const runtimeData = Buffer.from(jwksText)
const { report } = await provider.getReport(reportDataFor(runtimeData), 0)
const vcekCertChainPem = chain.vcekPem + chain.chainPem
const input = { report, vcekCertChainPem, runtimeData }

const emulatorOptions: MaaEmulatorOptions = { tls, trustedArkFingerprints: [chain.arkFingerprint] }
const emulator = await startMaaEmulator(emulatorOptions)
t.teardown(emulator.close)

const client = (over: Partial<MaaClientOptions> = {}): ReturnType<typeof createMaaClient> =>
  createMaaClient({ upstream, apiVersion: DEFAULT_MAA_API_VERSION, userAgent: 'skr-test/1.0', verifyToken: true, ...over })

// ---- a scripted MAA: records what the client sends, answers what the test says ---------------
// Set up before the first subtest: tap ends the root test once its queued subtests are done, so
// a subtest created after a slow top-level await (RSA generation on a busy machine) would be
// refused ("cannot create subtest after parent test ends").

const crypto = globalThis.crypto
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const keys = await crypto.subtle.generateKey(RSA, true, ['sign', 'verify'])
const cert = await x509.X509CertificateGenerator.createSelfSigned({
  serialNumber: '01', name: 'CN=scripted maa', keys, signingAlgorithm: RSA,
  notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 86_400_000)
}, crypto)
const kid = 'scripted-kid'
let answer: (body: string) => Promise<{ status: number, body: string }> = async () => ({ status: 500, body: '' })
let seen: { url: string, headers: IncomingMessage['headers'], body: string } | null = null
const scripted = await startHttpsServer((req: IncomingMessage, res: ServerResponse) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const send = (status: number, body: string): void => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(body) }
    if (req.url === '/certs') return send(200, JSON.stringify({ keys: [{ kid, kty: 'RSA', x5c: [Buffer.from(cert.rawData).toString('base64')] }] }))
    const body = Buffer.concat(chunks).toString()
    seen = { url: req.url ?? '', headers: req.headers, body }
    answer(body).then((a) => { send(a.status, a.body) }, () => { send(500, '{}') })
  })
}, { pki })
t.teardown(scripted.close)
const scriptedEndpoint = `127.0.0.1:${scripted.port}`
const mint = async (claims: Record<string, unknown>): Promise<string> =>
  await new SignJWT({ iss: `https://${scriptedEndpoint}`, 'x-ms-sevsnpvm-reportdata': reportDataFor(runtimeData).toString('hex'), ...claims })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).setIssuedAt().setExpirationTime('1h').sign(keys.privateKey)

t.test('attests a simulated report at the emulator and verifies the token', async (t) => {
  const { token, claims } = await client().attest(emulator.endpoint, input)
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/)
  t.equal(claims.iss, emulator.issuer)
  t.equal(claims['x-ms-attestation-type'], 'sevsnpvm')
  t.equal(claims['x-ms-sevsnpvm-is-debuggable'], false)
  t.equal(claims['x-ms-sevsnpvm-vmpl'], 0)
  t.equal(claims['x-ms-sevsnpvm-launchmeasurement'], simulatedMeasurement(simOptions).toString('hex'))
  t.equal(claims['x-ms-sevsnpvm-reportdata'], reportDataFor(runtimeData).toString('hex'))
  t.same(claims['x-ms-runtime'], JSON.parse(jwksText))
  t.match(claims.nonce, /^\d+$/)
  // The same token verifies independently (signature via /certs x5c, iss, exp).
  const again = await verifyMaaToken(token, { endpoint: emulator.endpoint, jwks: createJwksCache({ upstream }) })
  t.same(again, claims)
})

t.test('the default key cache records its lookups into the metrics given; an injected cache records its own', async (t) => {
  const results: string[] = []
  const metrics = { cacheResult: (cache: string, hit: boolean) => { results.push(`${cache} ${hit ? 'hit' : 'miss'}`) } }
  const c = client({ metrics })
  await c.attest(emulator.endpoint, input)
  await c.attest(emulator.endpoint, input)
  t.same(results, ['maa_keys miss', 'maa_keys hit'], 'one fetch of /certs, then the cached key')
  await client({ metrics, jwks: createJwksCache({ upstream }) }).attest(emulator.endpoint, input)
  await client({ metrics, verifyToken: false }).attest(emulator.endpoint, input)
  t.equal(results.length, 2, 'nothing more: the injected cache has no metrics, and an unverified token looks up no key')
})

t.test('verifyToken false still decodes the claims; the nonce reaches MAA with 64 bits', async (t) => {
  const { claims } = await client({ verifyToken: false, nonce: () => 18446744073709551615n }).attest(emulator.endpoint, input)
  t.equal(claims.nonce, '18446744073709551615')
})

t.test('MAA\'s answers map to skr errors', async (t) => {
  const c = client()
  const rejected = c.attest(emulator.endpoint, { ...input, runtimeData: Buffer.from('{"keys":[]}') })
  await t.rejects(rejected, {
    code: 'ERR_UPSTREAM_REJECTED',
    message: /^MAA rejected the evidence: InvalidParameter: SHA-256 of runtimeData/,
    details: { upstream: 'maa', upstreamStatus: 400, upstreamCode: 'InvalidParameter' }
  })
  const options: MaaEmulatorOptions = { ...emulatorOptions, faults: { status: 401 } }
  const faulty = await startMaaEmulator(options)
  t.teardown(faulty.close)
  await t.rejects(c.attest(faulty.endpoint, input), { code: 'ERR_ACCESS_DENIED', details: { upstreamStatus: 401, upstreamCode: 'Unauthorized' } })
  options.faults = { status: 403 }
  await t.rejects(c.attest(faulty.endpoint, input), { code: 'ERR_ACCESS_DENIED', details: { upstreamStatus: 403 } })
  options.faults = { status: 404 }
  await t.rejects(c.attest(faulty.endpoint, input), { code: 'ERR_UPSTREAM_REJECTED', details: { upstreamStatus: 404, upstreamCode: 'NotFound' } })
  options.faults = { status: 503 }
  await t.rejects(c.attest(faulty.endpoint, input), { code: 'ERR_UPSTREAM_UNAVAILABLE' })
})

t.test('request line, headers and body are the reference\'s', async (t) => {
  answer = async () => ({ status: 200, body: JSON.stringify({ Token: await mint({ nonce: '7' }) }) })
  await client({ nonce: () => 7n, apiVersion: '2022-08-01' }).attest(scriptedEndpoint, { ...input, uvmReferenceInfo: Buffer.from([1, 2, 3]) })
  t.equal(seen?.url, '/attest/SevSnpVM?api-version=2022-08-01')
  t.equal(seen?.headers['content-type'], 'application/json')
  t.equal(seen?.headers['user-agent'], 'skr-test/1.0')
  t.equal(seen?.headers.authorization, undefined, 'attest is anonymous')
  t.equal(seen?.body, buildAttestBody({ ...input, uvmReferenceInfo: Buffer.from([1, 2, 3]), nonce: 7n }))
})

t.test('tokens that do not bind what was sent are refused', async (t) => {
  const c = client({ nonce: () => 7n })
  answer = async () => ({ status: 200, body: JSON.stringify({ token: await mint({ 'x-ms-sevsnpvm-reportdata': '00'.repeat(64) }) }) })
  await t.rejects(c.attest(scriptedEndpoint, input), { code: 'ERR_MAA_TOKEN_INVALID', details: { check: 'reportdata' } })
  answer = async () => ({ status: 200, body: JSON.stringify({ token: await mint({ 'x-ms-sevsnpvm-reportdata': undefined }) }) })
  await t.rejects(c.attest(scriptedEndpoint, input), { code: 'ERR_MAA_TOKEN_INVALID', details: { check: 'reportdata' } })
  answer = async () => ({ status: 200, body: JSON.stringify({ token: await mint({ nonce: '8' }) }) })
  await t.rejects(c.attest(scriptedEndpoint, input), { code: 'ERR_MAA_TOKEN_INVALID', details: { check: 'nonce' } })
  answer = async () => ({ status: 200, body: JSON.stringify({ token: await mint({}) }) })
  t.ok((await c.attest(scriptedEndpoint, input)).claims, 'no nonce claim is accepted')
  answer = async () => ({ status: 200, body: JSON.stringify({ token: await mint({ iss: 'https://other.attest.azure.net' }) }) })
  await t.rejects(c.attest(scriptedEndpoint, input), { code: 'ERR_MAA_TOKEN_INVALID', details: { check: 'iss' } })
})

t.test('a 200 without a JWT is an invalid upstream response', async (t) => {
  const c = client({ verifyToken: false })
  for (const body of ['not json', '[]', '{}', '{"token":42}', '{"token":"abc"}', '{"token":"a.b.c d"}']) {
    answer = async () => ({ status: 200, body })
    await t.rejects(c.attest(scriptedEndpoint, input), { code: 'ERR_UPSTREAM_RESPONSE_INVALID' }, body)
  }
  answer = async () => ({ status: 200, body: '{"TOKEN":"e30.e30.sig"}' })
  t.same((await c.attest(scriptedEndpoint, input)).claims, {}, 'field name is case-insensitive')
  answer = async () => ({ status: 200, body: '{"token":"e30.!!!.sig"}' })
  await t.rejects(c.attest(scriptedEndpoint, input), { code: 'ERR_UPSTREAM_RESPONSE_INVALID' })
  answer = async () => ({ status: 409, body: '{"error":{"code":"Conflict","message":"x"}}' })
  await t.rejects(c.attest(scriptedEndpoint, input), { code: 'ERR_UPSTREAM_REJECTED', details: { upstreamStatus: 409, upstreamCode: 'Conflict' } })
  answer = async () => ({ status: 400, body: `{"error":{"code":"InvalidParameter","message":"${'m'.repeat(1000)}"}}` })
  const err = await c.attest(scriptedEndpoint, input).catch((e: unknown) => e as Error)
  t.ok((err as Error).message.length < 300, 'MAA message truncated')
})

t.test('option checks', async (t) => {
  t.throws(() => client({ apiVersion: 'a b' }), TypeError)
  t.throws(() => client({ userAgent: 'x\r\ny' }), TypeError)
  t.throws(() => client({ verifyToken: 'yes' as unknown as boolean }), TypeError)
  t.throws(() => createMaaClient({ upstream: {} as Upstream, apiVersion: 'v', userAgent: '', verifyToken: true }), TypeError)
  await t.rejects(client().attest('https://host/x', input), TypeError)
})

// ---- the genuine Azure ACI evidence, end to end --------------------------------------------

t.test('genuine Azure ACI report, chain and UVM endorsement', needsVectors(), async (t) => {
  const now = (): Date => new Date('2024-06-01T00:00:00Z')
  const azure = await startMaaEmulator({ tls, trustedArkFingerprints: [AMD_ARK_FINGERPRINTS.Milan], now })
  t.teardown(azure.close)
  const genuine = {
    report: vector('azure-aci-milan', 'snp_report.bin'),
    vcekCertChainPem: vectorText('azure-aci-milan', 'uvm_host_amd_certificate.pem'),
    runtimeData: Buffer.from('ewogICAiYWtleSIgOiAiYXZhbHVlIgp9Cg==', 'base64'),
    uvmReferenceInfo: vector('azure-aci-milan', 'body.uvm_reference_info.bin')
  }
  const c = client({ now })
  const { claims } = await c.attest(azure.endpoint, genuine)
  const policy = Buffer.from(vectorText('azure-aci-milan', 'uvm_security_policy.base64').trim(), 'base64')
  const measurement = '51068107cdc7ee3d89c7821b05bca6147eb77b2005ae759050fc049b65a1b0beabc65a9d857acecf23225f5ec76849f5'
  t.match(claims['x-ms-sevsnpvm-hostdata'], /^cadd74f7/)
  t.equal(claims['x-ms-sevsnpvm-hostdata'], createHash('sha256').update(policy).digest('hex'))
  t.equal(claims['x-ms-sevsnpvm-launchmeasurement'], measurement)
  t.equal(claims['x-ms-sevsnpvm-tee-svn'], 0)
  t.equal(claims['x-ms-sevsnpvm-bootloader-svn'], 3)
  t.equal(claims['x-ms-sevsnpvm-snpfw-svn'], 8)
  t.equal(claims['x-ms-sevsnpvm-microcode-svn'], 115)
  t.equal(claims['x-ms-sevsnpvm-is-debuggable'], false)
  t.equal(claims['x-ms-sevsnpvm-vmpl'], 0)
  t.equal(claims['x-ms-sevsnpvm-chip-family'], 'Milan', 'a v2 report: the generation comes from the VCEK')
  t.equal(claims['x-ms-compliance-status'], 'azure-compliant-uvm')
  t.same(claims['x-ms-sevsnpvm-uvm-endorsement'], { 'x-ms-sevsnpvm-guestsvn': '22', 'x-ms-sevsnpvm-launchmeasurement': measurement })
  t.same(claims['x-ms-runtime'], { akey: 'avalue' })
  t.equal(claims.iat, Math.floor(now().getTime() / 1000))

  // Without the endorsement: still a token, but no compliance status.
  const bare = await c.attest(azure.endpoint, { ...genuine, uvmReferenceInfo: null })
  t.notOk('x-ms-compliance-status' in bare.claims)
  // The other chip's endorsement is genuine but for another UVM: refused.
  const other = Buffer.from(vectorText('azure-aci-milan', 'security-context-other-chip', 'reference-info-base64').trim(), 'base64')
  await t.rejects(c.attest(azure.endpoint, { ...genuine, uvmReferenceInfo: other }), { code: 'ERR_UPSTREAM_REJECTED', details: { upstreamCode: 'InvalidParameter' } })
})
