// Turns the benchmark's measurements into the printed tables, the target verdicts (issues 6 and
// 13: issue 13 tightened start-up to 120 ms and throughput at 16 clients to 800/s) and
// the BENCH_JSON document. Pure: no I/O, so the numbers shown and the numbers judged are the same.
import type { LoadResult } from './load.ts'

/** One skr process: its configuration and everything measured on it. */
export interface ProcessRun {
  reuse: 'on' | 'off'
  /** Emulated per-request delay of every upstream (ms). */
  rttMs: number
  startupMs: number
  rssIdleBytes: number | null
  rssLoadMaxBytes: number | null
  /** The first release after start-up (new attestation, identity token, TLS handshakes). */
  cold: { ms: number, status: number }
  scenarios: Array<LoadResult & { rssMaxBytes: number | null, maaCallsPerRelease: number }>
  exit: { code: number | null, signal: string | null }
}

/** A start-up measured on its own: spawn to /status 200, then RSS after the settle time. */
export interface StartupSample {
  /** 'compiled': the bundled mirror (what the image runs); 'source': bin/skr.js on the TypeScript sources. */
  mode: 'compiled' | 'source'
  startupMs: number
  rssIdleBytes: number | null
}

/** The stack floor (bench/floor-server.mjs) measured like skr, at 0 ms RTT over the same scenarios. */
export interface FloorRun {
  startupMs: number
  rssIdleBytes: number | null
  rssLoadMaxBytes: number | null
}

/** One target of issue 6 and whether this run met it (null: not measured in this run). */
export interface Verdict {
  target: string
  measured: string
  met: boolean | null
}

/** The reference sidecar's numbers, measured the same way (issue 6). */
export const REFERENCE = Object.freeze({
  c1: { perSecond: 8, p50Ms: 105 },
  c16: { perSecond: 16, p50Ms: 894 },
  startupMs: 13,
  rssIdleMb: 17
})

const MB = 1024 * 1024

function mb (bytes: number | null): string {
  return bytes === null ? 'n/a' : `${(bytes / MB).toFixed(1)}`
}

function ms (value: number | null): string {
  return value === null ? 'n/a' : value < 10 ? value.toFixed(2) : value.toFixed(1)
}

function pad (cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ')
}

function table (header: readonly string[], rows: ReadonlyArray<readonly string[]>, markdown: boolean): string[] {
  if (markdown) {
    return [`| ${header.join(' | ')} |`, `| ${header.map(() => '---:').join(' | ')} |`, ...rows.map(r => `| ${r.join(' | ')} |`)]
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  return [pad(header, widths), pad(widths.map(w => '-'.repeat(w)), widths), ...rows.map(r => pad(r, widths))]
}

function errorsText (errors: Record<string, number>): string {
  const parts = Object.entries(errors).map(([k, n]) => `${n}× ${k}`)
  return parts.length === 0 ? '0' : parts.join(', ')
}

/** The two tables: per process (start-up, memory, cold release) and per load scenario. */
export function formatTables (runs: readonly ProcessRun[], markdown = false): string[] {
  const processRows = runs.map(r => [
    r.reuse, `${r.rttMs}`, ms(r.startupMs), mb(r.rssIdleBytes), mb(r.rssLoadMaxBytes), ms(r.cold.ms), `${r.cold.status}`,
    r.exit.signal ?? `${r.exit.code ?? 'n/a'}`
  ])
  const scenarioRows = runs.flatMap(r => r.scenarios.map(s => [
    r.reuse, `${r.rttMs}`, `${s.concurrency}`, `${s.requests}`, `${s.ok}`, errorsText(s.errors), ms(s.p50Ms), ms(s.p99Ms),
    s.okPerSecond.toFixed(0), s.maaCallsPerRelease.toFixed(2), mb(s.rssMaxBytes)
  ]))
  return [
    ...table(['reuse', 'RTT ms', 'start-up ms', 'RSS idle MB', 'RSS load max MB', 'cold release ms', 'cold status', 'exit'], processRows, markdown),
    '',
    ...table(['reuse', 'RTT ms', 'clients', 'requests', 'ok', 'errors', 'warm p50 ms', 'warm p99 ms', 'releases/s', 'MAA calls/release', 'RSS max MB'], scenarioRows, markdown)
  ]
}

function find (runs: readonly ProcessRun[], reuse: 'on' | 'off', rttMs: number, concurrency: number): LoadResult | undefined {
  return runs.find(r => r.reuse === reuse && r.rttMs === rttMs)?.scenarios.find(s => s.concurrency === concurrency)
}

function verdict (target: string, value: number | null | undefined, ok: (v: number) => boolean, show: (v: number) => string): Verdict {
  if (value === null || value === undefined) return { target, measured: 'not measured', met: null }
  return { target, measured: show(value), met: ok(value) }
}

/** The median (lower middle) of `values`; null when empty. */
export function median (values: readonly number[]): number | null {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)] ?? null
}

function aboveFloor (bytes: number, floorBytes: number | null | undefined): string {
  return floorBytes === null || floorBytes === undefined ? '' : ` (stack floor ${mb(floorBytes)} MB, skr's own ${mb(bytes - floorBytes)} MB)`
}

/**
 * Judges the targets against the runs (reuse on unless the target says otherwise), and the
 * production footprint (the bundle and the addon, in bytes) when given.
 */
