import t from 'tap'
import { RequestInvalid, UpstreamTimeout } from '../../../src/errors.ts'
import { runWithDeadline, type WatchCancel } from '../../../src/util/deadline.ts'

/** A caller that can leave on demand, recording whether it was unsubscribed. */
function caller (): { watch: WatchCancel, leave: (message: string) => void, unwatched: () => boolean } {
  let cancel: ((message: string) => void) | undefined
  let unwatched = false
  return {
    watch: (c) => { cancel = c; return () => { unwatched = true } },
    leave: (message) => { cancel?.(message) },
    unwatched: () => unwatched
  }
}

const hang = async (signal: AbortSignal): Promise<never> => await new Promise<never>((_resolve, reject) => {
  signal.addEventListener('abort', () => { reject(new DOMException('aborted', 'AbortError')) })
})

t.test('the answer in time passes through, and the caller is unwatched', async (t) => {
  const c = caller()
  t.equal(await runWithDeadline(1000, c.watch, async () => 'ok'), 'ok')
  t.ok(c.unwatched())
})

t.test('the deadline aborts the work and rejects with UpstreamTimeout', async (t) => {
  const c = caller()
  let seen: AbortSignal | undefined
  const err = await runWithDeadline(10, c.watch, async (signal) => { seen = signal; return await hang(signal) }).catch((e: unknown) => e)
  t.type(err, UpstreamTimeout)
  t.match(err, { message: 'request deadline exceeded', details: { timeoutMs: 10 } })
  t.equal(seen?.aborted, true)
  t.ok(c.unwatched())
})

t.test('the caller leaving rejects with its message, even when the work ignores its signal', async (t) => {
  const c = caller()
  const pending = runWithDeadline(1000, c.watch, async () => await new Promise<never>(() => {}))
  c.leave('the client cancelled the call')
  await t.rejects(pending, { constructor: UpstreamTimeout, message: 'the client cancelled the call' })
})

t.test('a SidecarError from the work is kept; other errors before the deadline too', async (t) => {
  const c = caller()
  await t.rejects(runWithDeadline(1000, c.watch, async () => { throw new RequestInvalid('bad') }), RequestInvalid)
  await t.rejects(runWithDeadline(1000, c.watch, async () => { throw new TypeError('bug') }), TypeError)
})

t.test('a caller already gone when watched rejects at once, even when the work ignores its signal', async (t) => {
  const gone: WatchCancel = (cancel) => { cancel('the client closed the connection before the answer'); return () => {} }
  const pending = runWithDeadline(60_000, gone, async () => await new Promise<never>(() => {}))
  const late = new Promise<string>(resolve => { setTimeout(() => { resolve('still waiting') }, 500).unref() })
  const outcome = await Promise.race([pending.then(() => 'resolved', (err: unknown) => err), late])
  t.match(outcome, { constructor: UpstreamTimeout, message: 'the client closed the connection before the answer' })
})
