// One deadline for one call, whatever the transport. The work gets an AbortSignal that fires when
// the call outlives its time budget or the caller goes away, and the caller stops waiting at that
// moment too, so work that ignores its signal cannot hold a client past the deadline. Transports
// (server/deadline.ts for HTTP, grpc/service.ts) only say how they notice the caller leaving.
import { isSidecarError, UpstreamTimeout, type SidecarError } from '../errors.ts'
import { raceSignal } from './single-flight.ts'

/**
 * Subscribes to the caller going away (or the server stopping): calls `cancel` with what to report
 * then (a message, reported as UpstreamTimeout, or the error itself), and returns the unsubscribe.
 */
export type WatchCancel = (cancel: (reason: string | SidecarError) => void) => () => void

/**
 * Runs `work` with a signal bound to `timeoutMs` and to the caller (see WatchCancel).
 * Rejects with UpstreamTimeout ("request deadline exceeded", or the cancel message), or the error
 * the watcher cancelled with, when the signal fires first, or when `work` rejects with a
 * non-SidecarError (an AbortError) after it fired.
 */
export async function runWithDeadline<T> (
  timeoutMs: number,
  watchCancel: WatchCancel,
  work: (signal: AbortSignal) => Promise<T>
): Promise<T> {
  const controller = new AbortController()
  const { signal } = controller
  const timer = setTimeout(() => {
    controller.abort(new UpstreamTimeout('request deadline exceeded', { details: { timeoutMs } }))
  }, timeoutMs)
  const unwatch = watchCancel((reason) => { controller.abort(typeof reason === 'string' ? new UpstreamTimeout(reason) : reason) })
  const running = (async () => await work(signal))()
  // Work that loses the race must not surface as an unhandled rejection.
  running.catch(() => {})
  try {
    return await raceSignal(running, signal)
  } catch (err) {
    // A service that rejects with its own AbortError after the deadline fired timed out.
    if (signal.aborted && !isSidecarError(err)) throw signal.reason
    throw err
  } finally {
    clearTimeout(timer)
    unwatch()
  }
}
