// The MAA signing-key cache's `maa_keys` metric: every lookup is one hit or one miss, with the
// rules the other caches use (a held, unexpired key is a hit; a fetch, a caller joining a fetch
// under way, an expired key and an unknown kid are misses; argument errors record nothing).
// /certs is a fake Upstream whose answers the test queues and releases by hand.
import { generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import type { UpstreamRequest, UpstreamResponse } from '../../../src/http/upstream.ts'
import { createJwksCache } from '../../../src/maa/jwks-cache.ts'

const ISSUER = 'https://sharedeus.eus.attest.azure.net'

function rsaJwk (kid: string): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { ...publicKey.export({ format: 'jwk' }), kid }
}
const A = rsaJwk('kid-a')
const B = rsaJwk('kid-b')

/** /certs answers from a queue; each answer waits until the test releases it (or answers at once). */
function fakeCerts (): {
  upstream: { request: (req: UpstreamRequest) => Promise<UpstreamResponse> }
  answer: (status: number, keys: Array<Record<string, unknown>>) => void
  urls: string[]
} {
  const urls: string[] = []
  const queued: UpstreamResponse[] = []
  const waiting: Array<(res: UpstreamResponse) => void> = []
  return {
    urls,
    upstream: {
      async request (req) {
        urls.push(String(req.url))
        const ready = queued.shift()
        if (ready !== undefined) return ready
        return await new Promise<UpstreamResponse>(resolve => { waiting.push(resolve) })
      }
    },
    answer (status, keys) {
      const res = { status, headers: {}, body: Buffer.from(JSON.stringify({ keys })), attempts: 1 }
      const next = waiting.shift()
      if (next === undefined) queued.push(res)
      else next(res)
    }
  }
}

const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise<void>(resolve => { setImmediate(resolve) }) }

t.test('every lookup records maa_keys: a hit for a held key, a miss for everything that is not', async t => {
  const certs = fakeCerts()
  const results: string[] = []
  let clock = Date.parse('2024-06-01T00:00:00Z')
  const jwks = createJwksCache({
    upstream: certs.upstream,
    now: () => new Date(clock),
    metrics: { cacheResult (cache, hit) { t.equal(cache, 'maa_keys'); results.push(hit ? 'hit' : 'miss') } }
  })

  certs.answer(200, [A])
  await jwks.keyFor(ISSUER, 'kid-a')
  await jwks.keyFor(ISSUER, 'kid-a')
  t.same(results, ['miss', 'hit'], 'fetched, then served from the cache')

  clock += 1_000
  await t.rejects(jwks.keyFor(ISSUER, 'kid-b'), { code: 'ERR_MAA_TOKEN_INVALID' })
  t.equal(certs.urls.length, 1, 'inside the 30 s quiet period: no refetch')
  t.same(results.slice(2), ['miss'], 'an unknown kid is a miss even without a fetch')

  clock += 30_000
  const joined = [jwks.keyFor(ISSUER, 'kid-b'), jwks.keyFor(ISSUER, 'kid-b')]
  await settle()
  t.equal(certs.urls.length, 2, 'one fetch for both callers')
  t.same(results.slice(3), ['miss', 'miss'], 'the caller joining the fetch under way is a miss too')
  certs.answer(200, [A, B])
  await Promise.all(joined)
  await jwks.keyFor(ISSUER, 'kid-b')
  t.same(results.slice(5), ['hit'])

  clock += 60 * 60 * 1000 + 1
  certs.answer(500, [])
  await t.rejects(jwks.keyFor(ISSUER, 'kid-a'), { code: 'ERR_UPSTREAM_REJECTED' })
  t.same(results.slice(6), ['miss'], 'an expired key is a miss (its refetch fails here)')
  certs.answer(200, [A])
  await jwks.keyFor(ISSUER, 'kid-a')
  await jwks.keyFor(ISSUER, 'kid-a')
  t.same(results.slice(7), ['miss', 'hit'], 'a failure is not cached')

  await t.rejects(jwks.keyFor('http://sharedeus.eus.attest.azure.net', 'kid-a'), TypeError)
  await t.rejects(jwks.keyFor(ISSUER, 5 as unknown as string), TypeError)
  t.same(results.slice(9), [], 'argument errors record nothing')
  t.equal(certs.urls[0], `${ISSUER}/certs`)
})

t.test('without metrics the cache works the same', async t => {
  const certs = fakeCerts()
  certs.answer(200, [A])
  const jwks = createJwksCache({ upstream: certs.upstream })
  t.equal((await jwks.keyFor(ISSUER, 'kid-a')).asymmetricKeyType, 'rsa')
})
