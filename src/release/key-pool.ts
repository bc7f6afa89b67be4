// A pool of RSA-2048 wrapping keys generated ahead of need. Generating one costs tens to hundreds
// of milliseconds of CPU; crypto.generateKeyPair runs it on libuv's threadpool (off the event
// loop), and this pool moves it off the request path too: take() hands out a ready key at once
// and a replacement is generated in the background. Each key is handed out once and never
// returned to the pool (the release that takes it is its only user).
//
// Bounded on purpose: `size` ready keys at most, and at most `concurrency` generations at a time,
// so a burst of requests cannot occupy every threadpool thread (which DNS and file I/O share).
// A failed generation rejects the oldest waiter (so a persistent failure surfaces instead of
// hanging requests) and pauses background refills until the next take(), so a broken generator
// is not retried in a tight loop.
import type { Logger } from '../log.ts'
import { createWrappingKey } from './wrapping-key.ts'
import type { WrappingKey } from './wrapping-key.ts'

/** The part of the metrics seam (observability/metrics.ts) the pool uses. */
export interface PoolMetrics {
  setPoolDepth: (pool: string, depth: number) => void
}

/** Pool settings; every member is optional. */
export interface KeyPoolOptions {
  /** Ready keys to keep (default 4); 0 disables pooling: every take() generates. */
  size?: number
  /** The generator (default createWrappingKey: RSA-2048 on the threadpool). */
  generate?: () => Promise<WrappingKey>
  /** Generations at a time (default 2). */
  concurrency?: number
  metrics?: PoolMetrics
  /** The pool's name in metrics (default 'wrapping_key'). */
  name?: string
  log?: Logger
  /**
   * Begin filling at start() or the first take() rather than at once (default false). Key
   * generation takes whole cores; a process that is starting up defers it until it is serving.
   */
  deferFill?: boolean
}

/** Wrapping keys on demand. */
export interface KeyPool {
  /** A pooled key at once, or the next one generated; rejects with `signal.reason` when the caller leaves first. */
  take: (signal?: AbortSignal) => Promise<WrappingKey>
  /** Keys ready now. */
  depth: () => number
  /** Begins filling the pool (a no-op unless it was created with deferFill and nothing was taken yet). */
  start: () => void
  /** Drops the ready keys and stops refilling; later take() calls generate directly. */
  close: () => void
}

/** The default number of pooled keys. */
export const DEFAULT_KEY_POOL_SIZE = 4

interface Waiter {
  resolve: (key: WrappingKey) => void
  reject: (err: unknown) => void
}

function count (value: number | undefined, fallback: number, name: string, min: number): number {
  const n = value ?? fallback
  if (!Number.isInteger(n) || n < min) throw new TypeError(`createKeyPool: ${name} must be an integer >= ${min}`)
  return n
}

/** Creates a pool and starts filling it in the background (with deferFill: at start() or the first take()). */
export function createKeyPool (options: KeyPoolOptions = {}): KeyPool {
  const size = count(options.size, DEFAULT_KEY_POOL_SIZE, 'size', 0)
  const concurrency = count(options.concurrency, 2, 'concurrency', 1)
  const generate = options.generate ?? createWrappingKey
  const name = options.name ?? 'wrapping_key'
  const ready: WrappingKey[] = []
  const waiters: Waiter[] = []
  let generating = 0
  let paused = false
  let closed = false
  let started = options.deferFill !== true

  const report = (): void => { options.metrics?.setPoolDepth(name, ready.length) }

  function fill (): void {
    if (closed) return
    // Keys wanted: one per waiter, plus the pool's own `size` once started, unless a failure paused refills.
    const wanted = waiters.length + (paused || !started ? 0 : size - ready.length)
    while (generating < concurrency && generating < wanted) start()
  }

  function start (): void {
    generating++
    generate().then((key) => {
      generating--
      if (closed) return
      const waiter = waiters.shift()
      if (waiter !== undefined) waiter.resolve(key)
      else ready.push(key)
      report()
      fill()
    }, (err: unknown) => {
      generating--
      if (closed) return
      options.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'wrapping key generation failed')
      const waiter = waiters.shift()
      if (waiter !== undefined) waiter.reject(err)
      else paused = true
      fill()
    })
  }

  report()
  fill()

  return {
    async take (signal) {
      signal?.throwIfAborted()
      if (size === 0 || closed) return await generate()
      paused = false
      started = true
      const key = ready.shift()
      if (key !== undefined) {
        report()
        fill()
        return key
      }
      let waiter: Waiter | undefined
      const taken = new Promise<WrappingKey>((resolve, reject) => {
        waiter = { resolve, reject }
        waiters.push(waiter)
      })
      fill()
      if (signal === undefined) return await taken
      const onAbort = (): void => {
        const at = waiter === undefined ? -1 : waiters.indexOf(waiter)
        if (at >= 0) {
          waiters.splice(at, 1)
          waiter?.reject(signal.reason)
        }
      }
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        return await taken
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    },

    depth: () => ready.length,

    start () {
      if (started) return
      started = true
      fill()
    },

    close () {
      if (closed) return
      closed = true
      // Dropping the references is all we can do: a KeyObject's memory cannot be wiped from JS.
      ready.length = 0
      report()
      // Requests already waiting still get a key, just not from the pool.
      for (const waiter of waiters.splice(0)) generate().then(waiter.resolve, waiter.reject)
    }
  }
}
