import t, { type Test } from 'tap'
import { CORRUPTED_TCBM, createCollateralStore } from '../../../src/collateral/store.ts'
import type { CollateralFetch, TimerHandle } from '../../../src/collateral/store.ts'
import type { VcekCollateral } from '../../../src/collateral/types.ts'
import { CollateralUnavailable, UpstreamUnavailable } from '../../../src/errors.ts'
import type { AttestationReport } from '../../../src/snp/abi.ts'

const TCB_A = 0x7308000000000003n
const TCB_B = 0x7308000000000004n

function collateral (tcbm: bigint, over: Partial<VcekCollateral> = {}): VcekCollateral {
  return { vcekPem: `vcek-${tcbm.toString(16)}`, chainPem: 'chain', tcbm, cacheControlSeconds: null, source: 'thim', ...over }
}

// The store treats reports as opaque (it hands them to the fetcher), so a stub is enough here.
function report (reportedTcb: bigint): AttestationReport {
  return { reportedTcb } as unknown as AttestationReport
}

interface Deferred<T> { promise: Promise<T>, resolve: (v: T) => void, reject: (e: unknown) => void }
function deferred<T> (): Deferred<T> {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

/** A fetch that records its calls and answers from a queue of results or pending promises. */
function fakeFetch (answers: Array<VcekCollateral | Error | Deferred<VcekCollateral>>): CollateralFetch & { calls: Array<{ report: AttestationReport | null, signal: AbortSignal | undefined }> } {
  const calls: Array<{ report: AttestationReport | null, signal: AbortSignal | undefined }> = []
  const fn = async (r: AttestationReport | null, signal?: AbortSignal): Promise<VcekCollateral> => {
    calls.push({ report: r, signal })
    const next = answers.shift()
    if (next === undefined) throw new Error('unexpected fetch')
    if (next instanceof Error) throw next
    if ('promise' in next) return await next.promise
    return next
  }
  return Object.assign(fn, { calls })
}

/** Timers the test fires by hand. */
function fakeTimers (): { setTimer: (fn: () => void, ms: number) => TimerHandle, pending: Array<{ fn: () => void, ms: number, cancelled: boolean }> } {
  const pending: Array<{ fn: () => void, ms: number, cancelled: boolean }> = []
  return {
    pending,
    setTimer (fn, ms) {
      // A fired timer is spent, like a cancelled one.
      const entry = { fn: () => { entry.cancelled = true; fn() }, ms, cancelled: false }
      pending.push(entry)
      return { cancel () { entry.cancelled = true } }
    }
  }
}

const live = (timers: ReturnType<typeof fakeTimers>): Array<{ fn: () => void, ms: number }> => timers.pending.filter((p) => !p.cancelled)
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => { setImmediate(resolve) }) }

t.test('a cached chain whose TCBM matches is returned without fetching', async (t) => {
  const fetch = fakeFetch([])
  const initial = collateral(TCB_A, { source: 'security-context' })
  const store = createCollateralStore({ initial, fetch })
  const got = await store.forTcb(TCB_A, report(TCB_A))
  t.equal(got.collateral, initial)
  t.equal(got.refreshed, false)
  t.equal(fetch.calls.length, 0)
  t.equal(store.current(), initial)
  t.equal(store.lastError(), null)
})

t.test('a mismatch refreshes once, with the report, and keeps the new chain', async (t) => {
  const fresh = collateral(TCB_B)
  const fetch = fakeFetch([fresh])
  const store = createCollateralStore({ initial: collateral(TCB_A), fetch })
  const r = report(TCB_B)
  const got = await store.forTcb(TCB_B, r)
  t.same(got, { collateral: fresh, refreshed: true })
  t.equal(fetch.calls.length, 1)
  t.equal(fetch.calls[0]?.report, r, 'the fetcher gets the report (KDS/AzCache need its chip id and TCB)')
  t.equal(store.current(), fresh)
  t.same(await store.forTcb(TCB_B, r), { collateral: fresh, refreshed: false }, 'then it is a cache hit')
  t.equal(fetch.calls.length, 1)
})

