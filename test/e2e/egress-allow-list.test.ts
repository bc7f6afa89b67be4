// Issue 11 §1, end to end: a hostile HTTPS server on loopback that skr trusts (its certificate
// chains to a CA skr was given) records everything it receives. A caller names it, in every way a
// caller can name a host; skr must refuse before any work, and the server must receive nothing:
// no bearer token, no MAA token, no report. The last test shows the same server DOES receive skr's
// token when the allow-list is `*` (the reference's behaviour), so the refusals above are not
// vacuous.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { status } from '@grpc/grpc-js'
import { encodeAnnotationPacket } from '../../src/grpc/annotation.ts'
import { callFails, connectClients } from '../doubles/grpc-fakes.ts'
import { startHttpsServer } from '../helpers/https-server.ts'
import { findSecrets, startSidecarEnv, startTestEnvironment, type SidecarEnv } from '../helpers/sidecar-env.ts'

interface Received { method: string, url: string, authorization: boolean, body: string }

const env = await startTestEnvironment()
t.teardown(env.close)

const received: Received[] = []
const hostile = await startHttpsServer((req: IncomingMessage, res) => {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (chunk: string) => { body += chunk })
  req.on('end', () => {
    received.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization !== undefined, body })
    res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"code":"Hostile","message":"recorded"}}')
  })
}, { pki: env.pki })
t.teardown(hostile.close)
const P = hostile.port

function costs (): { maa: number, tokens: number, akv: number } {
  return { maa: env.maa.requests, tokens: env.imds.tokenRequests, akv: env.akv.requests.length }
}

t.test('with the emulated environment\'s allow-list, no caller can make skr contact another host', async t => {
  const skr = await startSidecarEnv({ env, overrides: { ServerType: 'both', SKR_GRPC_PORT: '0' } })
  t.teardown(skr.close)
  const before = costs()
  const maa = env.maa.endpoint
  const akv = env.akv.endpoint

  // Every spelling of the hostile server's address that a caller could try.
  const spellings = [`127.0.0.1:${P}`, `https://127.0.0.1:${P}/`, `localhost:${P}`, `2130706433:${P}`, `0x7f000001:${P}`,
    `127.1:${P}`, `0177.0.0.1:${P}`, `[::ffff:127.0.0.1]:${P}`, `LOCALHOST.:${P}`]
  for (const spelling of spellings) {
    const single = await skr.call('/key/release', { maa_endpoint: maa, akv_endpoint: spelling, kid: 'k' })
    t.equal(single.status, 403, `akv_endpoint ${spelling}`)
    t.equal(single.json?.code, 'ERR_ENDPOINT_NOT_ALLOWED')
    t.match(single.json?.error, /^akv_endpoint host ".+" is not allowed: it is not listed in SKR_ALLOWED_HOSTS$/)
  }
  const asMaa = await skr.call('/key/release', { maa_endpoint: `127.0.0.1:${P}`, akv_endpoint: akv, kid: 'k' })
  t.equal(asMaa.status, 403, 'maa_endpoint of a release')
  t.match(asMaa.json?.error, `maa_endpoint host "127.0.0.1:${P}" is not allowed`)
  const withToken = await skr.call('/key/release', { maa_endpoint: maa, akv_endpoint: `127.0.0.1:${P}`, kid: 'k', access_token: 'eyJhbGciOiJub25lIn0.eyJjYWxsZXIiOnRydWV9.' })
  t.equal(withToken.json?.code, 'ERR_ENDPOINT_NOT_ALLOWED', 'also when the caller brings its own token (the MAA token would still go there)')
  const batch = await skr.call('/key/release', { maa_endpoint: maa, akv_endpoint: `127.0.0.1:${P}`, kids: ['a', 'b'] })
  t.equal(batch.json?.code, 'ERR_ENDPOINT_NOT_ALLOWED', 'batch release')
  const attest = await skr.call('/attest/maa', { maa_endpoint: `127.0.0.1:${P}`, runtime_data: 'eyJ4IjoxfQ' })
  t.equal(attest.status, 403, '/attest/maa')
  t.equal(attest.json?.code, 'ERR_ENDPOINT_NOT_ALLOWED')
  const zone = await skr.call('/key/release', { maa_endpoint: maa, akv_endpoint: '[fe80::1%eth0]:443', kid: 'k' })
  t.equal(zone.status, 400, 'an IPv6 zone id is the caller\'s mistake')
  t.match(zone.json?.error, /zone id/)

  // gRPC: the annotation names the endpoints.
  const grpcAddress = skr.sidecar?.addresses.find(a => a.startsWith('grpc://'))?.slice('grpc://'.length)
  t.ok(grpcAddress, 'gRPC is served')
  const clients = connectClients(grpcAddress as string)
  t.teardown(() => { clients.close() })
  for (const [kms, attester] of [[`127.0.0.1:${P}`, maa], [akv, `127.0.0.1:${P}`]] as const) {
    const annotation = encodeAnnotationPacket({ kid: 'k', wrappedData: Buffer.from('x'), iv: Buffer.alloc(0), wrapType: 'rsa_3072', kmsEndpoint: kms, attesterEndpoint: attester }).toString('base64')
    const agent = Buffer.from('skr').toString('base64')
    const input = Buffer.from(JSON.stringify({ op: 'keyunwrap', keywrapparams: {}, keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [agent] } }, annotation } }))
    const failed = await callFails(clients.reference, 'UnWrapKey', { key_provider_key_wrap_protocol_input: input })
    t.equal(failed.code, status.PERMISSION_DENIED, `gRPC UnWrapKey kms=${kms} attester=${attester}`)
    t.match(failed.details, /^ERR_ENDPOINT_NOT_ALLOWED: /)
  }

  t.same(received, [], 'the hostile server received nothing at all')
  t.same(costs(), before, 'no MAA call, no token request, no vault call was made')
  t.same(findSecrets(skr.logs, []), [], 'nothing token-shaped in the logs')

  // The allowed endpoints still work.
  const metrics = await skr.call('/metrics')
  t.match(metrics.text, /skr_key_releases_total\{outcome="denied"\} \d+/, 'refusals count as denied releases')
})

