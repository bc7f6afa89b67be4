import 'reflect-metadata'
import { constants, createHash, sign, X509Certificate } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSecureContext } from 'node:tls'
import * as x509 from '@peculiar/x509'
import { encode, Tagged } from 'cborg'
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import t from 'tap'
import { Agent, request } from 'undici'
import { AMD_ARK_FINGERPRINTS } from '../../../src/certs/amd-roots.ts'
import { loadOrCreateEmulatedChain } from '../../../src/simulated/emulated-chain-cache.ts'
import { DEFAULT_POLICY_TEXT, policyHash } from '../../../src/emulator/maa-claims.ts'
import { startMaaEmulator } from '../../../src/emulator/maa.ts'
import type { MaaEmulator, MaaEmulatorOptions } from '../../../src/emulator/maa.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { buildAttestBody } from '../../../src/maa/request.ts'
import { reportDataFor } from '../../../src/snp/report-data.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { createSimulatedProvider, simulatedMeasurement } from '../../../src/simulated/provider.ts'

const pki = await createLocalPki()
const tls = await pki.issue(['127.0.0.1'])
const dispatcher = new Agent({ connect: { secureContext: createSecureContext({ ca: pki.caCertPem }) } })
t.teardown(async () => { await dispatcher.close() })

const chain = await loadOrCreateEmulatedChain({ cacheDir: join(tmpdir(), 'skr-test-emulated-chain') })
const POLICY = 'package policy\nallow := true\n'
const simOptions = { chain, securityPolicy: POLICY, measurementSeed: 'maa-emulator-test' }
const provider = createSimulatedProvider(simOptions)
const runtimeObject = { keys: [{ e: 'AQAB', key_ops: ['encrypt'], kid: 'wrapping-key', kty: 'RSA', n: 'xyz' }] }
const runtimeData = Buffer.from(JSON.stringify(runtimeObject))
const { report } = await provider.getReport(reportDataFor(runtimeData), 0)
const vcekCertChainPem = chain.vcekPem + chain.chainPem

async function start (over: Partial<MaaEmulatorOptions> = {}): Promise<MaaEmulator> {
  const emulator = await startMaaEmulator({ tls, trustedArkFingerprints: [chain.arkFingerprint], ...over })
  t.teardown(emulator.close)
  return emulator
}

const emulator = await start()

interface Answer { status: number, json: Record<string, unknown> }
async function call (em: MaaEmulator, path: string, body?: string, method: 'GET' | 'POST' = body === undefined ? 'GET' : 'POST'): Promise<Answer> {
  const res = await request(`${em.url}${path}`, { dispatcher, method, ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }) })
  const text = await res.body.text()
  return { status: res.statusCode, json: JSON.parse(text) as Record<string, unknown> }
}
const ATTEST = '/attest/SevSnpVm?api-version=2020-10-01'
const attest = async (body: string, em = emulator, path = ATTEST): Promise<Answer> => await call(em, path, body)
const good = (over: Partial<Parameters<typeof buildAttestBody>[0]> = {}): string =>
  buildAttestBody({ report, vcekCertChainPem, runtimeData, nonce: 42n, ...over })
const b64u = (b: Buffer | string): string => Buffer.from(b).toString('base64url')
const errorCode = (a: Answer): unknown => (a.json.error as { code?: unknown } | undefined)?.code

// ---- UVM endorsements under a throwaway signing root ------------------------------------------
// Set up before the first subtest (see test/unit/maa/client.test.ts): a subtest created after a
// slow top-level await can find tap's root test already ended.