t.test('a refresh that still does not match is returned as is: the caller decides', async (t) => {
  const same = collateral(TCB_A)
  const fetch = fakeFetch([same])
  const store = createCollateralStore({ initial: collateral(TCB_A), fetch })
  const got = await store.forTcb(TCB_B, report(TCB_B))
  t.same(got, { collateral: same, refreshed: true })
  t.equal(fetch.calls.length, 1)
})

t.test('with no chain yet the first use fetches one', async (t) => {
  const fresh = collateral(TCB_A)
  const fetch = fakeFetch([fresh])
  const store = createCollateralStore({ initial: null, fetch })
  t.equal(store.current(), null)
  t.same(await store.forTcb(TCB_A, report(TCB_A)), { collateral: fresh, refreshed: true })
})

t.test('concurrent mismatches share one fetch', async (t) => {
  const gate = deferred<VcekCollateral>()
  const fetch = fakeFetch([gate])
  const store = createCollateralStore({ initial: collateral(TCB_A), fetch })
  const waiting = Array.from({ length: 5 }, async () => await store.forTcb(TCB_B, report(TCB_B)))
  const explicit = store.refresh(null)
  await settle()
  t.equal(fetch.calls.length, 1, 'one fetch while it is under way')
  const fresh = collateral(TCB_B)
  gate.resolve(fresh)
  const results = await Promise.all(waiting)
  for (const r of results) t.same(r, { collateral: fresh, refreshed: true })
  t.equal(await explicit, fresh)
  t.equal(fetch.calls.length, 1)
})

t.test('a failure reaches every waiter, caches nothing, and the next call fetches again', async (t) => {
  const gate = deferred<VcekCollateral>()
  const fresh = collateral(TCB_B)
  const fetch = fakeFetch([gate, fresh])
  const initial = collateral(TCB_A)
  const store = createCollateralStore({ initial, fetch })
  const waiting = Array.from({ length: 3 }, async () => await store.forTcb(TCB_B, report(TCB_B)))
  await settle()
  const failure = new UpstreamUnavailable('thim 169.254.169.254: connection refused')
  gate.reject(failure)
  for (const w of waiting) await t.rejects(w, failure)
  t.equal(fetch.calls.length, 1)
  t.equal(store.current(), initial, 'the old chain stays')
  t.equal(store.lastError(), failure, 'status can say why')
  t.same(await store.forTcb(TCB_B, report(TCB_B)), { collateral: fresh, refreshed: true }, 'not poisoned')
  t.equal(fetch.calls.length, 2)
  t.equal(store.lastError(), null, 'a success clears the error')
})

t.test('a waiter that gives up does not cancel the fetch the others share', async (t) => {
  const gate = deferred<VcekCollateral>()
  const fetch = fakeFetch([gate])
  const store = createCollateralStore({ initial: null, fetch })
  const quitter = new AbortController()
  const a = store.refresh(null, quitter.signal)
  const b = store.refresh(null)
  await settle()
  quitter.abort(new Error('client went away'))
  await t.rejects(a, { message: 'client went away' })
  const fresh = collateral(TCB_A)
  gate.resolve(fresh)
  t.equal(await b, fresh)
  t.equal(fetch.calls[0]?.signal?.aborted, false, 'the shared fetch runs on the store\'s own signal')
  const already = new AbortController()
  already.abort(new Error('too late'))
  await t.rejects(store.refresh(null, already.signal), { message: 'too late' })
  t.equal(fetch.calls.length, 1)
})

