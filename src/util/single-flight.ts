// Single-flight: concurrent callers asking for the same thing share one piece of work. Used for
// attestations (one MAA round trip however many releases need a token for the same endpoint),
// identical releases (one AKV call whose answer every waiter gets), VCEK chain refreshes (one
// THIM/KDS fetch after a TCB update) and Entra tokens (one fetch per scope).
//
// The shared work gets its own AbortSignal, not any caller's: one caller giving up must not fail
// the others. It is aborted only when every waiter has given up (nobody wants the answer, so
// the upstream call is not worth finishing; groups that keep the answer beyond their callers,
// such as a cache fill, turn this off) or when the group is closed. A failure reaches every
// waiter and nothing is remembered: the next call starts afresh.

/** Shares in-flight work by key. */
export interface SingleFlight<V> {
  /**
   * Joins the work in flight for `key`, or starts `work`. Settles with the shared result, or
   * rejects with `signal.reason` as soon as the caller's signal fires (the work goes on for the
   * other waiters).
   */
  run: (key: string, work: (signal: AbortSignal) => Promise<V>, signal?: AbortSignal) => Promise<V>
  /** Like run, for a caller that does not wait on a request: the work is never aborted by waiters leaving. */
  background: (key: string, work: (signal: AbortSignal) => Promise<V>) => Promise<V>
  /** How many keys have work in flight. */
  inFlight: () => number
  /** Aborts every flight (with `reason`); later calls run their work unshared. */
  close: (reason?: unknown) => void
}

/** How a group treats work its waiters have all left. */
export interface SingleFlightOptions {
  /**
   * Abort the work once every waiter has given up (default true). False when the answer is kept
   * beyond the callers (a cache fill): the next caller would only have to start it again.
   */
  abortAbandoned?: boolean
}

interface Flight<V> {
  promise: Promise<V>
  controller: AbortController
  waiters: number
  /** Waiters leaving never abort it: started or joined by background(), or the group keeps abandoned work. */
  pinned: boolean
}

/** Rejects with the signal's reason when it fires first; the work itself keeps running. */
export async function raceSignal<T> (work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await work
  signal.throwIfAborted()
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([work, aborted])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}

/** Creates an empty single-flight group. */
export function createSingleFlight<V> (options: SingleFlightOptions = {}): SingleFlight<V> {
  const keepAbandoned = options.abortAbandoned === false
  const flights = new Map<string, Flight<V>>()
  let closed = false

  function start (key: string, work: (signal: AbortSignal) => Promise<V>, pinned: boolean): Flight<V> {
    const controller = new AbortController()
    const promise = (async () => await work(controller.signal))()
    const flight: Flight<V> = { promise, controller, waiters: 0, pinned }
    flights.set(key, flight)
    // Forget the flight once it settles, success or failure: nothing is cached here.
    const settle = (): void => { if (flights.get(key) === flight) flights.delete(key) }
    promise.then(settle, settle)
    return flight
  }

  return {
    async run (key, work, signal) {
      signal?.throwIfAborted()
      if (closed) return await work(signal ?? new AbortController().signal)
      const flight = flights.get(key) ?? start(key, work, keepAbandoned)
      flight.waiters++
      try {
        return await raceSignal(flight.promise, signal)
      } finally {
        flight.waiters--
        if (signal?.aborted === true && flight.waiters === 0 && !flight.pinned) {
          // Nobody is left to want the answer: stop the upstream work and let the next caller start anew.
          if (flights.get(key) === flight) flights.delete(key)
          flight.controller.abort(signal.reason)
        }
      }
    },

    async background (key, work) {
      if (closed) return await work(new AbortController().signal)
      const flight = flights.get(key) ?? start(key, work, true)
      flight.pinned = true
      return await flight.promise
    },

    inFlight: () => flights.size,

    close (reason) {
      closed = true
      for (const flight of flights.values()) flight.controller.abort(reason)
      flights.clear()
    }
  }
}
