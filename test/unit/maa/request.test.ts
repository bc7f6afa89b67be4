import t from 'tap'
import { buildAttestBody, buildReportBundle, randomNonce } from '../../../src/maa/request.ts'

const report = Buffer.from([0xfb, 0xff, 0x01, 0x02, 0x03]) // b64url "-_8BAgM=" (url alphabet and padding)
const pem = '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n'
const runtimeData = Buffer.from('{"keys":[]}')
const cose = Buffer.from([0xd2, 0x84, 0xfe])
const padded = (b: Buffer): string => {
  const s = b.toString('base64url')
  return s + '='.repeat((4 - (s.length % 4)) % 4)
}

t.test('body text matches the reference field for field, in order', async (t) => {
  const body = buildAttestBody({ report, vcekCertChainPem: pem, runtimeData, nonce: 1234n })
  const bundle = `{"SnpReport":"${padded(report)}","VcekCertChain":"${padded(Buffer.from(pem))}"}`
  t.equal(body,
    `{"report":"${padded(Buffer.from(bundle))}",` +
    `"runtimeData":{"data":"${padded(runtimeData)}","dataType":"JSON"},` +
    '"initTimeData":{"data":"","dataType":""},' +
    '"nonce":1234}')
  t.equal(padded(report), '-_8BAgM=')
  const parsed = JSON.parse(body) as { report: string }
  t.equal(Buffer.from(parsed.report, 'base64url').toString(), bundle)
  t.equal(parsed.report.length % 4, 0, 'padded')
})

t.test('Endorsements: present with reference info, omitted without (Go omitempty)', async (t) => {
  const withUvm = buildReportBundle({ report, vcekCertChainPem: pem, uvmReferenceInfo: cose })
  const endorsements = `{"Uvm":["${padded(cose)}"]}`
  t.equal(withUvm, `{"SnpReport":"${padded(report)}","VcekCertChain":"${padded(Buffer.from(pem))}","Endorsements":"${padded(Buffer.from(endorsements))}"}`)
  t.notMatch(buildReportBundle({ report, vcekCertChainPem: pem, uvmReferenceInfo: null }), /Endorsements/)
  t.notMatch(buildReportBundle({ report, vcekCertChainPem: pem, uvmReferenceInfo: Buffer.alloc(0) }), /Endorsements/)
  t.notMatch(buildReportBundle({ report, vcekCertChainPem: pem }), /Endorsements/)
})

t.test('nonce is a bare JSON number with all 64 bits', async (t) => {
  const body = buildAttestBody({ report, vcekCertChainPem: pem, runtimeData, nonce: 18446744073709551615n })
  t.ok(body.endsWith(',"nonce":18446744073709551615}'))
  t.ok(body.includes('18446744073709551615'))
  t.ok(buildAttestBody({ report, vcekCertChainPem: pem, runtimeData, nonce: 0n }).endsWith('"nonce":0}'))
})

t.test('argument checks', async (t) => {
  const ok = { report, vcekCertChainPem: pem, runtimeData, nonce: 1n }
  t.throws(() => buildAttestBody({ ...ok, nonce: -1n }), TypeError)
  t.throws(() => buildAttestBody({ ...ok, nonce: 1n << 64n }), TypeError)
  t.throws(() => buildAttestBody({ ...ok, nonce: 1 as unknown as bigint }), TypeError)
  t.throws(() => buildAttestBody({ ...ok, report: 'x' as unknown as Buffer }), TypeError)
  t.throws(() => buildAttestBody({ ...ok, runtimeData: null as unknown as Buffer }), TypeError)
  t.throws(() => buildAttestBody({ ...ok, vcekCertChainPem: 1 as unknown as string }), TypeError)
  t.throws(() => buildAttestBody({ ...ok, uvmReferenceInfo: 'x' as unknown as Buffer }), TypeError)
  t.throws(() => buildAttestBody(null as unknown as typeof ok), TypeError)
})

t.test('randomNonce spans 64 bits', async (t) => {
  const seen = new Set<bigint>()
  let high = false
  for (let i = 0; i < 64; i++) {
    const n = randomNonce()
    t.ok(n >= 0n && n < (1n << 64n))
    if (n >= (1n << 53n)) high = true
    seen.add(n)
  }
  t.ok(high, 'exceeds 2^53 (not a double)')
  t.equal(seen.size, 64)
})
