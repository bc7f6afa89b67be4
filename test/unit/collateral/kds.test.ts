import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { fetchKds, kdsCertChainUrl, kdsVcekUrl } from '../../../src/collateral/kds.ts'
import { Upstream } from '../../../src/http/upstream.ts'
import { decodeTcb, type TcbParts } from '../../../src/snp/tcb.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

const BASE = 'https://kdsintf.amd.com'
const chipId = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 7 + 1) & 0xff))
const milanTcb: TcbParts = { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }

t.test('Milan and Genoa URLs: 64-byte hwid, decimal SPLs (docs/protocols.md#amd-kds)', async (t) => {
  const hex = chipId.toString('hex')
  t.equal(hex.length, 128)
  t.equal(kdsVcekUrl(BASE, 'Milan', chipId, milanTcb), `${BASE}/vcek/v1/Milan/${hex}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`)
  t.equal(kdsVcekUrl(`${BASE}/`, 'Genoa', chipId, { bootloader: 9, tee: 0, snp: 23, microcode: 200, fmc: null }),
    `${BASE}/vcek/v1/Genoa/${hex}?blSPL=9&teeSPL=0&snpSPL=23&ucodeSPL=200`, 'trailing slash on base, SPL ≥ 100')
  t.equal(kdsCertChainUrl(BASE, 'Milan'), `${BASE}/vcek/v1/Milan/cert_chain`)
})

t.test('Turin URL: 8-byte hwid and fmcSPL first', async (t) => {
  t.equal(kdsVcekUrl(BASE, 'Turin', chipId, { bootloader: 1, tee: 2, snp: 3, microcode: 4, fmc: 5 }),
    `${BASE}/vcek/v1/Turin/${chipId.subarray(0, 8).toString('hex')}?fmcSPL=5&blSPL=1&teeSPL=2&snpSPL=3&ucodeSPL=4`)
  t.equal(chipId.subarray(0, 8).toString('hex'), '01080f161d242b32', 'lowercase, 16 hex digits')
})

t.test('misuse is a TypeError', async (t) => {
  t.throws(() => kdsVcekUrl(BASE, 'Turin', chipId, milanTcb), TypeError, 'Turin needs fmc')
  t.throws(() => kdsVcekUrl(BASE, 'Milan', chipId, { ...milanTcb, fmc: 1 }), TypeError, 'Milan has no fmc')
  t.throws(() => kdsVcekUrl(BASE, 'Milan', chipId.subarray(0, 8), milanTcb), TypeError, 'short chip id')
  t.throws(() => kdsVcekUrl(BASE, 'Naples' as 'Milan', chipId, milanTcb), TypeError)
  t.throws(() => kdsVcekUrl(BASE, 'Milan', chipId, { ...milanTcb, snp: 256 }), TypeError)
  t.throws(() => kdsVcekUrl(BASE, 'Milan', chipId, { ...milanTcb, tee: -1 }), TypeError)
})

t.test('the genuine report gives the KDS URL of its CHIP_ID and REPORTED_TCB', needsVectors(), async (t) => {
  const report = vector('azure-aci-milan', 'snp_report.bin')
  const reportChip = report.subarray(0x1a0, 0x1e0)
  const reported = report.readBigUInt64LE(0x180)
  t.equal(reported, 0x7308000000000003n)
  const url = kdsVcekUrl(BASE, 'Milan', reportChip, decodeTcb(reported, 'Milan'))
  t.match(url, /^https:\/\/kdsintf\.amd\.com\/vcek\/v1\/Milan\/[0-9a-f]{128}\?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115$/)
})

t.test('fetchKds from a double serving the genuine virtee Milan VCEK and chain', needsVectors(), async (t) => {
  const der = vector('virtee-milan', 'vcek_milan.der')
  const chainPem = vector('virtee-milan', 'cert_chain_milan')
  const seen: string[] = []
  let vcekBody: Buffer = der
  let chainStatus = 200
  const s = await startHttpsServer((req, res) => {
    seen.push(req.url ?? '')
    if (req.url === '/vcek/v1/Milan/cert_chain') {
      res.writeHead(chainStatus, { 'content-type': 'application/x-pem-file' })
      res.end(chainStatus === 200 ? chainPem : '')
      return
    }
    if (req.url === `/vcek/v1/Milan/${chipId.toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=3600' })
      res.end(vcekBody)
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('Not Found')
  })
  t.teardown(s.close)
  const up = new Upstream({ name: 'kds', ca: s.ca, sleep: async () => {} })
  t.teardown(() => up.close())
  const opts = { base: s.url, product: 'Milan' as const, chipId, tcb: milanTcb, reportedTcb: 0x7308000000000003n }

  const c = await fetchKds(up, opts)
  t.equal(c.source, 'kds')
  t.equal(c.tcbm, 0x7308000000000003n)
  t.equal(c.cacheControlSeconds, 3600)
  t.same(new X509Certificate(c.vcekPem).raw, der, 'DER → PEM keeps the bytes')
  const chain = c.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  t.equal(chain.length, 2)
  t.match(new X509Certificate(chain[0] ?? '').subject, /CN=SEV-Milan/, 'ASK first')
  t.match(new X509Certificate(chain[1] ?? '').subject, /CN=ARK-Milan/, 'then ARK')
  t.same(seen.sort(), [`/vcek/v1/Milan/${chipId.toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`, '/vcek/v1/Milan/cert_chain'].sort())

  await t.rejects(fetchKds(up, { ...opts, tcb: { ...milanTcb, snp: 9 } }),
    { code: 'ERR_UPSTREAM_REJECTED', message: /unexpected HTTP 404 for the VCEK$/ }, 'a TCB the double does not know → 404')
  await t.rejects(fetchKds(up, { ...opts, product: 'Genoa' }), { code: 'ERR_UPSTREAM_REJECTED', details: { upstream: 'kds', upstreamStatus: 404 } })

  vcekBody = Buffer.concat([der, Buffer.from([0])])
  await t.rejects(fetchKds(up, opts), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /1 bytes after the certificate/ })
  vcekBody = Buffer.from('<html>not a cert</html>')
  await t.rejects(fetchKds(up, opts), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /is not a DER X\.509 certificate/ })
  vcekBody = der
  chainStatus = 503
  await t.rejects(fetchKds(up, opts), { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstreamStatus: 503, attempts: 4 } })
})

t.test('fetchKds: a chain that is not two PEM certificates is invalid', needsVectors(), async (t) => {
  const der = vector('virtee-milan', 'vcek_milan.der')
  let chain = 'garbage'
  const s = await startHttpsServer((req, res) => {
    res.end(req.url === '/vcek/v1/Milan/cert_chain' ? chain : der)
  })
  t.teardown(s.close)
  const up = new Upstream({ name: 'kds', ca: s.ca })
  t.teardown(() => up.close())
  const opts = { base: s.url, product: 'Milan' as const, chipId, tcb: milanTcb, reportedTcb: 1n }
  await t.rejects(fetchKds(up, opts), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /cert_chain is not valid PEM/ })
  chain = vector('virtee-turin', 'cert_chain_turin').toString() + vector('virtee-milan', 'cert_chain_milan').toString()
  await t.rejects(fetchKds(up, opts), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /cert_chain holds 4 certificates, want 2/ })
})
