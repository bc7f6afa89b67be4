import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { azCacheUrl, DEFAULT_AZCACHE_BASE, fetchAzCache } from '../../../src/collateral/azcache.ts'
import { Upstream } from '../../../src/http/upstream.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'
import { needsVectors, vectorText } from '../../helpers/vectors.ts'

const chipId = Buffer.alloc(64, 0xab)
const hex = chipId.toString('hex')

t.test('URL form: chip id hex, TCB hex without zero padding, api-version and clientId', async (t) => {
  t.equal(DEFAULT_AZCACHE_BASE, 'https://global.acccache.azure.net')
  t.equal(azCacheUrl(DEFAULT_AZCACHE_BASE, chipId, 0x7308000000000003n),
    `https://global.acccache.azure.net/SevSnpVM/certificates/${hex}/7308000000000003?api-version=2020-10-15-preview&clientId=ConfidentialACI`)
  t.equal(azCacheUrl('https://cache.test/', chipId, 0x0308000000000003n, { apiVersion: '2021-01-01', clientId: 'Other Client' }),
    `https://cache.test/SevSnpVM/certificates/${hex}/308000000000003?api-version=2021-01-01&clientId=Other+Client`, 'no zero pad; query encoded')
  t.equal(azCacheUrl('https://cache.test', chipId, 0n).split('?')[0], `https://cache.test/SevSnpVM/certificates/${hex}/0`)
  t.throws(() => azCacheUrl(DEFAULT_AZCACHE_BASE, Buffer.alloc(8), 1n), TypeError)
  t.throws(() => azCacheUrl(DEFAULT_AZCACHE_BASE, chipId, -1n), TypeError)
  t.throws(() => azCacheUrl(DEFAULT_AZCACHE_BASE, chipId, 1n << 64n), TypeError)
})

function blocks (pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []
}

t.test('fetchAzCache finds the VCEK by CN, keeps ASK then ARK', needsVectors(), async (t) => {
  const bundle = vectorText('azure-aci-milan', 'uvm_host_amd_certificate.pem')
  const [vcek = '', ask = '', ark = ''] = blocks(bundle)
  let body = bundle
  const seen: string[] = []
  const s = await startHttpsServer((req, res) => {
    seen.push(req.url ?? '')
    if (!(req.url ?? '').startsWith(`/SevSnpVM/certificates/${hex}/7308000000000003?`)) { res.writeHead(404); res.end(); return }
    res.writeHead(200, { 'content-type': 'application/x-pem-file', 'cache-control': 'max-age=600' })
    res.end(body)
  })
  t.teardown(s.close)
  const up = new Upstream({ name: 'azcache', ca: s.ca, sleep: async () => {} })
  t.teardown(() => up.close())
  const opts = { base: s.url, chipId, reportedTcb: 0x7308000000000003n }

  const c = await fetchAzCache(up, opts)
  t.same(seen, [`/SevSnpVM/certificates/${hex}/7308000000000003?api-version=2020-10-15-preview&clientId=ConfidentialACI`])
  t.equal(c.source, 'azcache')
  t.equal(c.tcbm, 0x7308000000000003n)
  t.equal(c.cacheControlSeconds, 600)
  t.same(new X509Certificate(c.vcekPem).raw, new X509Certificate(vcek).raw)
  const chain = blocks(c.chainPem).map((p) => new X509Certificate(p).raw)
  t.same(chain, [new X509Certificate(ask).raw, new X509Certificate(ark).raw])

  body = ask + vcek + ark
  const shuffled = await fetchAzCache(up, opts)
  t.same(new X509Certificate(shuffled.vcekPem).raw, new X509Certificate(vcek).raw, 'found wherever it sits')
  t.equal(blocks(shuffled.chainPem).length, 2)

  body = ask + ark
  await t.rejects(fetchAzCache(up, opts), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /0 certificates with CN SEV-VCEK, want 1/ })
  body = vcek + ask
  await t.rejects(fetchAzCache(up, opts), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /1 issuer certificates, want 2/ })
  body = '{"not":"pem"}'
  await t.rejects(fetchAzCache(up, opts), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /not valid PEM/ })
  await t.rejects(fetchAzCache(up, { ...opts, reportedTcb: 1n }), { code: 'ERR_UPSTREAM_REJECTED', details: { upstream: 'azcache', upstreamStatus: 404 } })
})