const crypto = globalThis.crypto
const PSS = { name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const EKU = '1.3.6.1.4.1.311.76.59.1.2'
const rootKeys = await crypto.subtle.generateKey(PSS, true, ['sign', 'verify'])
const leafKeys = await crypto.subtle.generateKey(PSS, true, ['sign', 'verify'])
const validity = { notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 365 * 86_400_000) }
const uvmRoot = await x509.X509CertificateGenerator.createSelfSigned({
  serialNumber: '01', name: 'CN=uvm test root', keys: rootKeys, signingAlgorithm: { name: 'RSA-PSS', saltLength: 48 }, ...validity,
  extensions: [new x509.BasicConstraintsExtension(true, undefined, true)]
}, crypto)
const uvmLeaf = await x509.X509CertificateGenerator.create({
  serialNumber: '02', subject: 'CN=uvm test leaf', issuer: uvmRoot.subject, publicKey: leafKeys.publicKey,
  signingKey: rootKeys.privateKey, signingAlgorithm: { name: 'RSA-PSS', saltLength: 48 }, ...validity,
  extensions: [new x509.ExtendedKeyUsageExtension([EKU])]
}, crypto)
const leafPem = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey)).toString('base64')}\n-----END PRIVATE KEY-----\n`

function endorsement (measurement: string, guestSvn: string): Buffer {
  const rootDer = Buffer.from(uvmRoot.rawData)
  const header = encode(new Map<unknown, unknown>([
    [1, -38], [33, [Buffer.from(uvmLeaf.rawData), rootDer]],
    ['iss', `did:x509:0:sha256:${createHash('sha256').update(rootDer).digest('base64url')}::eku:${EKU}`],
    ['feed', 'test-uvm'], ['signingtime', new Tagged(1, Math.floor(Date.now() / 1000))]
  ]))
  const payload = Buffer.from(JSON.stringify({ 'x-ms-sevsnpvm-guestsvn': guestSvn, 'x-ms-sevsnpvm-launchmeasurement': measurement }))
  const signature = sign('sha384', encode(['Signature1', header, new Uint8Array(0), payload]),
    { key: leafPem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 })
  return Buffer.from(encode(new Tagged(18, [header, new Map(), payload, signature])))
}

t.test('issues an RS256 token with MAA\'s SevSnpVm claims, typed as MAA types them', async (t) => {
  const answer = await attest(good())
  t.equal(answer.status, 200)
  const token = answer.json.token as string
  const header = decodeProtectedHeader(token)
  t.same(Object.keys(header).sort(), ['alg', 'jku', 'kid', 'typ'])
  t.match(header, { alg: 'RS256', jku: `${emulator.issuer}/certs`, typ: 'JWT' })
  const c = decodeJwt(token)
  const r = parseReport(report)
  t.equal(c.iss, emulator.issuer)
  t.equal(emulator.issuer, `https://${emulator.endpoint}`)
  t.equal(c.exp, (c.iat ?? 0) + 28800)
  t.equal(c.nbf, c.iat)
  t.match(c.jti, /^[0-9a-f]{64}$/)
  t.equal(c.nonce, '42')
  t.equal(c['x-ms-ver'], '1.0')
  t.equal(c['x-ms-attestation-type'], 'sevsnpvm')
  t.equal(c['x-ms-policy-hash'], policyHash(DEFAULT_POLICY_TEXT))
  t.notOk('x-ms-compliance-status' in c, 'no endorsement, no compliance status')
  t.notOk('x-ms-sevsnpvm-uvm-endorsement' in c)
  t.same(c['x-ms-runtime'], runtimeObject)
  t.equal(c['x-ms-sevsnpvm-hostdata'], createHash('sha256').update(POLICY).digest('hex'))
  t.equal(c['x-ms-sevsnpvm-launchmeasurement'], simulatedMeasurement(simOptions).toString('hex'))
  t.equal(c['x-ms-sevsnpvm-reportdata'], reportDataFor(runtimeData).toString('hex'))
  t.equal(c['x-ms-sevsnpvm-chipid'], chain.chipId.toString('hex'))
  t.equal(c['x-ms-sevsnpvm-reportid'], r.reportId.toString('hex'))
  t.equal(c['x-ms-sevsnpvm-familyId'], r.familyId.toString('hex'))
  t.equal(c['x-ms-sevsnpvm-imageId'], r.imageId.toString('hex'))
  t.equal(c['x-ms-sevsnpvm-idkeydigest'], '00'.repeat(48))
  t.equal(c['x-ms-sevsnpvm-authorkeydigest'], '00'.repeat(48))
  t.equal(c['x-ms-sevsnpvm-is-debuggable'], false)
  t.equal(c['x-ms-sevsnpvm-migration-allowed'], false)
  t.equal(c['x-ms-sevsnpvm-smt-allowed'], true)
  t.equal(c['x-ms-sevsnpvm-vmpl'], 0)
  t.equal(c['x-ms-sevsnpvm-guestsvn'], 0)
  // The emulated chain's default TCB is the Azure ACI host's: bl 3, tee 0, snp 8, ucode 115.
  t.same([c['x-ms-sevsnpvm-bootloader-svn'], c['x-ms-sevsnpvm-tee-svn'], c['x-ms-sevsnpvm-snpfw-svn'], c['x-ms-sevsnpvm-microcode-svn']], [3, 0, 8, 115])
})