export function judge (runs: readonly ProcessRun[], floor: FloorRun | null = null, footprintBytes: number | null = null): Verdict[] {
  const on0c1 = find(runs, 'on', 0, 1)
  const on20c1 = find(runs, 'on', 20, 1)
  const on0c16 = find(runs, 'on', 0, 16)
  const rssIdle = runs.map(r => r.rssIdleBytes).filter((v): v is number => v !== null)
  const rssLoad = runs.map(r => r.rssLoadMaxBytes).filter((v): v is number => v !== null)
  const out: Verdict[] = [
    verdict('warm release p50 <= 5 ms at 0 ms RTT (1 client)', on0c1?.p50Ms, v => v <= 5, v => `${ms(v)} ms`),
    verdict('warm release p50 <= 25 ms at 20 ms RTT (1 client)', on20c1?.p50Ms, v => v <= 25, v => `${ms(v)} ms`),
    verdict('>= 200 releases/s with 1 client (0 ms RTT)', on0c1?.okPerSecond, v => v >= 200, v => `${v.toFixed(0)}/s`),
    verdict('>= 800 releases/s with 16 clients (0 ms RTT)', on0c16?.okPerSecond, v => v >= 800, v => `${v.toFixed(0)}/s`),
    verdict('p99 <= 50 ms with 16 clients (0 ms RTT)', on0c16?.p99Ms, v => v <= 50, v => `${ms(v)} ms`),
    verdict('start-up (spawn to /status 200) <= 120 ms (median of runs)', median(runs.map(r => r.startupMs)), v => v <= 120, v => `${ms(v)} ms`),
    verdict('RSS idle <= 60 MB (largest of runs)', rssIdle.length === 0 ? null : Math.max(...rssIdle), v => v <= 60 * MB, v => `${mb(v)} MB${aboveFloor(v, floor?.rssIdleBytes)}`),
    verdict('RSS under load <= 120 MB (largest of runs)', rssLoad.length === 0 ? null : Math.max(...rssLoad), v => v <= 120 * MB, v => `${mb(v)} MB${aboveFloor(v, floor?.rssLoadMaxBytes)}`),
    verdict('production footprint (dist/ and the addon) <= 15 MB', footprintBytes, v => v <= 15 * MB, v => `${mb(v)} MB`)
  ]
  for (const rtt of [...new Set(runs.map(r => r.rttMs))]) {
    for (const [c, ref] of [[1, REFERENCE.c1], [16, REFERENCE.c16]] as const) {
      const s = find(runs, 'off', rtt, c)
      out.push(verdict(`reuse off, ${c} client${c === 1 ? '' : 's'}, ${rtt} ms RTT: no slower than the reference (${ref.perSecond}/s, p50 ${ref.p50Ms} ms)`,
        s === undefined || s.p50Ms === null ? null : s.okPerSecond,
        v => v >= ref.perSecond && (s?.p50Ms ?? Infinity) <= ref.p50Ms,
        v => `${v.toFixed(0)}/s, p50 ${ms(s?.p50Ms ?? null)} ms`))
    }
  }
  return out
}

/** The verdicts as lines: "met", "NOT met" or "n/a" per target. */
export function formatVerdicts (verdicts: readonly Verdict[], markdown = false): string[] {
  const rows = verdicts.map(v => [v.met === null ? 'n/a' : v.met ? 'met' : 'NOT met', v.target, v.measured])
  if (markdown) return [`| verdict | target | measured |`, `| --- | --- | --- |`, ...rows.map(r => `| ${r.join(' | ')} |`)]
  return rows.map(([m, t, v]) => `${(m ?? '').padEnd(8)}${t ?? ''}: ${v ?? ''}`)
}

/** Things that make numbers mean less than they seem (e.g. a setting skr does not honour yet). */
export function caveats (runs: readonly ProcessRun[], startups: readonly StartupSample[], floor: FloorRun | null = null): string[] {
  const out: string[] = []
  if (floor !== null) {
    out.push(`stack floor (bench/floor-server.mjs: the same Node and options, fastify + pino, undici with a TLS context, one HTTPS call upstream per request, nothing else): RSS idle ${mb(floor.rssIdleBytes)} MB, under the same load ${mb(floor.rssLoadMaxBytes)} MB, start-up ${ms(floor.startupMs)} ms`)
  }
  for (const r of runs) {
    if (r.reuse !== 'off') continue
    const attesting = r.scenarios.filter(s => s.requests > 0 && s.maaCallsPerRelease < 0.5)
    if (attesting.length > 0) {
      out.push(`reuse off at ${r.rttMs} ms RTT made ${attesting.map(s => s.maaCallsPerRelease.toFixed(2)).join('/')} MAA calls per release: SKR_ATTESTATION_TTL_SECONDS=0 is not honoured by this build, so its "off" rows measure reuse on`)
    }
  }
  for (const mode of ['compiled', 'source'] as const) {
    const samples = startups.filter(s => s.mode === mode)
    if (samples.length === 0) continue
    const rss = samples.map(s => s.rssIdleBytes).filter((v): v is number => v !== null)
    out.push(`start-up from ${mode === 'compiled' ? 'the bundle (dist/, as in the image)' : 'the TypeScript sources (bin/skr.js without dist/)'}: median ${ms(median(samples.map(s => s.startupMs)))} ms over ${samples.length}, RSS idle ${mb(rss.length === 0 ? null : Math.max(...rss))} MB`)
  }
  return out
}
