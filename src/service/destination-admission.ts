// Admission per destination: at most `limit` requests in flight for one upstream host, so a vault
// that hangs (or is slow) holds only its own share of the sidecar's capacity and releases from
// other vaults keep being admitted. The destination of a key release is its vault host; of an MAA
// attestation, its MAA host. Over the limit a request is refused at once (503 ERR_OVERLOADED with
// Retry-After), never queued: a queue behind a hung host would only hold the caller until the
// request deadline. Entries exist only while a destination has requests in flight, so the map
// cannot grow with the number of names callers try.
import { Overloaded } from '../errors.ts'

/** A slot taken by enter(); calling it gives the slot back (later calls do nothing). */
export type Leave = () => void

/** The per-destination counters. */
export interface DestinationAdmission {
  /** The most requests one destination may have in flight. */
  readonly limit: number
  /**
   * Takes a slot for `destination`.
   * @throws Overloaded (reason 'destination') when it already has `limit` in flight
   */
  enter (destination: string): Leave
  /** Requests in flight for `destination`. */
  inFlight (destination: string): number
  /** Destinations with requests in flight. */
  readonly destinations: number
}

/** How to build the admission. */
export interface DestinationAdmissionOptions {
  limit: number
  /** Retry-After (seconds) of a refusal; default 1. */
  retryAfterSeconds?: number
  /** Called once per refusal (metrics). */
  onShed?: () => void
}

/** Builds the counters; throws TypeError for a limit below 1. */
export function createDestinationAdmission (options: DestinationAdmissionOptions): DestinationAdmission {
  const { limit } = options
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`destination admission limit must be a whole number >= 1, got ${String(limit)}`)
  const retryAfterSeconds = options.retryAfterSeconds ?? 1
  const counts = new Map<string, number>()
  return {
    limit,
    enter (destination) {
      const count = counts.get(destination) ?? 0
      if (count >= limit) {
        options.onShed?.()
        throw new Overloaded(`request shed: ${destination} already has ${limit} requests in flight (SKR_MAX_INFLIGHT_PER_DESTINATION)`,
          { details: { reason: 'destination', limit, retryAfterSeconds } })
      }
      counts.set(destination, count + 1)
      let left = false
      return () => {
        if (left) return
        left = true
        const now = (counts.get(destination) ?? 1) - 1
        if (now <= 0) counts.delete(destination)
        else counts.set(destination, now)
      }
    },
    inFlight: (destination) => counts.get(destination) ?? 0,
    get destinations () { return counts.size }
  }
}
