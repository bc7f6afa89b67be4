import { X509Certificate } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { azCacheBaseFrom, collateralFetcher, kdsBaseFrom, queryValue } from '../../../src/collateral/source.ts'
import { thimDocument } from '../../../src/simulated/emulated-chain.ts'
import { loadOrCreateEmulatedChain } from '../../../src/simulated/emulated-chain-cache.ts'
import { splitPem } from '../../../src/certs/pem.ts'
import type { CertCacheConfig } from '../../../src/config/sidecar-args.ts'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { startImdsEmulator } from '../../../src/emulator/imds.ts'
import { Upstream } from '../../../src/http/upstream.ts'
import type { UpstreamRequest, UpstreamResponse } from '../../../src/http/upstream.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { reportDataFor } from '../../../src/snp/report-data.ts'
import { createSimulatedProvider } from '../../../src/simulated/provider.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

const NONE: CertCacheConfig = { endpointType: null, endpoint: null, teeType: null, apiVersion: null, clientId: null }
const chain = await loadOrCreateEmulatedChain({ cacheDir: join(tmpdir(), 'skr-test-emulated-chain') })
const simulatedReport = parseReport((await createSimulatedProvider({ chain }).getReport(reportDataFor(Buffer.from('x')))).report)

/** An Upstream stand-in that records URLs and headers and answers from a handler, so no network is touched. */
function recordingUpstream (name: 'thim' | 'kds' | 'azcache', answer: (url: URL) => UpstreamResponse): Upstream & { seen: UpstreamRequest[] } {
  const seen: UpstreamRequest[] = []
  return Object.assign(Object.create(Upstream.prototype) as Upstream, {
    name,
    seen,
    request: async (req: UpstreamRequest) => { seen.push(req); return answer(new URL(String(req.url))) }
  }) as Upstream & { seen: UpstreamRequest[] }
}

const unreachable = (name: 'thim' | 'kds' | 'azcache'): Upstream & { seen: UpstreamRequest[] } =>
  recordingUpstream(name, () => { throw new Error(`${name} must not be called`) })

function thimAnswer (): UpstreamResponse {
  return { status: 200, headers: {}, body: Buffer.from(JSON.stringify(thimDocument(chain))), attempts: 1 }
}

t.test('endpoint helpers: the reference\'s defaults and spellings', async (t) => {
  t.equal(kdsBaseFrom(null), 'https://kdsintf.amd.com')
  t.equal(kdsBaseFrom('kdsintf.amd.com/vcek/v1'), 'https://kdsintf.amd.com', 'the reference\'s default endpoint')
  t.equal(kdsBaseFrom('kdsintf.amd.com/vcek/v1/'), 'https://kdsintf.amd.com')
  t.equal(kdsBaseFrom('https://proxy.example:8443/amd/vcek/v1'), 'https://proxy.example:8443/amd')
  t.equal(kdsBaseFrom('kds.example'), 'https://kds.example')
  t.equal(azCacheBaseFrom(null), 'https://global.acccache.azure.net')
  t.equal(azCacheBaseFrom('global.acccache.azure.net'), 'https://global.acccache.azure.net')
  t.equal(azCacheBaseFrom('https://127.0.0.1:9/'), 'https://127.0.0.1:9')
  t.equal(queryValue('api-version=2020-10-15-preview', /^\s*api-version\s*=\s*/i), '2020-10-15-preview')
  t.equal(queryValue('2020-10-15-preview', /^\s*api-version\s*=\s*/i), '2020-10-15-preview')
  t.equal(queryValue('clientId=ConfidentialACI', /^\s*clientId\s*=\s*/i), 'ConfidentialACI')
  t.equal(queryValue('clientId=', /^\s*clientId\s*=\s*/i), undefined)
  t.equal(queryValue(null, /x/), undefined)
})

