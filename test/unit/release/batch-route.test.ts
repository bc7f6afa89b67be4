// POST /key/release with `kids`: the batch shape, its validation, and that the reference's
// single-kid shape is untouched.
import t from 'tap'
import { pino } from 'pino'
import { KeyNotFound, KeyReleaseDenied, UpstreamUnavailable } from '../../../src/errors.ts'
import { buildApp } from '../../../src/server/app.ts'
import type { KeyReleaseRequest } from '../../../src/service/types.ts'
import { FAKE_JWK, FakeAttestationService, FakeBatchKeyReleaseService, FakeKeyReleaseService, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'

const BASE = { maa_endpoint: 'https://sharedeus.eus.attest.azure.net/', akv_endpoint: 'myvault.vault.azure.net' }

function setup (keyRelease: FakeKeyReleaseService = new FakeBatchKeyReleaseService()): { app: ReturnType<typeof buildApp>, keyRelease: FakeKeyReleaseService, logs: string[] } {
  const logs: string[] = []
  const logger = pino({ level: 'trace' }, { write: (line: string) => { logs.push(line) } })
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease, logger, backpressure: NO_SHEDDING })
  t.teardown(async () => { await app.close() })
  return { app, keyRelease, logs }
}

t.test('mixed success and failure: 200 with per-kid keys (JWK strings) and errors ({error, code})', async (t) => {
  const { app, keyRelease, logs } = setup()
  const service = keyRelease as FakeBatchKeyReleaseService
  service.errors.set('b/0123456789abcdef0123456789abcdef', new KeyNotFound('release: AKV has no key b/0123456789abcdef0123456789abcdef: KeyNotFound'))
  service.errors.set('c', new UpstreamUnavailable('release: akv internal.host.example: HTTP 503 after 4 attempts'))
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...BASE, kids: ['a', 'b/0123456789abcdef0123456789abcdef', 'c'], access_token: 'caller' } })
  t.equal(res.statusCode, 200)
  const body = res.json<{ keys: Record<string, string>, errors: Record<string, Record<string, string>> }>()
  t.same(Object.keys(body), ['keys', 'errors'])
  t.same(JSON.parse(body.keys['a'] as string), { ...FAKE_JWK, kid: 'a' })
  t.same(body.errors, {
    'b/0123456789abcdef0123456789abcdef': { error: 'release: AKV has no key b/0123456789abcdef0123456789abcdef: KeyNotFound', code: 'ERR_KEY_NOT_FOUND' },
    c: { error: 'upstream unavailable', code: 'ERR_UPSTREAM_UNAVAILABLE' }
  }, 'a 5xx error gets its fixed sentence; its detail goes to the log only')
  t.same(service.batches[0]?.request, {
    maaEndpoint: 'sharedeus.eus.attest.azure.net',
    akvEndpoint: 'myvault.vault.azure.net',
    kids: ['a', 'b/0123456789abcdef0123456789abcdef', 'c'],
    accessToken: 'caller'
  })
  t.type(service.batches[0]?.signal, AbortSignal, 'under the request deadline')
  t.match(logs.join(''), /internal\.host\.example/)
  t.notMatch(res.body, /internal\.host\.example/)
})

t.test('nothing released: the first kid\'s error, in the usual error shape and status', async (t) => {
  const { app, keyRelease } = setup()
  const service = keyRelease as FakeBatchKeyReleaseService
  service.errors.set('a', new KeyReleaseDenied('release: AKV denied the key release: Forbidden'))
  service.errors.set('b', new UpstreamUnavailable('release: HTTP 503'))
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...BASE, kids: ['a', 'b'] } })
  t.equal(res.statusCode, 403)
  t.match(res.json(), { error: 'release: AKV denied the key release: Forbidden', code: 'ERR_KEY_RELEASE_DENIED', requestId: /./ })
})

t.test('shape validation', async (t) => {
  const { app, keyRelease } = setup()
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['both kid and kids', { ...BASE, kid: 'a', kids: ['b'] }, 'body.kid and body.kids are mutually exclusive'],
    ['17 kids', { ...BASE, kids: Array.from({ length: 17 }, (_v, i) => `k${i}`) }, 'body.kids must list at most 16 items'],
    ['no kids', { ...BASE, kids: [] }, 'body.kids must list at least 1 item'],
    ['a repeated kid', { ...BASE, kids: ['a', 'a'] }, 'body.kids must not list the same item twice'],
    ['a malformed kid', { ...BASE, kids: ['a', 'x/y/z'] }, 'body.kids entries must be key names (1-127 letters, digits or dashes), optionally followed by /version (1-64 letters or digits)'],
    ['kids not an array', { ...BASE, kids: 'a' }, 'body.kids must be an array'],
    ['neither kid nor kids', { ...BASE }, 'body.kid is required']
  ]
  for (const [name, payload, error] of cases) {
    const res = await app.inject({ method: 'POST', url: '/key/release', payload })
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { error, code: 'ERR_REQUEST_INVALID' }, name)
  }
  t.equal((keyRelease as FakeBatchKeyReleaseService).batches.length, 0)
  t.equal(keyRelease.calls.length, 0)
})

t.test('16 kids are fine; the single-kid shape is untouched', async (t) => {
  const { app, keyRelease } = setup()
  const kids = Array.from({ length: 16 }, (_v, i) => `k${i}`)
  const batch = await app.inject({ method: 'POST', url: '/key/release', payload: { ...BASE, kids } })
  t.equal(batch.statusCode, 200)
  t.same(Object.keys(batch.json<{ keys: object }>().keys), kids)

  const single = await app.inject({ method: 'POST', url: '/key/release', payload: { ...BASE, kid: 'a', access_token: '' } })
  t.equal(single.statusCode, 200)
  t.same(Object.keys(single.json()), ['key'])
  t.same(keyRelease.calls[0]?.request, { maaEndpoint: 'sharedeus.eus.attest.azure.net', akvEndpoint: 'myvault.vault.azure.net', kid: 'a' } satisfies KeyReleaseRequest)
})

t.test('a service without releaseMany answers a batch with 400', async (t) => {
  const { app } = setup(new FakeKeyReleaseService())
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...BASE, kids: ['a'] } })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { error: 'body.kids (batch release) is not supported by this server', code: 'ERR_REQUEST_INVALID' })
})
