// A closed-loop load generator for one HTTP endpoint: `concurrency` workers over an undici Pool
// of as many keep-alive connections, each sending its next request as soon as the previous one
// answered, until a request budget or a time cap is reached (whichever comes first), so every
// scenario stops by itself. Latency is measured per request from send to the end of the body.
import { Pool } from 'undici'

/** One scenario. */
export interface LoadOptions {
  /** http://host:port of the server. */
  base: string
  path: string
  concurrency: number
  /** Total requests across all workers. */
  maxRequests: number
  /** Stop issuing new requests after this long (requests already sent still finish). */
  maxMs: number
  /** The JSON body of request `i` sent by worker `worker` (e.g. a kid per worker). */
  body: (worker: number, i: number) => string
  /** Per-request client timeout (default 30 s); a timeout counts as an error. */
  timeoutMs?: number
}

/** What a scenario measured; latencies are of successful (200) answers only. */
export interface LoadResult {
  concurrency: number
  requests: number
  ok: number
  /** Failures by "<status> <code>" (or "client <error code>"). */
  errors: Record<string, number>
  elapsedMs: number
  p50Ms: number | null
  p99Ms: number | null
  maxMs: number | null
  /** Successful answers per second of wall time. */
  okPerSecond: number
}

/** The q-quantile (0..1) of ascending `sorted` by the nearest-rank method; null when empty. */
export function quantile (sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)))
  return sorted[rank - 1] ?? null
}

function codeOf (text: string): string {
  try {
    const code = (JSON.parse(text) as { code?: unknown }).code
    return typeof code === 'string' ? code : 'no code'
  } catch {
    return 'not JSON'
  }
}

function clientCode (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'error'
}

/** Runs one scenario and resolves when every worker has stopped. */
export async function runLoad (options: LoadOptions): Promise<LoadResult> {
  const { concurrency, maxRequests } = options
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`concurrency must be a positive integer, got ${String(concurrency)}`)
  const timeout = options.timeoutMs ?? 30_000
  const pool = new Pool(options.base, { connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 })
  const latencies: number[] = []
  const errors: Record<string, number> = {}
  const fail = (key: string): void => { errors[key] = (errors[key] ?? 0) + 1 }
  let issued = 0
  const started = performance.now()
  const stopAt = started + options.maxMs

  const worker = async (id: number): Promise<void> => {
    for (let i = 0; issued < maxRequests && performance.now() < stopAt; i++) {
      issued++
      const sent = performance.now()
      try {
        const res = await pool.request({
          path: options.path,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: options.body(id, i),
          headersTimeout: timeout,
          bodyTimeout: timeout
        })
        const text = await res.body.text()
        if (res.statusCode === 200) latencies.push(performance.now() - sent)
        else fail(`${res.statusCode} ${codeOf(text)}`)
      } catch (err) {
        fail(`client ${clientCode(err)}`)
      }
    }
  }

  try {
    await Promise.all(Array.from({ length: concurrency }, async (_, id) => { await worker(id) }))
  } finally {
    await pool.close()
  }
  const elapsedMs = performance.now() - started
  latencies.sort((a, b) => a - b)
  return {
    concurrency,
    requests: issued,
    ok: latencies.length,
    errors,
    elapsedMs,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? null,
    okPerSecond: latencies.length / (elapsedMs / 1000)
  }
}
