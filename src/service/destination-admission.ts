// Admission per destination: at most `limit` requests in flight for one upstream host, so a vault
// that hangs (or is slow) holds only its own share of the sidecar's capacity and releases from
// other vaults keep being admitted; and at most `totalLimit` over all destinations, for every
// transport (the HTTP edge has its own cap too; gRPC has only this one). The destination of a key
// release is its vault host; of an MAA attestation, its MAA host. Over a limit a request is
// refused at once (503 ERR_OVERLOADED with Retry-After, gRPC UNAVAILABLE), never queued: a queue
// behind a hung host would only hold the caller until the request deadline. Entries exist only
// while a destination has requests in flight, so the map cannot grow with the number of names
// callers try.
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
  /** Requests in flight over all destinations. */
  readonly total: number
}

/** How to build the admission. */
export interface DestinationAdmissionOptions {
  limit: number
  /** The most requests in flight over all destinations; default unbounded. */
  totalLimit?: number
  /** Retry-After (seconds) of a refusal; default 1. */
  retryAfterSeconds?: number
  /** Called once per refusal (metrics), with the reason: 'destination' or 'in_flight'. */
  onShed?: (reason: 'destination' | 'in_flight') => void
}

/** Builds the counters; throws TypeError for a limit below 1. */
export function createDestinationAdmission (options: DestinationAdmissionOptions): DestinationAdmission {
  const { limit } = options
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`destination admission limit must be a whole number >= 1, got ${String(limit)}`)
  const totalLimit = options.totalLimit ?? Number.POSITIVE_INFINITY
  if (!(totalLimit >= 1)) throw new TypeError(`destination admission totalLimit must be at least 1, got ${String(totalLimit)}`)
  const retryAfterSeconds = options.retryAfterSeconds ?? 1
  const counts = new Map<string, number>()
  let total = 0
  return {
    limit,
    enter (destination) {
      if (total >= totalLimit) {
        options.onShed?.('in_flight')
        throw new Overloaded(`request shed: ${totalLimit} requests in flight (SKR_MAX_INFLIGHT)`,
          { details: { reason: 'in_flight', limit: totalLimit, retryAfterSeconds } })
      }
      const count = counts.get(destination) ?? 0
      if (count >= limit) {
        options.onShed?.('destination')
        throw new Overloaded(`request shed: ${destination} already has ${limit} requests in flight (SKR_MAX_INFLIGHT_PER_DESTINATION)`,
          { details: { reason: 'destination', limit, retryAfterSeconds } })
      }
      counts.set(destination, count + 1)
      total++
      let left = false
      return () => {
        if (left) return
        left = true
        total--
        const now = (counts.get(destination) ?? 1) - 1
        if (now <= 0) counts.delete(destination)
        else counts.set(destination, now)
      }
    },
    inFlight: (destination) => counts.get(destination) ?? 0,
    get destinations () { return counts.size },
    get total () { return total }
  }
}
