import t from 'tap'
import { X509Certificate } from 'node:crypto'
import type http from 'node:http'
import { fetchThim, parseThimDocument } from '../../../src/collateral/thim.ts'
import { Upstream } from '../../../src/http/upstream.ts'
import { startHttpServer } from '../../helpers/https-server.ts'
import { haveVectors, needsVectors, vectorText } from '../../helpers/vectors.ts'

const PATH = '/metadata/THIM/amd/certification'
// A genuine THIM document when the vectors are present; the structural tests below need one.
const genuine: Record<string, string> | null = haveVectors()
  ? JSON.parse(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json')) as Record<string, string>
  : null

t.test('parses the genuine ACI THIM document', needsVectors(), async (t) => {
  const doc = JSON.parse(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json')) as unknown
  const c = parseThimDocument(doc)
  t.equal(c.tcbm, 0x7308000000000003n)
  t.equal(c.cacheControlSeconds, 86400)
  t.equal(c.source, 'thim')
  t.equal(new X509Certificate(c.vcekPem).subject.split('\n').at(-1), 'CN=SEV-VCEK')
  const chain = c.chainPem.match(/-----BEGIN CERTIFICATE-----/g)
  t.equal(chain?.length, 2)
  t.match(c.chainPem, /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n/)
  t.equal(parseThimDocument(doc, 'security-context').source, 'security-context')
})

t.test('malformed documents name the field', needsVectors(), async (t) => {
  const g = genuine as Record<string, string>
  const cases: Array<[unknown, RegExp, string | undefined]> = [
    [null, /THIM document is null, want a JSON object/, undefined],
    [[g], /is an array/, undefined],
    ['text', /is string/, undefined],
    [{ ...g, vcekCert: undefined }, /field vcekCert is missing/, 'vcekCert'],
    [{ ...g, vcekCert: 42 }, /field vcekCert is number/, 'vcekCert'],
    [{ ...g, vcekCert: 'not pem' }, /field vcekCert is not valid PEM/, 'vcekCert'],
    [{ ...g, vcekCert: `${g.vcekCert ?? ''}${g.vcekCert ?? ''}` }, /field vcekCert holds 2 certificates, want 1/, 'vcekCert'],
    [{ ...g, vcekCert: (g.vcekCert ?? '').replace(/M/g, '*') }, /field vcekCert is not valid PEM/, 'vcekCert'],
    [{ ...g, certificateChain: g.vcekCert }, /field certificateChain holds 1 certificates, want 2/, 'certificateChain'],
    [{ ...g, tcbm: undefined }, /field tcbm is missing/, 'tcbm'],
    [{ ...g, tcbm: 7308000000000003 }, /field tcbm is number/, 'tcbm'],
    [{ ...g, tcbm: '730800000000003' }, /field tcbm has 15 characters or non-hex ones/, 'tcbm'],
    [{ ...g, tcbm: '73080000000000zz' }, /field tcbm/, 'tcbm'],
    [{ ...g, cacheControl: 'max-age=5' }, /field cacheControl is not a decimal number/, 'cacheControl'],
    [{ ...g, cacheControl: true }, /field cacheControl is boolean/, 'cacheControl']
  ]
  for (const [doc, message, field] of cases) {
    t.throws(() => parseThimDocument(doc), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message, details: { upstream: 'thim', field } }, String(message))
  }
  t.equal(parseThimDocument({ ...g, cacheControl: undefined }).cacheControlSeconds, null, 'cacheControl is optional')
  t.equal(parseThimDocument({ ...g, cacheControl: 60 }).cacheControlSeconds, 60)
  t.equal(parseThimDocument({ ...g, tcbm: '730800000000000a' }).tcbm, 0x730800000000000an, 'lowercase hex')
})

// Behaves like IMDS: 400 bad_request_102 without `Metadata: true`.
function thimDouble (body: () => string | null, seen: string[]): http.RequestListener {
  return (req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`)
    if (req.headers.metadata !== 'true') {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'bad_request_102', error_description: 'Required metadata header not specified' }))
      return
    }
    const b = body()
    if (b === null || req.url !== PATH) { res.writeHead(404); res.end(); return }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(b)
  }
}

t.test('fetchThim from a local double', needsVectors(), async (t) => {
  const seen: string[] = []
  let body: string | null = vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json')
  const s = await startHttpServer(thimDouble(() => body, seen))
  t.teardown(s.close)
  const up = new Upstream({ name: 'thim', sleep: async () => {} })
  t.teardown(() => up.close())

  const c = await fetchThim(up, { endpoint: `${s.url}${PATH}` })
  t.equal(c.tcbm, 0x7308000000000003n)
  t.equal(c.source, 'thim')
  t.same(seen, [`GET ${PATH}`])

  const noScheme = await fetchThim(up, { endpoint: `127.0.0.1:${s.port}${PATH}` })
  t.equal(noScheme.tcbm, 0x7308000000000003n, 'an endpoint without scheme means http')

  body = null
  await t.rejects(fetchThim(up, { endpoint: `${s.url}${PATH}` }),
    { code: 'ERR_UPSTREAM_REJECTED', details: { upstream: 'thim', upstreamStatus: 404 } })
  body = '{"vcekCert": '
  await t.rejects(fetchThim(up, { endpoint: `${s.url}${PATH}` }),
    { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /response body is not JSON/ })
  body = JSON.stringify({ vcekCert: 'x' })
  await t.rejects(fetchThim(up, { endpoint: `${s.url}${PATH}` }),
    { code: 'ERR_UPSTREAM_RESPONSE_INVALID', details: { field: 'vcekCert' } })
})

t.test('the double insists on the Metadata header, as IMDS does', async (t) => {
  const seen: string[] = []
  const s = await startHttpServer(thimDouble(() => '{}', seen))
  t.teardown(s.close)
  const up = new Upstream({ name: 'thim' })
  t.teardown(() => up.close())
  const res = await up.request({ method: 'GET', url: `${s.url}${PATH}` })
  t.equal(res.status, 400, 'proves the double would catch a missing header')
})

t.test('fetchThim: 5xx retried then ERR_UPSTREAM_UNAVAILABLE; default endpoint is IMDS', async (t) => {
  let hits = 0
  const s = await startHttpServer((_req, res) => { hits++; res.writeHead(500); res.end() })
  t.teardown(s.close)
  const up = new Upstream({ name: 'thim', sleep: async () => {}, policy: { maxRetries: 1 } })
  t.teardown(() => up.close())
  await t.rejects(fetchThim(up, { endpoint: `${s.url}${PATH}` }),
    { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'thim', upstreamStatus: 500, attempts: 2 } })
  t.equal(hits, 2)
  const { DEFAULT_THIM_ENDPOINT } = await import('../../../src/collateral/thim.ts')
  t.equal(DEFAULT_THIM_ENDPOINT, 'http://169.254.169.254/metadata/THIM/amd/certification')
})