t.test('/certs in MAA\'s shape verifies the token; openid-configuration is snake_case', async (t) => {
  const certs = await call(emulator, '/certs')
  t.equal(certs.status, 200)
  const keys = certs.json.keys as Array<Record<string, unknown>>
  t.equal(keys.length, 1)
  const [jwk] = keys as [Record<string, unknown>]
  t.same(Object.keys(jwk).sort(), ['kid', 'kty', 'x5c'], 'no n/e, like MAA')
  t.equal(jwk.kty, 'RSA')
  const x5c = (jwk.x5c as string[])[0] as string
  t.match(x5c, /^[A-Za-z0-9+/]+={0,2}$/, 'padded standard base64 DER')
  const cert = new X509Certificate(Buffer.from(x5c, 'base64'))
  t.match(cert.subject, `CN=${emulator.issuer}`)
  t.equal(cert.toString().trim(), emulator.signingCertPem.trim())
  const token = (await attest(good())).json.token as string
  t.equal(decodeProtectedHeader(token).kid, jwk.kid)
  const { payload } = await jwtVerify(token, cert.publicKey, { issuer: emulator.issuer, algorithms: ['RS256'] })
  t.equal(payload.iss, emulator.issuer)
  const oidc = await call(emulator, '/.well-known/openid-configuration')
  t.same(oidc.json, { issuer: emulator.issuer, jwks_uri: `${emulator.issuer}/certs` })
})

t.test('accepts what the reference and other clients send', async (t) => {
  const max = await attest(good({ nonce: 18446744073709551615n }))
  t.equal(decodeJwt(max.json.token as string).nonce, '18446744073709551615', 'u64 nonce keeps its precision')
  const asString = JSON.parse(good()) as Record<string, unknown>
  asString.nonce = 'abc-123'
  t.equal(decodeJwt((await attest(JSON.stringify(asString))).json.token as string).nonce, 'abc-123')
  delete asString.nonce
  t.notOk('nonce' in decodeJwt((await attest(JSON.stringify(asString))).json.token as string))
  for (const path of ['/attest/sevsnpvm?api-version=2022-08-01', '/ATTEST/SEVSNPVM?api-version=2025-06-01', '/attest/SevSnpVm?api-version=2022-09-01-preview']) {
    t.equal((await attest(good(), emulator, path)).status, 200, path)
  }
  // Unpadded b64url and standard base64 everywhere.
  const bundle = JSON.stringify({ SnpReport: report.toString('base64'), VcekCertChain: b64u(vcekCertChainPem) })
  const loose = JSON.stringify({ report: b64u(bundle), runtimeData: { data: runtimeData.toString('base64'), dataType: 'json' } })
  t.equal((await attest(loose)).status, 200)
  // Binary runtime data: bound, but no x-ms-runtime.
  const binary = JSON.stringify({ report: b64u(bundle), runtimeData: { data: b64u(runtimeData), dataType: 'Binary' } })
  const binaryToken = await attest(binary)
  t.equal(binaryToken.status, 200)
  t.notOk('x-ms-runtime' in decodeJwt(binaryToken.json.token as string))
  // initTimeData = the security policy, bound to HOST_DATA.
  const withInit = JSON.parse(good()) as Record<string, unknown>
  withInit.initTimeData = { data: b64u(POLICY), dataType: 'Binary' }
  t.equal((await attest(JSON.stringify(withInit))).status, 200)
  withInit.initTimeData = { data: b64u('another policy'), dataType: 'Binary' }
  const badInit = await attest(JSON.stringify(withInit))
  t.equal(badInit.status, 400)
  t.match(badInit.json, { error: { code: 'InvalidParameter', message: /HOST_DATA/ } })
})

