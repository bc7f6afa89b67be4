// One deadline per API request (util/deadline.ts), bound to the HTTP response: services get an
// AbortSignal that fires when the client goes away or the request outlives
// config.requestTimeoutMs, and the route stops waiting at that moment.
import type { FastifyReply } from 'fastify'
import { runWithDeadline } from '../util/deadline.ts'

/**
 * Runs `work` with a signal bound to the request's lifetime and deadline.
 * Rejects with UpstreamTimeout ("request deadline exceeded") when the signal fires first,
 * or when `work` rejects with a non-SidecarError (an AbortError) after it fired.
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
      if (!res.writableFinished) cancel('client closed the connection before the answer')
    }
    res.once('close', onClose)
    return () => { res.removeListener('close', onClose) }
  }, work)
}