t.test('background refresh follows the source\'s cache lifetime and keeps the old chain on failure', async (t) => {
  const timers = fakeTimers()
  const first = collateral(TCB_A, { cacheControlSeconds: 86400 })
  const second = collateral(TCB_A, { cacheControlSeconds: 3600 })
  const third = collateral(TCB_A, { cacheControlSeconds: null })
  const fetch = fakeFetch([first, second, new UpstreamUnavailable('thim: 503'), third])
  const store = createCollateralStore({ initial: collateral(TCB_A, { source: 'security-context', cacheControlSeconds: 86400 }), fetch, setTimer: timers.setTimer, now: () => 5000 })
  t.equal(live(timers).length, 0, 'the host-provided starting chain is not refreshed on a timer')

  const r = report(TCB_B)
  await store.forTcb(TCB_B, r)
  t.same(live(timers).map((p) => p.ms), [86_400_000], 'cacheControl 86400 s')

  live(timers)[0]?.fn()
  await settle()
  t.equal(fetch.calls.length, 2)
  t.equal(fetch.calls[1]?.report, r, 'the background refresh reuses the last report')
  t.equal(store.current(), second)
  t.same(live(timers).map((p) => p.ms), [3_600_000])

  live(timers)[0]?.fn()
  await settle()
  t.equal(fetch.calls.length, 3)
  t.equal(store.current(), second, 'a failed background refresh keeps the chain')
  t.type(store.lastError(), UpstreamUnavailable)
  t.same(live(timers).map((p) => p.ms), [300_000], 'and tries again sooner')

  live(timers)[0]?.fn()
  await settle()
  t.equal(store.current(), third)
  t.equal(live(timers).length, 0, 'no lifetime given: no timer')
})

t.test('the lifetime counts from when the fetch started', async (t) => {
  const timers = fakeTimers()
  let clock = 0
  const gate = deferred<VcekCollateral>()
  const store = createCollateralStore({ initial: null, fetch: fakeFetch([gate]), setTimer: timers.setTimer, now: () => clock })
  const p = store.refresh(null)
  clock = 2000
  gate.resolve(collateral(TCB_A, { cacheControlSeconds: 60 }))
  await p
  t.same(live(timers).map((x) => x.ms), [58_000])
})

t.test('close cancels the timer and aborts a fetch under way', async (t) => {
  const timers = fakeTimers()
  const gate = deferred<VcekCollateral>()
  const fetch = fakeFetch([collateral(TCB_A, { cacheControlSeconds: 10 }), gate])
  const store = createCollateralStore({ initial: null, fetch, setTimer: timers.setTimer })
  await store.refresh(null)
  t.equal(live(timers).length, 1)
  const pending = store.refresh(null)
  await settle()
  store.close()
  t.equal(live(timers).length, 0)
  t.equal(fetch.calls[1]?.signal?.aborted, true)
  gate.reject(new Error('aborted'))
  await t.rejects(pending)
  await t.rejects(store.refresh(null), TypeError)
})

t.test('the default timer is unref\'d and real', async (t) => {
  const store = createCollateralStore({ initial: null, fetch: fakeFetch([collateral(TCB_A, { cacheControlSeconds: 86400 })]) })
  await store.refresh(null)
  store.close()
  t.pass('no hang: close cleared it')
})

t.test('forceMismatch starts with TCBM ffffffff until a refresh for a mismatch', async (t) => {
  const real = collateral(TCB_A)
  const fetch = fakeFetch([collateral(TCB_A), real])
  const store = createCollateralStore({ initial: collateral(TCB_A, { source: 'security-context' }), fetch, forceMismatch: true })
  t.equal(store.current()?.tcbm, CORRUPTED_TCBM)
  await store.refresh(null)
  t.equal(store.current()?.tcbm, CORRUPTED_TCBM, 'a start-up or background fetch does not end the test mode')
  const got = await store.forTcb(TCB_A, report(TCB_A))
  t.same(got, { collateral: real, refreshed: true }, 'the first request takes the refresh path')
  t.equal(store.current(), real)
  t.equal(fetch.calls.length, 2)
})

t.test('forceMismatch with no starting chain: the first fetch is corrupted, the next request refreshes', async (t) => {
  const fetch = fakeFetch([collateral(TCB_A), collateral(TCB_A)])
  const store = createCollateralStore({ initial: null, fetch, forceMismatch: true })
  const first = await store.forTcb(TCB_A, report(TCB_A))
  t.equal(first.collateral.tcbm, TCB_A, 'the fetch result itself is returned')
  t.equal(store.current()?.tcbm, CORRUPTED_TCBM)
  const second = await store.forTcb(TCB_A, report(TCB_A))
  t.equal(second.refreshed, true)
  t.equal(store.current()?.tcbm, TCB_A)
})

