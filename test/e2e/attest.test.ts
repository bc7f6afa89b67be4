// The attestation API end to end over real HTTP: skr with the simulated backend, its VCEK chain
// fetched from the THIM route of the IMDS double, tokens from the MAA emulator over HTTPS.
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { parseReport } from '../../src/snp/abi.ts'
import { splitPem } from '../../src/certs/pem.ts'
import { thimDocument } from '../../src/simulated/emulated-chain.ts'
import { tcbToHex } from '../../src/snp/tcb.ts'
import { startSidecarEnv, startTestEnvironment, JWT_SHAPE } from '../helpers/sidecar-env.ts'

const env = await startTestEnvironment()
t.teardown(() => env.close())
const skr = await startSidecarEnv({ env })
t.teardown(() => skr.close())

const runtime = Buffer.from(JSON.stringify({ app: 'e2e', nonce: 'b1f0' }))
const runtimeB64 = runtime.toString('base64')

t.test('GET /status: the reference body plus the simulated flag', async t => {
  const res = await skr.call('/status')
  t.equal(res.status, 200)
  t.equal(res.json?.message, 'Status OK')
  t.same(res.json?.attestation, { backend: 'simulated', simulated: true })
  t.match(res.json?.warning, /SIMULATED/)
})

t.test('POST /attest/raw: REPORT_DATA = sha256(runtime data) || zeros; HOST_DATA = sha256(policy)', async t => {
  const res = await skr.call('/attest/raw', { runtime_data: runtimeB64 })
  t.equal(res.status, 200)
  const report = parseReport(Buffer.from(res.json?.report as string, 'hex'))
  t.same(report.reportData, Buffer.concat([createHash('sha256').update(runtime).digest(), Buffer.alloc(32)]))
  t.equal(report.hostData.toString('hex'), env.hostData)
  t.equal(report.chipId.toString('hex'), env.chain.chipId.toString('hex'))
  // the URL-safe alphabet, unpadded, is accepted too (the reference's own tests send it)
  const urlsafe = await skr.call('/attest/raw', { runtime_data: runtime.toString('base64url') })
  t.equal(urlsafe.status, 200)
})

t.test('POST /attest/combined: the reference fields, endorsed by the chain THIM served', async t => {
  const thimBefore = env.imds.thimRequests
  const res = await skr.call('/attest/combined', { runtime_data: runtimeB64 })
  t.equal(res.status, 200)
  t.same(Object.keys(res.json ?? {}).sort(), ['endorsed_tcb', 'endorsements', 'evidence', 'uvm_endorsements'])
  t.equal(res.json?.endorsed_tcb, thimDocument(env.chain).tcbm)
  t.equal(res.json?.endorsed_tcb, tcbToHex(env.chain.reportedTcb))
  const certs = splitPem(Buffer.from(res.json?.endorsements as string, 'base64').toString('utf8'))
  t.same(certs.map(c => c.subject.match(/CN=([^\n]+)/)?.[1]), ['SEV-VCEK', 'SEV-Milan', 'ARK-Milan'])
  const evidence = parseReport(Buffer.from(res.json?.evidence as string, 'base64'))
  t.same(evidence.reportData.subarray(0, 32), createHash('sha256').update(runtime).digest())
  const reference = (await readFile(join(env.securityContextDir, 'reference-info-base64'), 'utf8')).trim()
  t.equal(res.json?.uvm_endorsements, reference, 'the security context\'s UVM reference info, as the UVM provided it')
  t.ok(env.imds.thimRequests - thimBefore <= 1, 'the chain is cached, not fetched per request')
})

t.test('POST /attest/maa with the endpoint as host, https://host and https://host/', async t => {
  for (const maa of [env.maa.endpoint, `https://${env.maa.endpoint}`, `https://${env.maa.endpoint}/`]) {
    const res = await skr.call('/attest/maa', { maa_endpoint: maa, runtime_data: runtimeB64 })
    t.equal(res.status, 200, maa)
    const claims = decodeJwt(res.json?.token as string)
    t.equal(claims.iss, env.maa.issuer)
    t.equal(claims['x-ms-sevsnpvm-hostdata'], env.hostData)
    t.same(claims['x-ms-runtime'], { app: 'e2e', nonce: 'b1f0' }, 'runtime data as JSON claims')
    t.equal(claims['x-ms-sevsnpvm-is-debuggable'], false)
  }
})

t.test('every bad-input class answers 400 naming the field, over real HTTP', async t => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['/attest/raw', {}, /runtime_data/],
    ['/attest/raw', { runtime_data: '' }, /runtime_data/],
    ['/attest/raw', { runtime_data: 'not*base64' }, /runtime_data/],
    ['/attest/raw', { runtime_data: 42 }, /runtime_data/],
    ['/attest/maa', { runtime_data: runtimeB64 }, /maa_endpoint/],
    ['/attest/maa', { maa_endpoint: `http://${env.maa.endpoint}`, runtime_data: runtimeB64 }, /maa_endpoint/],
    ['/attest/maa', { maa_endpoint: `https://${env.maa.endpoint}/attest`, runtime_data: runtimeB64 }, /maa_endpoint/],
    ['/attest/maa', { maa_endpoint: `https://user@${env.maa.endpoint}`, runtime_data: runtimeB64 }, /maa_endpoint/],
    ['/key/release', { maa_endpoint: env.maa.endpoint, akv_endpoint: env.akv.endpoint, kid: 'a b' }, /kid/]
  ]
  for (const [path, body, field] of cases) {
    const res = await skr.call(path, body)
    t.equal(res.status, 400, `${path} ${JSON.stringify(body)}`)
    t.equal(res.json?.code, 'ERR_REQUEST_INVALID')
    t.match(res.json?.error, field)
  }
})

t.test('MAA answering 503 is retried, then a clear 503; the next good request succeeds', async t => {
  env.maa.faults.status = 503
  const bad = await skr.call('/attest/maa', { maa_endpoint: env.maa.endpoint, runtime_data: runtimeB64 })
  delete env.maa.faults.status
  t.equal(bad.status, 503)
  t.equal(bad.json?.code, 'ERR_UPSTREAM_UNAVAILABLE')
  const good = await skr.call('/attest/maa', { maa_endpoint: env.maa.endpoint, runtime_data: runtimeB64 })
  t.equal(good.status, 200)
})

t.test('no token or runtime data in the logs', async t => {
  t.notOk(skr.logs.some(l => JWT_SHAPE.test(l)), 'no JWT-shaped text')
  t.notOk(skr.logs.some(l => l.includes(runtimeB64)), 'no runtime data')
})

t.test('TCB mismatch at start-up (AllowTestingMismatchedTCB): the chain is refreshed from THIM and requests succeed', async t => {
  const mismatched = await startSidecarEnv({ env, overrides: { AllowTestingMismatchedTCB: 'true' } })
  t.teardown(() => mismatched.close())
  const before = env.imds.thimRequests
  const res = await mismatched.call('/attest/combined', { runtime_data: runtimeB64 })
  t.equal(res.status, 200)
  t.equal(res.json?.endorsed_tcb, thimDocument(env.chain).tcbm, 'the refreshed chain matches the report')
  t.ok(env.imds.thimRequests > before, 'THIM was asked again')
})
