// When to retry an upstream call and how long to wait. Pure: the clock and the randomness are
// arguments, so every delay is reproducible in tests.
import type { UpstreamPolicy } from './upstream-types.ts'

// 408 and 429 say "try later"; these 5xx are the transient gateway/overload family. Other 5xx
// (501 Not Implemented, 505 ...) will not change on a retry.
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504])

/** True for the statuses worth retrying: 408, 429, 500, 502, 503, 504. */
export function isRetryableStatus (status: number): boolean {
  return RETRYABLE.has(status)
}

const DELAY_SECONDS = /^\s*(\d{1,10})\s*$/

/** Parses Retry-After (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) into ms from `now`; null when unusable. */
export function parseRetryAfter (value: string, now: Date): number | null {
  const seconds = DELAY_SECONDS.exec(value)
  if (seconds !== null) return Number(seconds[1]) * 1000
  // An HTTP-date always names a weekday or a month; refusing bare numbers with signs or
  // fractions keeps Date.parse's leniency from turning "1.5" or "-1" into a year.
  if (!/[A-Za-z]{3}/.test(value)) return null
  const at = Date.parse(value)
  if (Number.isNaN(at)) return null
  return Math.max(0, at - now.getTime())
}

/**
 * The delay before retry number `attempt` (1 = the first retry): the server's Retry-After when
 * usable, capped at 4 × maxDelayMs; otherwise full-jitter exponential backoff,
 * random × min(maxDelayMs, baseDelayMs × 2^(attempt-1)).
 */
export function retryDelayMs (
  attempt: number,
  policy: Pick<UpstreamPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  retryAfter: string | undefined,
  now: Date,
  random: () => number
): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new TypeError(`attempt must be an integer >= 1, got ${String(attempt)}`)
  if (retryAfter !== undefined) {
    const asked = parseRetryAfter(retryAfter, now)
    if (asked !== null) return Math.min(asked, policy.maxDelayMs * 4)
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1))
  const r = random()
  const jitter = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0
  return Math.floor(jitter * ceiling)
}
