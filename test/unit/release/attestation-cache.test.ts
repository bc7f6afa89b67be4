import t from 'tap'
import crypto from 'node:crypto'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { UpstreamUnavailable } from '../../../src/errors.ts'
import { createAttestationCache, noteRefusal } from '../../../src/release/attestation-cache.ts'
import type { AttestationCacheOptions } from '../../../src/release/attestation-cache.ts'
import type { WrappingKey } from '../../../src/release/wrapping-key.ts'

const MAA = 'sharedeus.eus.attest.azure.net'
const privateKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const T0 = Date.parse('2025-06-01T12:00:00Z')

/** A JWT-shaped MAA token with the given claims (the cache only reads `exp`). */
function token (claims: Record<string, unknown>): string {
  const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.c2ln`
}

/** An attestation double that counts maaToken calls; tokens live 8 h (docs/protocols.md#maa-token) unless told otherwise. */
class CountingAttestation {
  calls = 0
  signals: Array<AbortSignal | undefined> = []
  lifetimeSeconds: number | null = 8 * 3600
  failWith: unknown = null
  /** When set, each call waits for release() before answering. */
  gate: { promise: Promise<void>, release: () => void } | null = null
  private readonly clock: { t: number }
  constructor (clock: { t: number }) { this.clock = clock }

  hold (): void {
    let release = (): void => {}
    const promise = new Promise<void>((resolve) => { release = resolve })
    this.gate = { promise, release }
  }

  maaToken = async (_maa: string, runtimeData: Buffer, signal?: AbortSignal): Promise<string> => {
    this.calls++
    this.signals.push(signal)
    const n = this.calls
    if (this.gate !== null) {
      const gate = this.gate.promise
      await new Promise<void>((resolve, reject) => {
        signal?.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
        gate.then(resolve, reject)
      })
    }
    if (this.failWith !== null) throw this.failWith
    const iat = Math.floor(this.clock.t / 1000)
    return token({ iat, n, jwks: runtimeData.toString(), ...(this.lifetimeSeconds === null ? {} : { exp: iat + this.lifetimeSeconds }) })
  }
}

function setup (options: Partial<AttestationCacheOptions> = {}): {
  clock: { t: number }
  attestation: CountingAttestation
  cache: ReturnType<typeof createAttestationCache>
  metrics: boolean[]
  keys: () => number
  logs: string[]
} {
  const clock = { t: T0 }
  const attestation = new CountingAttestation(clock)
  let keys = 0
  const wrappingKey = async (): Promise<WrappingKey> => {
    keys++
    return { privateKey, jwks: Buffer.from(`{"keys":["k${keys}"]}`), kid: `k${keys}` }
  }
  const metrics: boolean[] = []
  const logs: string[] = []
  const log = pino({ level: 'debug' }, new Writable({ write (chunk: Buffer, _e, cb) { logs.push(chunk.toString()); cb() } }))
  const cache = createAttestationCache({
    attestation,
    wrappingKey,
    now: () => new Date(clock.t),
    metrics: { cacheResult: (name, hit) => { if (name === 'attestation') metrics.push(hit) } },
    log,
    ...options
  })
  t.teardown(cache.close)
  return { clock, attestation, cache, metrics, keys: () => keys, logs }
}

const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve)) }

t.test('N acquires within the TTL share one attestation; after the TTL there is a second', async (t) => {
  const s = setup()
  const first = await s.cache.acquire(MAA)
  t.equal(first.reused, false)
  for (let i = 0; i < 9; i++) {
    s.clock.t += 10_000
    const lease = await s.cache.acquire(MAA)
    t.equal(lease.entry, first.entry, `acquire ${i + 2} reuses the entry`)
    t.equal(lease.reused, true)
  }
  t.equal(s.attestation.calls, 1)
  t.equal(s.keys(), 1, 'one wrapping key')
  t.same(s.metrics, [false, true, true, true, true, true, true, true, true, true])
  t.equal(first.entry.expiresAt, T0 + 300_000, 'default ttl 300 s')

  s.clock.t = T0 + 300_000
  const after = await s.cache.acquire(MAA)
  t.equal(after.reused, false)
  t.not(after.entry, first.entry)
  t.not(after.entry.wrapping.kid, first.entry.wrapping.kid, 'a new wrapping key with the new token')
  t.equal(s.attestation.calls, 2)
})

t.test('refresh-ahead: past 80% of its life a use starts ONE background attestation that replaces the entry before it expires', async (t) => {
  const s = setup({ ttlMs: 100_000 })
  const first = await s.cache.acquire(MAA)
  s.clock.t = T0 + 79_000
  await s.cache.acquire(MAA)
  await flush()
  t.equal(s.attestation.calls, 1, 'no refresh before 80%')

  s.attestation.hold()
  s.clock.t = T0 + 85_000
  const during = await Promise.all([s.cache.acquire(MAA), s.cache.acquire(MAA), s.cache.acquire(MAA)])
  t.ok(during.every((l) => l.entry === first.entry && l.reused), 'the current entry is still served, nobody waits')
  await flush()
  t.equal(s.attestation.calls, 2, 'exactly one extra attestation however many uses')
  s.attestation.gate?.release()
  s.attestation.gate = null
  await flush()

  const next = await s.cache.acquire(MAA)
  t.not(next.entry, first.entry, 'replaced before the old entry expired')
  t.equal(next.reused, true)
  t.equal(next.entry.expiresAt, T0 + 85_000 + 100_000)
  t.equal(s.attestation.calls, 2)
})

t.test('a failed background refresh keeps the entry until it expires, then the next use attests in the foreground', async (t) => {
  const s = setup({ ttlMs: 100_000 })
  const first = await s.cache.acquire(MAA)
  s.attestation.failWith = new UpstreamUnavailable('maa: HTTP 503')
  s.clock.t = T0 + 90_000
  t.equal((await s.cache.acquire(MAA)).entry, first.entry)
  await flush()
  t.equal(s.attestation.calls, 2)
  t.equal((await s.cache.acquire(MAA)).entry, first.entry, 'still served')
  await flush()
  t.equal(s.attestation.calls, 2, 'one refresh attempt per entry, not one per use')
  t.match(s.logs.join(''), /background attestation refresh failed/)

  s.attestation.failWith = null
  s.clock.t = T0 + 100_000
  const next = await s.cache.acquire(MAA)
  t.equal(next.reused, false)
  t.equal(s.attestation.calls, 3)
})

t.test('concurrent misses share one attestation', async (t) => {
  const s = setup()
  s.attestation.hold()
  const pending = Array.from({ length: 10 }, async () => await s.cache.acquire(MAA))
  await flush()
  s.attestation.gate?.release()
  const leases = await Promise.all(pending)
  t.equal(s.attestation.calls, 1)
  t.ok(leases.every((l) => l.entry === leases[0]?.entry && !l.reused), 'all got the new entry, as fresh')
  t.not(s.attestation.signals[0], undefined, 'the shared attestation has its own signal')
})

t.test('a failure reaches every waiter, nothing is cached, and the next call retries', async (t) => {
  const s = setup()
  s.attestation.failWith = new UpstreamUnavailable('maa x: HTTP 503', { details: { upstream: 'maa' } })
  s.attestation.hold()
  const pending = Array.from({ length: 5 }, async () => await s.cache.acquire(MAA).then(() => null, (e: unknown) => e))
  await flush()
  s.attestation.gate?.release()
  s.attestation.gate = null
  const errors = await Promise.all(pending)
  t.equal(s.attestation.calls, 1)
  for (const err of errors) t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', message: 'attestation: maa x: HTTP 503', details: { step: 'attestation' } })
  t.equal(s.cache.size(), 0)

  s.attestation.failWith = null
  const lease = await s.cache.acquire(MAA)
  t.equal(lease.reused, false)
  t.equal(s.attestation.calls, 2)
})

t.test('a waiter that gives up does not fail the others; when all give up the attestation still fills the cache', async (t) => {
  const s = setup()
  s.attestation.hold()
  const leaving = new AbortController()
  const staying = s.cache.acquire(MAA)
  const left = s.cache.acquire(MAA, leaving.signal)
  await flush()
  leaving.abort(new Error('deadline'))
  await t.rejects(left, { message: 'deadline' })
  s.attestation.gate?.release()
  s.attestation.gate = null
  t.equal((await staying).reused, false, 'the other waiter got the attestation')

  const s2 = setup()
  s2.attestation.hold()
  const only = new AbortController()
  const alone = s2.cache.acquire(MAA, only.signal)
  await flush()
  only.abort(new Error('gone'))
  await t.rejects(alone, { message: 'gone' })
  t.equal(s2.attestation.signals[0]?.aborted, false, 'a cache fill is not aborted when its only waiter leaves')
  s2.attestation.gate?.release()
  s2.attestation.gate = null
  await flush()
  const next = await s2.cache.acquire(MAA)
  t.equal(s2.attestation.calls, 1, 'the next caller is served by the attestation the first one started')
  t.equal(next.reused, true)
})

t.test('ttl 0: no cache, a new key and token per acquire under the caller\'s own signal', async (t) => {
  const s = setup({ ttlMs: 0 })
  t.equal(s.cache.reuses, false)
  const signal = new AbortController().signal
  const leases = [await s.cache.acquire(MAA, signal), await s.cache.acquire(MAA), await s.cache.acquire(MAA)]
  t.equal(s.attestation.calls, 3)
  t.equal(s.keys(), 3)
  t.ok(leases.every((l) => !l.reused))
  t.equal(s.attestation.signals[0], signal)
  t.equal(s.cache.size(), 0)
  t.same(s.metrics, [], 'no cache, no cache metrics')
})

t.test('a token expiring sooner than the TTL is used only until exp minus the margin', async (t) => {
  // refreshAhead 1: no background refresh, so every attestation below is a foreground miss.
  const s = setup({ refreshAhead: 1 })
  s.attestation.lifetimeSeconds = 90
  const first = await s.cache.acquire(MAA)
  t.equal(first.entry.expiresAt, T0 + 30_000, 'exp (90 s) − margin (60 s)')
  s.clock.t = T0 + 29_000
  t.equal((await s.cache.acquire(MAA)).entry, first.entry)
  s.clock.t = T0 + 30_000
  t.not((await s.cache.acquire(MAA)).entry, first.entry)
  t.equal(s.attestation.calls, 2)

  // A token that is already within the margin, or carries no exp, serves its own release only.
  s.clock.t = T0 + 60_000
  s.attestation.lifetimeSeconds = 30
  const short = await s.cache.acquire(MAA)
  t.equal(short.entry.expiresAt, short.entry.obtainedAt)
  await s.cache.acquire(MAA)
  s.attestation.lifetimeSeconds = null
  await s.cache.acquire(MAA)
  await s.cache.acquire(MAA)
  t.equal(s.attestation.calls, 6)
  t.match(s.logs.join(''), /used for this release only/)
})

t.test('entries are per MAA endpoint, bounded, and can be invalidated', async (t) => {
  const s = setup({ maxEndpoints: 2 })
  const a = await s.cache.acquire('a.attest.azure.net')
  await s.cache.acquire('b.attest.azure.net')
  await s.cache.acquire('c.attest.azure.net')
  t.equal(s.cache.size(), 2, 'the oldest endpoint was dropped')
  t.equal(s.attestation.calls, 3)
  t.equal((await s.cache.acquire('a.attest.azure.net')).reused, false)
  t.not((await s.cache.acquire('a.attest.azure.net')).entry, a.entry)

  const c = await s.cache.acquire('c.attest.azure.net')
  s.cache.invalidate(a.entry)
  t.equal(s.cache.size(), 2, 'invalidating an entry that is no longer current changes nothing')
  s.cache.invalidate(c.entry)
  t.equal((await s.cache.acquire('c.attest.azure.net')).reused, false, 'invalidated: the next acquire re-attests')
})

t.test('refusals remembered per entry are bounded', async (t) => {
  const s = setup()
  const { entry } = await s.cache.acquire(MAA)
  for (let i = 0; i < 70; i++) noteRefusal(entry, `v|k${i}`)
  t.equal(entry.refused.size, 64)
  t.notOk(entry.refused.has('v|k0'), 'the oldest is forgotten first')
  t.ok(entry.refused.has('v|k69'))
})

t.test('settings are checked; close drops entries and later acquires attest unshared', async (t) => {
  t.throws(() => createAttestationCache({ attestation: new CountingAttestation({ t: 0 }), wrappingKey: async () => { throw new Error('x') }, ttlMs: -1 }), TypeError)
  const s = setup()
  await s.cache.acquire(MAA)
  s.cache.close()
  t.equal(s.cache.size(), 0)
  t.equal((await s.cache.acquire(MAA)).reused, false)
  t.equal(s.cache.size(), 0, 'nothing is cached after close')
})

t.test('no key, token or JWKS reaches the log', async (t) => {
  const s = setup()
  const { entry } = await s.cache.acquire(MAA)
  s.clock.t += 290_000
  await s.cache.acquire(MAA)
  await flush()
  const text = s.logs.join('')
  t.ok(text.length > 0)
  t.notOk(text.includes(entry.token))
  t.notOk(text.includes(entry.token.split('.')[1] as string))
  t.notOk(text.includes(entry.wrapping.jwks.toString()))
})