t.test('no certcache: THIM at the IMDS default, with Metadata: true', async (t) => {
  const thim = recordingUpstream('thim', thimAnswer)
  const fetch = collateralFetcher({ certcache: NONE, upstreams: { thim, kds: unreachable('kds'), azcache: unreachable('azcache') } })
  const got = await fetch(null)
  t.equal(thim.seen.length, 1)
  t.equal(String(thim.seen[0]?.url), 'http://169.254.169.254/metadata/THIM/amd/certification')
  t.match(thim.seen[0]?.headers, { Metadata: 'true' })
  t.match(got, { source: 'thim', tcbm: chain.reportedTcb, cacheControlSeconds: 86400, vcekPem: chain.vcekPem })
})

t.test('an endpoint without endpoint_type is not guessed at: THIM default', async (t) => {
  const thim = recordingUpstream('thim', thimAnswer)
  const fetch = collateralFetcher({ certcache: { ...NONE, endpoint: 'kdsintf.amd.com/vcek/v1' }, upstreams: { thim, kds: unreachable('kds'), azcache: unreachable('azcache') } })
  await fetch(null)
  t.equal(String(thim.seen[0]?.url), 'http://169.254.169.254/metadata/THIM/amd/certification')
})

t.test('LocalTHIM: http://{endpoint} against the IMDS emulator', async (t) => {
  const imds = await startImdsEmulator({ thim: () => thimDocument(chain), tokenIssuer: await createBearerIssuer() })
  t.teardown(imds.close)
  const thim = new Upstream({ name: 'thim' })
  t.teardown(async () => { await thim.close() })
  const fetch = collateralFetcher({
    certcache: { ...NONE, endpointType: 'LocalTHIM', endpoint: `${imds.host}/metadata/THIM/amd/certification` },
    upstreams: { thim, kds: unreachable('kds'), azcache: unreachable('azcache') }
  })
  const got = await fetch(null)
  t.equal(imds.thimRequests, 1)
  t.match(got, { source: 'thim', tcbm: chain.reportedTcb, vcekPem: chain.vcekPem, chainPem: chain.chainPem })
})

t.test('simulated with no certcache serves the emulated chain without any upstream', async (t) => {
  const fetch = collateralFetcher({ certcache: NONE, upstreams: { thim: unreachable('thim'), kds: unreachable('kds'), azcache: unreachable('azcache') }, simulatedChain: chain })
  const a = await fetch(null)
  const b = await fetch(simulatedReport)
  t.match(a, { vcekPem: chain.vcekPem, chainPem: chain.chainPem, tcbm: chain.reportedTcb, source: 'thim' })
  t.not(a, b, 'a fresh object each time, so per-collateral caches are not confused')
  const aborted = new AbortController()
  aborted.abort(new Error('stop'))
  await t.rejects(fetch(null, aborted.signal), { message: 'stop' })
})

t.test('simulated with an explicit certcache fetches like production', async (t) => {
  const thim = recordingUpstream('thim', thimAnswer)
  const fetch = collateralFetcher({ certcache: { ...NONE, endpointType: 'LocalTHIM', endpoint: '127.0.0.1:1234/thim' }, upstreams: { thim, kds: unreachable('kds'), azcache: unreachable('azcache') }, simulatedChain: chain })
  await fetch(null)
  t.equal(String(thim.seen[0]?.url), 'http://127.0.0.1:1234/thim')
})

t.test('AMD and AzCache need a report first', async (t) => {
  const ups = { thim: unreachable('thim'), kds: unreachable('kds'), azcache: unreachable('azcache') }
  await t.rejects(collateralFetcher({ certcache: { ...NONE, endpointType: 'AMD' }, upstreams: ups })(null),
    { code: 'ERR_COLLATERAL_UNAVAILABLE', message: /AMD source needs a report first/ })
  await t.rejects(collateralFetcher({ certcache: { ...NONE, endpointType: 'AzCache' }, upstreams: ups })(null),
    { code: 'ERR_COLLATERAL_UNAVAILABLE', message: /AzCache source needs a report first/ })
})

