// One deadline per API request. Services get an AbortSignal that fires when the client goes
// away or the request outlives config.requestTimeoutMs; the route also stops waiting at
// that moment, so a service that ignores its signal cannot hold a client past the deadline.
import type { FastifyReply } from 'fastify'
import { isSidecarError, UpstreamTimeout } from '../errors.ts'

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
  const controller = new AbortController()
  const { signal } = controller
  const timer = setTimeout(() => {
    controller.abort(new UpstreamTimeout('request deadline exceeded', { details: { timeoutMs } }))
  }, timeoutMs)
  // The response's 'close' (not the request's) is the disconnect signal: IncomingMessage
  // emits 'close' as soon as its body has been read, long before we answer.
  const res = reply.raw
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(new UpstreamTimeout('client closed the connection before the answer'))
  }
  res.once('close', onClose)

  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  const running = (async () => await work(signal))()
  // Whichever loses the race must not surface as an unhandled rejection.
  running.catch(() => {})
  aborted.catch(() => {})
  try {
    return await Promise.race([running, aborted])
  } catch (err) {
    if (signal.aborted && !isSidecarError(err)) throw signal.reason
    throw err
  } finally {
    clearTimeout(timer)
    res.removeListener('close', onClose)
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