t.test('MAA-shaped 400s for bad evidence', async (t) => {
  const cases: Array<[string, string, RegExp]> = []
  cases.push(['wrong runtime data (binding)', good({ runtimeData: Buffer.from('{"keys":[1]}') }), /REPORT_DATA/])
  const tampered = Buffer.from(report)
  tampered[0x90] = (tampered[0x90] ?? 0) ^ 1
  cases.push(['tampered report byte', good({ report: tampered }), /signature/])
  cases.push(['short report', good({ report: report.subarray(0, 1000) }), /size/])
  cases.push(['chain of two certificates', good({ vcekCertChainPem: chain.chainPem }), /3/])
  cases.push(['not JSON', '{"report":', /not JSON/])
  cases.push(['JSON array', '[1]', /object/])
  cases.push(['missing report', JSON.stringify({ runtimeData: { data: b64u(runtimeData), dataType: 'JSON' } }), /report/])
  cases.push(['bad b64 report', JSON.stringify({ report: 'not*base64!' }), /report/])
  cases.push(['bundle without SnpReport', JSON.stringify({ report: b64u(JSON.stringify({ VcekCertChain: b64u(vcekCertChainPem) })) }), /SnpReport/])
  cases.push(['bad b64 SnpReport', JSON.stringify({ report: b64u(JSON.stringify({ SnpReport: '%%%', VcekCertChain: b64u(vcekCertChainPem) })) }), /SnpReport/])
  cases.push(['bundle not JSON', JSON.stringify({ report: b64u('SnpReport') }), /report/])
  const withBad = (mutate: (o: Record<string, unknown>) => void): string => {
    const o = JSON.parse(good()) as Record<string, unknown>
    mutate(o)
    return JSON.stringify(o)
  }
  cases.push(['bad dataType', withBad((o) => { o.runtimeData = { data: b64u(runtimeData), dataType: 'xml' } }), /dataType/])
  cases.push(['fractional nonce', withBad((o) => { o.nonce = 1.5 }), /nonce/])
  cases.push(['negative nonce', good().replace('"nonce":42', '"nonce":-1'), /nonce/])
  cases.push(['nonce over 2^64', good().replace('"nonce":42', '"nonce":18446744073709551616'), /nonce/])
  cases.push(['nonce object', withBad((o) => { o.nonce = {} }), /nonce/])
  cases.push(['bad Endorsements', withBad((o) => {
    o.report = b64u(JSON.stringify({ SnpReport: b64u(report), VcekCertChain: b64u(vcekCertChainPem), Endorsements: b64u('{"Uvm":[]}') }))
  }), /Endorsements/])
  for (const [name, body, message] of cases) {
    const answer = await attest(body)
    t.equal(answer.status, 400, name)
    t.match(answer.json, { error: { code: 'InvalidParameter', message } }, name)
  }
  // Runtime data whose JSON is not an object: bound correctly, still refused.
  const arrayRuntime = Buffer.from('[1,2]')
  const { report: arrayReport } = await provider.getReport(reportDataFor(arrayRuntime), 0)
  const notObject = await attest(good({ report: arrayReport, runtimeData: arrayRuntime }))
  t.match(notObject, { status: 400, json: { error: { code: 'InvalidParameter', message: /not a JSON object/ } } })
})