t.test('AMD: product from tee_type, else from the report; Milan, Genoa and Turin URL forms', async (t) => {
  const urls: string[] = []
  const kds = recordingUpstream('kds', (url) => { urls.push(url.toString()); return { status: 404, headers: {}, body: Buffer.alloc(0), attempts: 1 } })
  const ups = { thim: unreachable('thim'), kds, azcache: unreachable('azcache') }
  const chip = simulatedReport.chipId.toString('hex')
  for (const [teeType, prefix] of [[null, `https://kdsintf.amd.com/vcek/v1/Milan/${chip}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`],
    ['genoa', `https://kdsintf.amd.com/vcek/v1/Genoa/${chip}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`],
    // The Milan-layout TCB 0x7308000000000003 read with Turin's layout: fmc 3, bl 0, tee 0, snp 0, ucode 0x73.
    ['Turin', `https://kdsintf.amd.com/vcek/v1/Turin/${chip.slice(0, 16)}?fmcSPL=3&blSPL=0&teeSPL=0&snpSPL=0&ucodeSPL=115`]] as const) {
    urls.length = 0
    const fetch = collateralFetcher({ certcache: { ...NONE, endpointType: 'AMD', endpoint: 'kdsintf.amd.com/vcek/v1', teeType }, upstreams: ups })
    await t.rejects(fetch(simulatedReport), { code: 'ERR_UPSTREAM_REJECTED' }, `${String(teeType)}: KDS 404 surfaces as its typed error`)
    t.ok(urls.includes(prefix), `${String(teeType)}: ${prefix}`)
    t.ok(urls.some((u) => u.endsWith('/cert_chain')), 'and the cert_chain')
  }
  t.throws(() => collateralFetcher({ certcache: { ...NONE, endpointType: 'AMD', teeType: 'SevSnpVM' }, upstreams: ups }), { code: 'ERR_CONFIG_INVALID' })
})

t.test('AMD without tee_type and a v2 report (no CPUID) cannot tell the product', needsVectors(), async (t) => {
  const report = parseReport(vector('azure-aci-milan', 'snp_report.bin'))
  t.equal(report.generation, null)
  const fetch = collateralFetcher({ certcache: { ...NONE, endpointType: 'AMD' }, upstreams: { thim: unreachable('thim'), kds: unreachable('kds'), azcache: unreachable('azcache') } })
  await t.rejects(fetch(report), { code: 'ERR_COLLATERAL_UNAVAILABLE', message: /tee_type/ })
})

t.test('AMD KDS double serving the genuine virtee Milan VCEK and chain', needsVectors(), async (t) => {
  const report = parseReport(Buffer.from(vectorText('virtee-milan', 'report_milan.hex').replace(/\s+/g, ''), 'hex'))
  const der = vector('virtee-milan', 'vcek_milan.der')
  const chainPem = vector('virtee-milan', 'cert_chain_milan')
  const seen: string[] = []
  const s = await startHttpsServer((req, res) => {
    seen.push(req.url ?? '')
    if (req.url === '/vcek/v1/Milan/cert_chain') { res.writeHead(200); res.end(chainPem); return }
    if (req.url === `/vcek/v1/Milan/${report.chipId.toString('hex')}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`) { res.writeHead(200); res.end(der); return }
    res.writeHead(404); res.end()
  })
  t.teardown(s.close)
  const kds = new Upstream({ name: 'kds', ca: s.ca })
  t.teardown(async () => { await kds.close() })
  const fetch = collateralFetcher({ certcache: { ...NONE, endpointType: 'AMD', endpoint: `127.0.0.1:${s.port}/vcek/v1`, teeType: 'Milan' }, upstreams: { thim: unreachable('thim'), kds, azcache: unreachable('azcache') } })
  const got = await fetch(report)
  t.equal(seen.length, 2)
  t.equal(got.source, 'kds')
  t.equal(got.tcbm, report.reportedTcb, 'KDS certifies the TCB asked for')
  t.ok(new X509Certificate(got.vcekPem).raw.equals(der), 'the DER VCEK, as PEM')
  t.equal(splitPem(got.chainPem).length, 2)
})

