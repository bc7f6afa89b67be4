// The cached VCEK certificate chain and the rules for replacing it. The reference keeps one
// chain and its TCBM and refreshes when a report's REPORTED_TCB differs (CSC pkg/attest/attest.go
// getCollateral); we keep that, but make the refresh single-flight (a burst of requests after a
// TCB update costs one fetch, and THIM/KDS throttle repeats), never cache a failure, and refresh
// in the background when the source says how long its answer may be cached (THIM cacheControl,
// KDS/AzCache Cache-Control max-age), so a chain is not used long after the host replaced it.
//
// Lookups count in the `vcek_chain` cache metric with the other caches' rules: forTcb served from
// the cached chain is a hit; forTcb that refreshes (no chain yet, a TCB mismatch, the test flag's
// corrupted TCBM), including a caller joining a fetch under way, and an explicit refresh() are
// misses. The background refresh, current() and lastError() look nothing up and record nothing,
// nor does a call on a closed store (a TypeError: a programming error).
import { pino } from 'pino'
import type { VcekCollateral } from './types.ts'
import type { Logger } from '../log.ts'
import type { AttestationReport } from '../snp/abi.ts'
import { tcbToHex } from '../snp/tcb.ts'
import { createSingleFlight } from '../util/single-flight.ts'

/** Fetches a chain; `report` (when known) lets KDS/AzCache ask for its chip and TCB. */
export type CollateralFetch = (report: AttestationReport | null, signal?: AbortSignal) => Promise<VcekCollateral>

/** The part of the metrics seam (observability/metrics.ts) the store uses. */
export interface CollateralStoreMetrics {
  cacheResult: (cache: string, hit: boolean) => void
}

/** A cancellable timer handle. */
export interface TimerHandle { cancel (): void }

/** The cached chain, refreshed on demand and in the background. */
export interface CollateralStore {
  /** The chain held now (with the corrupted TCBM while forceMismatch is in effect); null before the first success. */
  current (): VcekCollateral | null
  /** The cached chain when its TCBM equals reportedTcb; otherwise one refresh (refreshed: true, even if it still differs). */
  forTcb (reportedTcb: bigint, report: AttestationReport, signal?: AbortSignal): Promise<{ collateral: VcekCollateral, refreshed: boolean }>
  /** Fetches a new chain now (sharing a fetch already under way) and keeps it. */
  refresh (report: AttestationReport | null, signal?: AbortSignal): Promise<VcekCollateral>
  /** The error of the last fetch if it failed (cleared by the next success); null otherwise. */
  lastError (): unknown
  /** Cancels the background timer and aborts a fetch under way. */
  close (): void
}

/** How the store fetches, keeps time and logs. */
export interface CollateralStoreOptions {
  /** The chain to start with (the UVM security context's host-amd-cert); null to fetch on first use. */
  initial: VcekCollateral | null
  fetch: CollateralFetch
  now?: () => number
  /** Schedules the background refresh; default an unref'd setTimeout. */
  setTimer?: (fn: () => void, ms: number) => TimerHandle
  log?: Logger
  /** config.allowTestingMismatchedTcb: treat the starting chain's TCBM as 0xffffffff (the reference's test flag) until a report-driven refresh. */
  forceMismatch?: boolean
  /** Records each lookup under the cache name 'vcek_chain' (see the header); default none. */
  metrics?: CollateralStoreMetrics
}

/** The TCBM the reference's -allowTestingMismatchedTCB starts with ("ffffffff"). */
export const CORRUPTED_TCBM = 0xffffffffn
// setTimeout's ceiling (about 24.8 days); longer cache lifetimes just refresh a little early.
const MAX_TIMER_MS = 2 ** 31 - 1
// After a failed background refresh the old chain stays; try again sooner than a full lifetime.
const RETRY_AFTER_FAILURE_MS = 5 * 60 * 1000

function defaultSetTimer (fn: () => void, ms: number): TimerHandle {
  const timer = setTimeout(fn, ms)
  // A cache refresh must never keep the process alive on its own.
  timer.unref()
  return { cancel: () => { clearTimeout(timer) } }
}

function reasonOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Creates the store; see CollateralStore for the refresh rules. */
export function createCollateralStore (options: CollateralStoreOptions): CollateralStore {
  if (typeof options?.fetch !== 'function') throw new TypeError('options.fetch must be a function')
  const log = (options.log ?? pino({ level: 'silent' })).child({ component: 'attest' })
  const setTimer = options.setTimer ?? defaultSetTimer
  const now = options.now ?? Date.now
  // The chain is kept for every later request, so a fetch whose waiters all gave up still finishes.
  const flights = createSingleFlight<VcekCollateral>({ abortAbandoned: false })

  let held: VcekCollateral | null = options.initial
  let corrupted = options.forceMismatch === true
  let failure: unknown = null
  let lastReport: AttestationReport | null = null
  let timer: TimerHandle | null = null
  let closed = false

  // The starting chain is not refreshed on a timer: the host hands it over (ACI/Kata, where IMDS
  // may not answer at all), and a TCB change is caught by forTcb anyway.
  if (corrupted) log.warn({ tcbm: tcbToHex(CORRUPTED_TCBM) }, 'TESTING: starting with a corrupted TCBM so the first request takes the refresh path')

  function current (): VcekCollateral | null {
    if (held === null) return null
    return corrupted ? { ...held, tcbm: CORRUPTED_TCBM } : held
  }

  function schedule (collateral: VcekCollateral, ms: number | null): void {
    timer?.cancel()
    timer = null
    if (closed || ms === null) return
    timer = setTimer(() => { void background() }, Math.min(Math.max(ms, 0), MAX_TIMER_MS))
    log.debug({ source: collateral.source, inSeconds: Math.round(ms / 1000) }, 'VCEK chain background refresh scheduled')
  }

  function lifetimeMs (collateral: VcekCollateral): number | null {
    return collateral.cacheControlSeconds === null ? null : collateral.cacheControlSeconds * 1000
  }

  async function background (): Promise<void> {
    timer = null
    if (closed) return
    try {
      await refreshing(lastReport, undefined, false, false)
    } catch (err) {
      // The old chain stays usable: a THIM hiccup must not take attestation down.
      log.warn({ err: reasonOf(err), source: held?.source ?? null }, 'background VCEK chain refresh failed; keeping the cached chain')
      if (held !== null) {
        const ms = lifetimeMs(held)
        schedule(held, ms === null ? null : Math.min(ms, RETRY_AFTER_FAILURE_MS))
      }
    }
  }

  async function fetchAndKeep (report: AttestationReport | null, endsTestMode: boolean, signal: AbortSignal): Promise<VcekCollateral> {
    const started = now()
    try {
      const fresh = await options.fetch(report, signal)
      if (closed) return fresh
      held = fresh
      failure = null
      // Only a refresh for a mismatch ends the test mode (as in the reference): the start-up and
      // background fetches must not defeat it before the first request.
      if (endsTestMode) corrupted = false
      log.info({ source: fresh.source, tcbm: tcbToHex(fresh.tcbm), cacheControlSeconds: fresh.cacheControlSeconds }, 'VCEK chain fetched')
      // The lifetime counts from when we asked, not from when a slow answer arrived.
      const ms = lifetimeMs(fresh)
      schedule(fresh, ms === null ? null : ms - (now() - started))
      return fresh
    } catch (err) {
      failure = err
      throw err
    }
  }

  async function refreshing (report: AttestationReport | null, signal: AbortSignal | undefined, endsTestMode: boolean, lookup: boolean): Promise<VcekCollateral> {
    if (closed) throw new TypeError('the collateral store is closed')
    // A caller waits for this fetch (its own or one under way): a miss, even if it gives up.
    if (lookup) options.metrics?.cacheResult('vcek_chain', false)
    signal?.throwIfAborted()
    if (report !== null) lastReport = report
    // One key: there is one chain, whichever report asked for it.
    return await flights.run('chain', async (shared) => await fetchAndKeep(report, endsTestMode, shared), signal)
  }

  async function refresh (report: AttestationReport | null, signal?: AbortSignal): Promise<VcekCollateral> {
    return await refreshing(report, signal, false, true)
  }

  async function forTcb (reportedTcb: bigint, report: AttestationReport, signal?: AbortSignal): Promise<{ collateral: VcekCollateral, refreshed: boolean }> {
    const cached = current()
    if (cached !== null && cached.tcbm === reportedTcb) {
      options.metrics?.cacheResult('vcek_chain', true)
      return { collateral: cached, refreshed: false }
    }
    log.info({ reportedTcb: tcbToHex(reportedTcb), tcbm: cached === null ? null : tcbToHex(cached.tcbm), source: cached?.source ?? null },
      cached === null ? 'no VCEK chain yet; fetching one' : 'REPORTED_TCB differs from the cached chain; refreshing it')
    const collateral = await refreshing(report, signal, cached !== null, true)
    return { collateral, refreshed: true }
  }

  return {
    current,
    forTcb,
    refresh,
    lastError: () => failure,
    close () {
      closed = true
      timer?.cancel()
      timer = null
      flights.close()
    }
  }
}