t.test('untrusted ARK, api-version, routes, faults, counting', async (t) => {
  const amdOnly = await start({ trustedArkFingerprints: Object.values(AMD_ARK_FINGERPRINTS) })
  const untrusted = await attest(good(), amdOnly)
  t.match(untrusted, { status: 400, json: { error: { code: 'InvalidParameter', message: /ARK/ } } })
  for (const path of ['/attest/SevSnpVm?api-version=2019-01-01', '/attest/SevSnpVm']) {
    const a = await attest(good(), emulator, path)
    t.equal(a.status, 400, path)
    t.equal(errorCode(a), 'InvalidParameter')
  }
  const missing = await call(emulator, '/attest/SgxEnclave?api-version=2020-10-01', good())
  t.equal(missing.status, 404)
  t.equal(errorCode(missing), 'NotFound')
  t.equal((await call(emulator, '/certs', '{}')).status, 404, 'POST /certs')
  t.equal((await call(emulator, '/attest/SevSnpVm?api-version=2020-10-01')).status, 404, 'GET attest')

  // `faults` is read per request: tests flip it on a running emulator.
  const options: MaaEmulatorOptions = { tls, trustedArkFingerprints: [chain.arkFingerprint], faults: { status: 503 } }
  const live = await startMaaEmulator(options)
  t.teardown(live.close)
  const down = await attest(good(), live)
  t.match(down, { status: 503, json: { error: { code: 'ServiceUnavailable' } } })
  options.faults = { status: 401 }
  t.match(await attest(good(), live), { status: 401, json: { error: { code: 'Unauthorized' } } })
  options.faults = { delayMs: 20 }
  t.equal((await attest(good(), live)).status, 200, 'a delay alone still answers')
  delete options.faults
  t.equal((await attest(good(), live)).status, 200)
  t.equal(live.requests, 4)
})

t.test('requireUvmEndorsement refuses evidence without Endorsements', async (t) => {
  const strict = await start({ requireUvmEndorsement: true })
  t.match(await attest(good(), strict), { status: 400, json: { error: { code: 'InvalidParameter', message: /UVM endorsement is required/ } } })
})

t.test('never crashes on arbitrary input', async (t) => {
  const junk = ['', 'null', '"x"', '{}', '{"report":null}', '{"report":""}', '{"report":"AAAA"}', '\u0000\u00ff', '{"report":"e30="}',
    JSON.stringify({ report: b64u(JSON.stringify({ SnpReport: b64u(report), VcekCertChain: b64u('-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n') })) })]
  for (const body of junk) {
    const a = await attest(body)
    t.equal(a.status, 400, JSON.stringify(body))
  }
  t.equal((await attest(good())).status, 200, 'still serving')
})

t.test('UVM endorsements: validated ones give azure-compliant-uvm, mismatches are refused', async (t) => {
  const trusting = await start({ trustedUvmRootFingerprints: [new X509Certificate(Buffer.from(uvmRoot.rawData)).fingerprint256] })
  const measurement = simulatedMeasurement(simOptions).toString('hex')
  const ok = await attest(good({ uvmReferenceInfo: endorsement(measurement, '5') }), trusting)
  t.equal(ok.status, 200)
  const c = decodeJwt(ok.json.token as string)
  t.equal(c['x-ms-compliance-status'], 'azure-compliant-uvm')
  t.same(c['x-ms-sevsnpvm-uvm-endorsement'], { 'x-ms-sevsnpvm-guestsvn': '5', 'x-ms-sevsnpvm-launchmeasurement': measurement })
  const other = await attest(good({ uvmReferenceInfo: endorsement('ab'.repeat(48), '5') }), trusting)
  t.match(other, { status: 400, json: { error: { code: 'InvalidParameter', message: /launch measurement/ } } })
  // Default trust is Microsoft's root only.
  const untrusted = await attest(good({ uvmReferenceInfo: endorsement(measurement, '5') }))
  t.match(untrusted, { status: 400, json: { error: { code: 'InvalidParameter', message: /root/ } } })
})
