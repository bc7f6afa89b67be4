import t from 'tap'
import { createSingleFlight, raceSignal } from '../../../src/util/single-flight.ts'

/** Work that settles when the test says so, recording the signal it was given. */
function deferred (): { work: (signal: AbortSignal) => Promise<string>, resolve: (v: string) => void, reject: (e: unknown) => void, signals: AbortSignal[], started: () => number } {
  const signals: AbortSignal[] = []
  const settlers: Array<{ res: (v: string) => void, rej: (e: unknown) => void }> = []
  return {
    signals,
    started: () => signals.length,
    work: async (signal) => {
      signals.push(signal)
      return await new Promise<string>((res, rej) => { settlers.push({ res, rej }) })
    },
    // Settles every run of the work started so far.
    resolve: (v) => { for (const s of settlers) s.res(v) },
    reject: (e) => { for (const s of settlers) s.rej(e) }
  }
}

t.test('concurrent callers of one key share one piece of work; other keys do not', async (t) => {
  const group = createSingleFlight<string>()
  const d = deferred()
  const other = deferred()
  const all = [group.run('a', d.work), group.run('a', d.work), group.run('a', d.work), group.run('b', other.work)]
  t.equal(d.started(), 1)
  t.equal(other.started(), 1)
  t.equal(group.inFlight(), 2)
  d.resolve('A')
  other.resolve('B')
  t.same(await Promise.all(all), ['A', 'A', 'A', 'B'])
  t.equal(group.inFlight(), 0, 'forgotten once settled')
  const again = group.run('a', d.work)
  t.equal(d.started(), 2, 'a later call starts afresh')
  d.resolve('A2')
  t.equal(await again, 'A2')
})

t.test('a failure reaches every waiter and is not remembered', async (t) => {
  const group = createSingleFlight<string>()
  const d = deferred()
  const waiters = [group.run('a', d.work), group.run('a', d.work)]
  d.reject(new Error('upstream down'))
  for (const w of waiters) await t.rejects(w, { message: 'upstream down' })
  t.equal(group.inFlight(), 0)
})

t.test('waiters leaving: the work is aborted only when the last one leaves; background work never', async (t) => {
  const group = createSingleFlight<string>()
  const d = deferred()
  const a = new AbortController()
  const b = new AbortController()
  const first = group.run('k', d.work, a.signal)
  const second = group.run('k', d.work, b.signal)
  a.abort(new Error('a left'))
  await t.rejects(first, { message: 'a left' })
  t.equal(d.signals[0]?.aborted, false, 'b still waits')
  b.abort(new Error('b left'))
  await t.rejects(second, { message: 'b left' })
  t.equal(d.signals[0]?.aborted, true, 'nobody waits: aborted')
  t.equal(group.inFlight(), 0)

  const bg = deferred()
  const c = new AbortController()
  const pinned = group.background('p', bg.work)
  const joined = group.run('p', bg.work, c.signal)
  c.abort(new Error('c left'))
  await t.rejects(joined, { message: 'c left' })
  t.equal(bg.signals[0]?.aborted, false, 'background work goes on')
  bg.resolve('done')
  t.equal(await pinned, 'done')
  await t.rejects(group.run('x', d.work, AbortSignal.abort(new Error('already'))), { message: 'already' })
})

t.test('abortAbandoned false: the work outlives its last waiter and later callers join it', async (t) => {
  const group = createSingleFlight<string>({ abortAbandoned: false })
  const d = deferred()
  const c = new AbortController()
  const quitter = group.run('k', d.work, c.signal)
  c.abort(new Error('left'))
  await t.rejects(quitter, { message: 'left' })
  t.equal(d.signals[0]?.aborted, false, 'nobody waits, the work goes on')
  const later = group.run('k', d.work)
  t.equal(d.started(), 1, 'joined, not restarted')
  d.resolve('kept')
  t.equal(await later, 'kept')
})

t.test('close aborts flights; later calls run unshared', async (t) => {
  const group = createSingleFlight<string>()
  const d = deferred()
  const pending = group.run('k', d.work)
  group.close(new Error('closing'))
  t.equal(d.signals[0]?.aborted, true)
  d.resolve('late')
  t.equal(await pending, 'late')
  const e = deferred()
  const one = group.run('k', e.work)
  const two = group.run('k', e.work)
  t.equal(e.started(), 2)
  e.resolve('x')
  t.same(await Promise.all([one, two]), ['x', 'x'])
  const bg = deferred()
  const b = group.background('k', bg.work)
  bg.resolve('y')
  t.equal(await b, 'y')
})

t.test('raceSignal: the caller leaves, the work goes on', async (t) => {
  t.equal(await raceSignal(Promise.resolve(1), undefined), 1)
  const c = new AbortController()
  const never = new Promise<number>(() => {})
  const raced = raceSignal(never, c.signal)
  c.abort(new Error('bye'))
  await t.rejects(raced, { message: 'bye' })
})