t.test('a fetch that throws synchronously is not cached either', async (t) => {
  let calls = 0
  const fetch: CollateralFetch = (() => { calls++; if (calls === 1) throw new Error('sync'); return Promise.resolve(collateral(TCB_A)) }) as CollateralFetch
  const store = createCollateralStore({ initial: null, fetch })
  await t.rejects(store.refresh(null), { message: 'sync' })
  t.equal((await store.refresh(null)).tcbm, TCB_A)
})

t.test('misuse', async (t) => {
  t.throws(() => createCollateralStore({ initial: null } as unknown as Parameters<typeof createCollateralStore>[0]), TypeError)
  const store = createCollateralStore({ initial: null, fetch: fakeFetch([new CollateralUnavailable('the AMD source needs a report first')]) })
  await t.rejects(store.refresh(null), { code: 'ERR_COLLATERAL_UNAVAILABLE' })
})

/** Records cacheResult calls as 'hit'/'miss', with the cache name checked. */
function cacheRecorder (t: Test): { metrics: { cacheResult: (cache: string, hit: boolean) => void }, results: string[] } {
  const results: string[] = []
  return {
    results,
    metrics: {
      cacheResult (cache, hit) {
        t.equal(cache, 'vcek_chain')
        results.push(hit ? 'hit' : 'miss')
      }
    }
  }
}

t.test('every lookup records vcek_chain: a matching chain is a hit, a refresh (or joining one) a miss', async (t) => {
  const { metrics, results } = cacheRecorder(t)
  const timers = fakeTimers()
  const gate = deferred<VcekCollateral>()
  const fetch = fakeFetch([gate, new UpstreamUnavailable('thim: 503'), collateral(TCB_B, { cacheControlSeconds: 60 }), collateral(TCB_B)])
  const store = createCollateralStore({ initial: collateral(TCB_A), fetch, setTimer: timers.setTimer, metrics })

  await store.forTcb(TCB_A, report(TCB_A))
  t.same(results, ['hit'], 'the cached chain matches')

  const waiting = Array.from({ length: 3 }, async () => await store.forTcb(TCB_B, report(TCB_B)))
  await settle()
  t.same(results, ['hit', 'miss', 'miss', 'miss'], 'a mismatch, and each caller joining its fetch, is a miss')
  gate.resolve(collateral(TCB_A))
  await Promise.all(waiting)

  await t.rejects(store.forTcb(TCB_B, report(TCB_B)), { code: 'ERR_UPSTREAM_UNAVAILABLE' })
  t.same(results.slice(4), ['miss'], 'a failed refresh is a miss')
  await store.forTcb(TCB_B, report(TCB_B))
  await store.forTcb(TCB_B, report(TCB_B))
  t.same(results.slice(5), ['miss', 'hit'], 'refreshed, then served from the cache')

  live(timers)[0]?.fn()
  await settle()
  t.equal(fetch.calls.length, 4, 'the background refresh ran')
  t.equal(store.current()?.tcbm, TCB_B)
  t.equal(store.lastError(), null)
  t.same(results.slice(7), [], 'the background refresh, current() and lastError() record nothing')

  const aborted = new AbortController()
  aborted.abort(new Error('gone'))
  await t.rejects(store.refresh(null, aborted.signal), { message: 'gone' })
  t.same(results.slice(7), ['miss'], 'an explicit refresh is a miss, even when its caller has given up')

  store.close()
  await t.rejects(store.forTcb(TCB_A, report(TCB_A)), TypeError)
  await t.rejects(store.refresh(null), TypeError)
  t.same(results.slice(8), [], 'misuse of a closed store records nothing')
  t.same(await store.forTcb(TCB_B, report(TCB_B)), { collateral: collateral(TCB_B), refreshed: false }, 'a matching chain is still handed out')
  t.same(results.slice(8), ['hit'])
})

t.test('forceMismatch: the corrupted starting TCBM makes the first lookup a miss', async (t) => {
  const { metrics, results } = cacheRecorder(t)
  const store = createCollateralStore({ initial: collateral(TCB_A), fetch: fakeFetch([collateral(TCB_A)]), forceMismatch: true, metrics })
  await store.forTcb(TCB_A, report(TCB_A))
  await store.forTcb(TCB_A, report(TCB_A))
  t.same(results, ['miss', 'hit'])
})
