// Load shedding off, for tests that are not about it. skr sheds at 1 s of event-loop delay and
// 512 MiB RSS by default, which a busy machine (a GC pause, two test runs at once) or tap's own
// ~430 MB test process reach in tests about something else: they then get 503 ERR_OVERLOADED.
// The tests about shedding (test/unit/server/backpressure.test.ts, health.test.ts, e2e/overload's
// in-flight caps) set their own limits.

/** buildApp's `backpressure` with load shedding off (event-loop delay, heap and RSS). */
export const NO_SHEDDING = Object.freeze({ maxEventLoopDelayMs: 0, maxHeapUsedBytes: 0, maxRssBytes: 0 })

/** The same as skr settings, for a sidecar built by loadConfig / startSidecar or run as `skr serve`. */
export const TEST_SHEDDING_OFF: Readonly<Record<string, string>> = Object.freeze({
  SKR_MAX_EVENT_LOOP_DELAY_MS: '0',
  SKR_MAX_RSS_BYTES: '0',
  SKR_MAX_HEAP_USED_BYTES: '0'
})
