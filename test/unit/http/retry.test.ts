import t from 'tap'
import { isRetryableStatus, parseRetryAfter, retryDelayMs } from '../../../src/http/retry.ts'
import { DEFAULT_UPSTREAM_POLICY } from '../../../src/http/upstream.ts'

const now = new Date('2031-03-04T05:06:07Z')
const policy = DEFAULT_UPSTREAM_POLICY

t.test('isRetryableStatus', async (t) => {
  for (const s of [408, 429, 500, 502, 503, 504]) t.equal(isRetryableStatus(s), true, String(s))
  for (const s of [200, 204, 301, 400, 401, 403, 404, 409, 410, 501, 505, 599]) t.equal(isRetryableStatus(s), false, String(s))
})

t.test('parseRetryAfter', async (t) => {
  t.equal(parseRetryAfter('0', now), 0)
  t.equal(parseRetryAfter(' 7 ', now), 7000)
  t.equal(parseRetryAfter(new Date(now.getTime() + 12_000).toUTCString(), now), 12_000, 'IMF-fixdate')
  t.equal(parseRetryAfter('Tuesday, 04-Mar-31 05:06:09 GMT', now), 2000, 'obsolete RFC 850 date')
  t.equal(parseRetryAfter(new Date(now.getTime() - 60_000).toUTCString(), now), 0, 'a past date means now')
  for (const bad of ['', '-1', '1.5', '+3', 'soon', 'Mon, 99 Foo 2031 00:00:00 GMT', '12345678901']) {
    t.equal(parseRetryAfter(bad, now), null, JSON.stringify(bad))
  }
})

t.test('retryDelayMs: full-jitter exponential backoff without Retry-After', async (t) => {
  const top = (): number => 0.9999999
  t.same([1, 2, 3, 4, 5, 6, 7].map((a) => retryDelayMs(a, policy, undefined, now, top)),
    [249, 499, 999, 1999, 3999, 4999, 4999], 'ceiling doubles from 250 ms up to maxDelayMs')
  t.equal(retryDelayMs(3, policy, undefined, now, () => 0), 0, 'random 0 → no wait')
  t.equal(retryDelayMs(2, policy, undefined, now, () => 0.5), 250)
  t.equal(retryDelayMs(1, policy, undefined, now, () => Number.NaN), 0, 'a broken random source cannot produce NaN')
  t.equal(retryDelayMs(1, policy, undefined, now, () => 7), 250, 'clamped to the ceiling')
  t.equal(retryDelayMs(1, policy, 'garbage', now, () => 0.5), 125, 'unusable Retry-After falls back to backoff')
  t.throws(() => retryDelayMs(0, policy, undefined, now, Math.random), TypeError)
})

t.test('retryDelayMs: Retry-After wins, capped at 4 × maxDelayMs', async (t) => {
  t.equal(retryDelayMs(1, policy, '1', now, () => 0), 1000)
  t.equal(retryDelayMs(5, policy, '2', now, () => 0.9), 2000, 'not jittered, not exponential')
  t.equal(retryDelayMs(1, policy, '3600', now, () => 0), 20_000)
  t.equal(retryDelayMs(1, { baseDelayMs: 10, maxDelayMs: 100 }, new Date(now.getTime() + 5000).toUTCString(), now, () => 0), 400)
})
