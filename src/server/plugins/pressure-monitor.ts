// The background sampler behind load shedding: event-loop delay, V8 heap in use and RSS, read on
// an unref'd timer. It replaces @fastify/under-pressure, whose timer calls process.memoryUsage()
// unguarded: with the process's file limit exhausted (EMFILE, e.g. by many idle sockets) that call
// throws `EMFILE ... uv_resident_set_memory` (it reads /proc, and so does
// process.memoryUsage.rss()), the exception escapes the timer, and the sidecar exits with status 1
// exactly when it is busiest. Here every reading is guarded on its own: a reading that fails keeps
// its last good value and is counted, and nothing the timer does can throw out of it.
// v8.getHeapStatistics() and perf_hooks' monitorEventLoopDelay open no files and keep working
// under EMFILE, so heap and delay are not read through process.memoryUsage() at all.
// Pure of fastify: readers and the histogram are injectable, so tests drive it without load.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'

/** The histogram's resolution (ms), subtracted from its mean as under-pressure does. */
export const EVENT_LOOP_RESOLUTION_MS = 10

/** The sample interval used when none (0) is configured (ms), as under-pressure. */
export const DEFAULT_SAMPLE_INTERVAL_MS = 1000

/** What is sampled; the names are the shed reasons ('eventLoopDelay' → skr_http_shed_total{reason="event_loop_delay"}). */
export type PressureReading = 'eventLoopDelay' | 'heapUsedBytes' | 'rssBytes'

/** The last good value of each reading (eventLoopDelay in ms). All 0 until the first sample. */
export type PressureSample = Record<PressureReading, number>

/** The part of perf_hooks' IntervalHistogram the sampler uses (a seam for tests). */
export interface DelayHistogram {
  /** Mean delay recorded since the last reset (ns); NaN when nothing was recorded. */
  readonly mean: number
  enable (): boolean
  disable (): boolean
  reset (): void
}

/** Options of startPressureMonitor. The readers default to the process's own. */
export interface PressureMonitorOptions {
  /** How often to sample (ms); 0 means DEFAULT_SAMPLE_INTERVAL_MS, and never below the resolution. */
  sampleIntervalMs: number
  /** Resident set size (bytes). Default process.memoryUsage.rss(), which throws under EMFILE. */
  readRss?: () => number
  /** V8 heap in use (bytes). Default v8.getHeapStatistics().used_heap_size. */
  readHeapUsed?: () => number
  /** The event-loop delay histogram. Default monitorEventLoopDelay({ resolution: 10 }). */
  histogram?: DelayHistogram
  /** Called when a reading fails; `consecutive` is 1 for the first failure of a run. Must not throw (guarded anyway). */
  onReadError?: (reading: PressureReading, error: unknown, consecutive: number) => void
  /** Called on the first good reading after `failed` failed ones. Must not throw (guarded anyway). */
  onReadRecovered?: (reading: PressureReading, failed: number) => void
}

/** A running sampler. */
export interface PressureMonitor {
  /** The last good values (a copy). */
  readonly current: Readonly<PressureSample>
  /** Failed readings since start, per reading. */
  readonly failures: Readonly<Record<PressureReading, number>>
  /** True until stop(). */
  readonly running: boolean
  /** Takes one sample now (the timer calls this); never throws. */
  sample (): void
  /** Clears the timer and disables the histogram; idempotent, never throws. */
  stop (): void
}

const READINGS: readonly PressureReading[] = ['eventLoopDelay', 'heapUsedBytes', 'rssBytes']

function zeroes (): Record<PressureReading, number> {
  return { eventLoopDelay: 0, heapUsedBytes: 0, rssBytes: 0 }
}

function defaultHistogram (): DelayHistogram {
  const histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS })
  histogram.enable()
  return histogram
}

// Mean delay over the interval minus the resolution, floored at 0, then reset, as under-pressure
// computes it. NaN (nothing recorded in the window) reads as Infinity, as there: a loop too busy
// to record even one delay counts as over any ceiling.
function readDelay (histogram: DelayHistogram | undefined): number {
  if (histogram === undefined) throw new Error('the event-loop delay histogram could not be created')
  try {
    const delay = Math.max(0, histogram.mean / 1e6 - EVENT_LOOP_RESOLUTION_MS)
    return Number.isNaN(delay) ? Infinity : delay
  } finally {
    histogram.reset()
  }
}

/** Effective interval (ms): 0 → DEFAULT_SAMPLE_INTERVAL_MS, never below the histogram's resolution. */
export function sampleIntervalOf (sampleIntervalMs: number): number {
  return Math.max(EVENT_LOOP_RESOLUTION_MS, sampleIntervalMs > 0 ? sampleIntervalMs : DEFAULT_SAMPLE_INTERVAL_MS)
}

/** Starts sampling on an unref'd timer (the first sample after one interval). Call stop() on close. */
export function startPressureMonitor (options: PressureMonitorOptions): PressureMonitor {
  const readRss = options.readRss ?? (() => process.memoryUsage.rss())
  const readHeapUsed = options.readHeapUsed ?? (() => getHeapStatistics().used_heap_size)
  let histogram: DelayHistogram | undefined
  try {
    histogram = options.histogram ?? defaultHistogram()
  } catch {
    histogram = undefined // every delay reading then fails and is counted; heap and RSS still work
  }
  const readers: Record<PressureReading, () => number> = {
    eventLoopDelay: () => readDelay(histogram),
    heapUsedBytes: readHeapUsed,
    rssBytes: readRss
  }
  const current = zeroes()
  const failures = zeroes()
  const consecutive = zeroes()
  let running = true

  const notify = (call: () => void): void => {
    try { call() } catch { /* a failing observer must not stop the sampler */ }
  }

  const readOne = (reading: PressureReading): void => {
    try {
      const value = readers[reading]()
      if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(`${reading} reader returned ${String(value)}, want a number`)
      current[reading] = value
      const failed = consecutive[reading]
      if (failed > 0) {
        consecutive[reading] = 0
        notify(() => { options.onReadRecovered?.(reading, failed) })
      }
    } catch (err) {
      failures[reading]++
      consecutive[reading]++
      const run = consecutive[reading]
      notify(() => { options.onReadError?.(reading, err, run) })
    }
  }

  const sample = (): void => {
    try {
      for (const reading of READINGS) readOne(reading)
    } catch { /* unreachable (readOne is guarded); kept so the timer can never throw */ }
  }

  const timer = setInterval(sample, sampleIntervalOf(options.sampleIntervalMs))
  timer.unref()

  return {
    get current () { return { ...current } },
    get failures () { return { ...failures } },
    get running () { return running },
    sample,
    stop () {
      running = false
      clearInterval(timer)
      try { histogram?.disable() } catch { /* already gone */ }
    }
  }
}