t.test('AzCache double: URL with chip id, unpadded TCB hex, api-version and clientId (both spellings)', needsVectors(), async (t) => {
  const report = parseReport(Buffer.from(vectorText('virtee-milan', 'report_milan.hex').replace(/\s+/g, ''), 'hex'))
  const vcekPem = `-----BEGIN CERTIFICATE-----\n${vector('virtee-milan', 'vcek_milan.der').toString('base64')}\n-----END CERTIFICATE-----\n`
  const bundle = vcekPem + vectorText('virtee-milan', 'cert_chain_milan')
  const seen: string[] = []
  const s = await startHttpsServer((req, res) => {
    seen.push(req.url ?? '')
    res.writeHead(200, { 'content-type': 'application/x-pem-file', 'cache-control': 'max-age=600' })
    res.end(bundle)
  })
  t.teardown(s.close)
  const azcache = new Upstream({ name: 'azcache', ca: s.ca })
  t.teardown(async () => { await azcache.close() })
  const want = `/SevSnpVM/certificates/${report.chipId.toString('hex')}/7308000000000003?api-version=2020-10-15-preview&clientId=ConfidentialACI`
  for (const [apiVersion, clientId] of [['api-version=2020-10-15-preview', 'clientId=ConfidentialACI'], ['2020-10-15-preview', 'ConfidentialACI'], [null, null]] as const) {
    seen.length = 0
    const fetch = collateralFetcher({
      certcache: { ...NONE, endpointType: 'AzCache', endpoint: `127.0.0.1:${s.port}`, teeType: 'SevSnpVM', apiVersion, clientId },
      upstreams: { thim: unreachable('thim'), kds: unreachable('kds'), azcache }
    })
    const got = await fetch(report)
    t.same(seen, [want], `${String(apiVersion)} / ${String(clientId)}`)
    t.match(got, { source: 'azcache', tcbm: report.reportedTcb, cacheControlSeconds: 600 })
  }
})

t.test('every source hands the store\'s signal to its upstream, so closing the store stops a fetch under way', async (t) => {
  const ac = new AbortController()
  const none = (): UpstreamResponse => ({ status: 404, headers: {}, body: Buffer.alloc(0), attempts: 1 })
  const thim = recordingUpstream('thim', none)
  const kds = recordingUpstream('kds', none)
  const azcache = recordingUpstream('azcache', none)
  const ups = { thim, kds, azcache }
  for (const [endpointType, up] of [['LocalTHIM', thim], ['AMD', kds], ['AzCache', azcache]] as const) {
    const fetch = collateralFetcher({ certcache: { ...NONE, endpointType, teeType: endpointType === 'AMD' ? 'Milan' : null }, upstreams: ups })
    await t.rejects(fetch(simulatedReport, ac.signal), { code: 'ERR_UPSTREAM_REJECTED' })
    t.ok(up.seen.length > 0 && up.seen.every((req) => req.signal === ac.signal), `${endpointType}: the request carries the signal`)
  }

  // End to end: a THIM that never answers; the store's close() must end the HTTP call, not leave
  // it (and the Upstream's close) waiting out the 30 s deadline.
  const { createCollateralStore } = await import('../../../src/collateral/store.ts')
  const s = await startHttpsServer(() => { /* never answers */ })
  t.teardown(s.close)
  const real = new Upstream({ name: 'thim', ca: s.ca, policy: { maxRetries: 0 } })
  const store = createCollateralStore({
    initial: null,
    fetch: collateralFetcher({ certcache: { ...NONE, endpointType: 'LocalTHIM', endpoint: `${s.url}/thim` }, upstreams: { ...ups, thim: real } })
  })
  const pending = store.refresh(null)
  pending.catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 100))
  const started = performance.now()
  store.close()
  await t.rejects(pending)
  await real.close()
  t.ok(performance.now() - started < 2000, `store.close() and upstream.close() end promptly (${Math.round(performance.now() - started)} ms)`)
})
