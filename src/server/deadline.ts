// One deadline per API request (util/deadline.ts), bound to the HTTP response: services get an
// AbortSignal that fires when the client goes away or the request outlives
// config.requestTimeoutMs, and the route stops waiting at that moment.
import type { FastifyReply } from 'fastify'
import { ClientClosed, isSidecarError } from '../errors.ts'
import { runWithDeadline } from '../util/deadline.ts'
import { findLifecycle } from './lifecycle.ts'

/**
 * Runs `work` with a signal bound to the request's lifetime and deadline, and to the end of the
 * app's shutdown grace period (./lifecycle.ts).
 * Rejects with UpstreamTimeout ("request deadline exceeded") when the signal fires first, with
 * ShuttingDown when the grace period ended first, or (as UpstreamTimeout) when `work` rejects with
 * a non-SidecarError (an AbortError) after it fired.
 */
export async function withDeadline<T> (
  reply: FastifyReply,
  timeoutMs: number,
  work: (signal: AbortSignal) => Promise<T>
): Promise<T> {
  return await runWithDeadline(timeoutMs, (cancel) => {
    // The response's 'close' (not the request's) is the disconnect signal: IncomingMessage
    // emits 'close' as soon as its body has been read, long before we answer.
    const res = reply.raw
    const onClose = (): void => {
      if (!res.writableFinished) cancel(new ClientClosed('client closed the connection before the answer'))
    }
    res.once('close', onClose)
    const stop = findLifecycle(reply.server)?.stopSignal
    const onStop = (): void => {
      const reason: unknown = stop?.reason
      if (isSidecarError(reason)) cancel(reason)
    }
    if (stop?.aborted === true) onStop()
    else stop?.addEventListener('abort', onStop, { once: true })
    return () => {
      res.removeListener('close', onClose)
      stop?.removeEventListener('abort', onStop)
    }
  }, work)
}