t.test('the default allow-list refuses the emulated (loopback) endpoints too', async t => {
  const skr: SidecarEnv = await startSidecarEnv({ env, overrides: { SKR_ALLOWED_HOSTS: '' } })
  t.teardown(skr.close)
  const before = costs()
  const answer = await skr.call('/key/release', { maa_endpoint: env.maa.endpoint, akv_endpoint: env.akv.endpoint, kid: 'k' })
  t.equal(answer.status, 403)
  t.match(answer.json?.error, /SKR_ALLOWED_HOSTS is not set, so only Azure Key Vault, Managed HSM and Azure Attestation hosts/)
  t.same(costs(), before)
})

t.test('with SKR_ALLOWED_HOSTS=* (the reference\'s behaviour) the same request hands the hostile server skr\'s tokens', async t => {
  // The deadline only bounds the vault's retries of the hostile 500s: generous, for a busy machine.
  const skr = await startSidecarEnv({ env, overrides: { SKR_ALLOWED_HOSTS: '*', SKR_REQUEST_TIMEOUT_MS: '60000' } })
  t.teardown(skr.close)
  t.ok(skr.logs.some(line => line.includes('SKR_ALLOWED_HOSTS is *') && line.includes('"level":"warn"')), 'a warning at start-up')
  received.length = 0
  await skr.call('/key/release', { maa_endpoint: env.maa.endpoint, akv_endpoint: `127.0.0.1:${P}`, kid: 'k' })
  const release = received.find(r => r.url.startsWith('/keys/k/release'))
  t.ok(release?.authorization, 'the vault bearer token reached the hostile server')
  t.match(release?.body, /"target":"eyJ/, 'and so did the MAA token')
})
