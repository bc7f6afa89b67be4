// One outbound HTTP client per upstream (MAA, AKV, IMDS, THIM, KDS, ...): its own undici Agent
// (keep-alive, TLS session reuse, connect timeout, extra CA roots), a whole-call deadline, a
// response-size cap and retries with backoff. Protocol knowledge stays with the callers: a non-2xx
// answer is returned to them, except that retryable statuses left after the last attempt throw.
//
// undici and each Agent (with its TLS context) are created on the first request, not with the
// Upstream: `skr serve` builds all its upstreams at start-up, and loading undici (~100 files) and
// parsing the system roots into a TLS context would otherwise delay the first /status answer.
//
// Egress proxies: each request is routed by ./proxy.ts (HTTPS_PROXY/HTTP_PROXY/NO_PROXY with Go's
// semantics, as the reference's net/http applies them) either to the direct Agent or to an undici
// ProxyAgent for its proxy, both per Upstream and both created on first use. undici is only ever
// given the proxy's origin; its credentials travel as a Proxy-Authorization value, so no undici
// error text, log line or error detail can carry them.
import { setImmediate as nextTick, setTimeout as delay } from 'node:timers/promises'
import type { LookupFunction } from 'node:net'
import { UpstreamResponseInvalid } from '../errors.ts'
import { deadlineError, mapTransportError, statusError, type FailureContext } from './errors-map.ts'
import { proxyFor, proxyFromEnvironment, type ProxyServer, type ProxySettings } from './proxy.ts'
import { mapProxiedFailure, unusableProxyError } from './proxy-errors.ts'
import { isRetryableStatus, retryDelayMs } from './retry.ts'
import { firstHeader, readCappedBody } from './upstream-body.ts'
import { loadUndici, UpstreamDispatchers, type Undici } from './upstream-dispatchers.ts'
import { upstreamFailureStatus } from '../observability/metrics.ts'
import type { UpstreamName, UpstreamPolicy } from './upstream-types.ts'

export type { UpstreamName, UpstreamPolicy } from './upstream-types.ts'

/** Makes a client for one upstream (the composition root's, app/trust.ts: CA roots, proxy and metrics applied). */
export type UpstreamFactory = (name: UpstreamName, policy?: Partial<UpstreamPolicy>) => Upstream

/** Connect 5 s, headers 10 s, body 10 s, whole call 30 s, 3 retries, backoff 250 ms..5 s, 4 MiB bodies. */
export const DEFAULT_UPSTREAM_POLICY: UpstreamPolicy = Object.freeze({
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  totalTimeoutMs: 30_000,
  maxRetries: 3,
  baseDelayMs: 250,
  maxDelayMs: 5_000,
  maxResponseBytes: 4 * 1024 * 1024
})

/** How to build an Upstream; `ca` is added to (not substituted for) the system roots. */
export interface UpstreamOptions {
  name: UpstreamName
  policy?: Partial<UpstreamPolicy>
  ca?: string | string[]
  sleep?: (ms: number) => Promise<void>
  random?: () => number
  now?: () => Date
  /** Records each call's outcome and latency (observability/metrics.ts's Metrics fits). */
  metrics?: { observeUpstream: (service: UpstreamName, status: string, seconds: number) => void }
  /**
   * Egress proxy settings (./proxy.ts). The sidecar passes config.proxy (parsed by loadConfig); the
   * default, for callers without a Config, is HTTPS_PROXY, HTTP_PROXY and NO_PROXY read once from process.env.
   */
  proxy?: ProxySettings
  /** Name resolution for direct connections and for the proxy's own name; default node:dns lookup (tests map made-up names to loopback). */
  lookup?: LookupFunction
}

/** One call; `retry: false` makes exactly one attempt. */
export interface UpstreamRequest {
  method: 'GET' | 'POST' | 'PUT'
  url: string | URL
  headers?: Record<string, string>
  body?: string | Buffer
  signal?: AbortSignal
  retry?: boolean
  /** Return a 408/429/5xx answer left after the last attempt instead of throwing (callers with their own retry policy: the Azure SDK's pipeline). */
  returnAnyStatus?: boolean
}

/** The final answer: status, headers, the whole (capped) body and how many attempts it took. */
export interface UpstreamResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  attempts: number
}

function checkPolicy (policy: UpstreamPolicy): UpstreamPolicy {
  for (const [key, value] of Object.entries(policy)) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw new TypeError(`upstream policy ${key} must be a non-negative integer, got ${String(value)}`)
    }
  }
  return Object.freeze({ ...policy })
}

// The caller's own cancellation is not an upstream failure: it surfaces unchanged.
function throwIfAborted (signal: AbortSignal | undefined): void {
  signal?.throwIfAborted()
}

type Attempt = { ok: true, response: UpstreamResponse } | { ok: false, err: unknown }

// `pending`, or the signal's reason as soon as it fires (also if it already has). undici notices an
// abort only once the request has a connection; until then it only records it, and aborts the
// request when connected (or fails it with its own timeout): nothing is left unhandled.
async function unlessAborted<T> (pending: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort = (): void => {}
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(signal.reason) }
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([pending, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/** An HTTP client bound to one upstream, with that upstream's policy and trust roots. */
export class Upstream {
  /** Which upstream this client talks to. */
  readonly name: UpstreamName
  /** The effective (defaulted, frozen) policy. */
  readonly policy: UpstreamPolicy
  readonly #proxy: ProxySettings
  /** undici once loaded (the hot path then awaits nothing). */
  #undici: Undici | null = null
  /** The direct Agent and the ProxyAgents, created on first use. */
  readonly #dispatchers: UpstreamDispatchers
  readonly #sleep: ((ms: number) => Promise<void>) | null
  readonly #random: () => number
  readonly #now: () => Date
  readonly #metrics: UpstreamOptions['metrics'] | null

  constructor (options: UpstreamOptions) {
    this.name = options.name
    this.policy = checkPolicy({ ...DEFAULT_UPSTREAM_POLICY, ...options.policy })
    this.#sleep = options.sleep ?? null
    this.#random = options.random ?? Math.random
    this.#now = options.now ?? (() => new Date())
    this.#metrics = options.metrics ?? null
    const extraCa = Object.freeze(options.ca === undefined ? [] : Array.isArray(options.ca) ? [...options.ca] : [options.ca])
    this.#proxy = options.proxy ?? proxyFromEnvironment()
    this.#dispatchers = new UpstreamDispatchers({ policy: this.policy, extraCa, lookup: options.lookup ?? null })
  }

  /** The proxy settings requests are routed by (printing them shows proxy origins, never credentials). */
  get proxy (): ProxySettings {
    return this.#proxy
  }

  async #load (): Promise<Undici> {
    this.#undici ??= await loadUndici()
    return this.#undici
  }

  /** Sends the request, retrying transient failures; returns any final status except exhausted 408/429/5xx (unless `returnAnyStatus`). */
  async request (req: UpstreamRequest): Promise<UpstreamResponse> {
    const started = performance.now()
    try {
      const res = await this.#request(req)
      this.#metrics?.observeUpstream(this.name, String(res.status), (performance.now() - started) / 1000)
      return res
    } catch (err) {
      // A caller that gave up is not the upstream's failure.
      if (req.signal?.aborted !== true) this.#metrics?.observeUpstream(this.name, upstreamFailureStatus(err), (performance.now() - started) / 1000)
      throw err
    }
  }

  async #request (req: UpstreamRequest): Promise<UpstreamResponse> {
    const url = typeof req.url === 'string' ? new URL(req.url) : req.url
    // undici's top-level request() refused other schemes; the dispatcher API this client uses
    // does not, and this is where every upstream call leaves the process.
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`${this.name}: only http: and https: URLs are sent, not ${url.protocol}`)
    const route = proxyFor(this.#proxy, url)
    if (route !== null && route.kind === 'unusable') throw unusableProxyError(this.name, url.host, route)
    // Every message about a proxied call names the proxy (its origin only: never credentials).
    const ctx: FailureContext = { upstream: this.name, host: url.host, attempts: 0, ...(route === null ? {} : { proxy: route.origin }) }
    const maxAttempts = req.retry === false ? 1 : this.policy.maxRetries + 1
    const started = performance.now()
    const deadline = new AbortController()
    const timer = setTimeout(() => { deadline.abort() }, this.policy.totalTimeoutMs)
    const signal = req.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, req.signal])
    try {
      for (;;) {
        ctx.attempts++
        const outcome = await this.#attempt(url, req, signal, route)
        throwIfAborted(req.signal)
        if (deadline.signal.aborted) throw deadlineError(ctx, this.policy.totalTimeoutMs, outcome.ok ? undefined : outcome.err)
        let failure: Error
        let retryAfter: string | undefined
        if (outcome.ok) {
          const res = outcome.response
          if (!isRetryableStatus(res.status) || (req.returnAnyStatus === true && ctx.attempts >= maxAttempts)) return { ...res, attempts: ctx.attempts }
          failure = statusError(ctx, res.status, res.body)
          retryAfter = firstHeader(res.headers['retry-after'])
        } else {
          const mapped = route === null ? mapTransportError(outcome.err, ctx) : mapProxiedFailure(outcome.err, ctx, route)
          if (!mapped.retryable) throw mapped.error
          failure = mapped.error
        }
        if (ctx.attempts >= maxAttempts) throw failure
        const wait = retryDelayMs(ctx.attempts, this.policy, retryAfter, this.#now(), this.#random)
        // Sleeping past the deadline only to time out would turn a clear "unavailable" into a timeout.
        if (wait >= this.policy.totalTimeoutMs - (performance.now() - started)) throw failure
        await this.#wait(wait, signal)
        throwIfAborted(req.signal)
        if (deadline.signal.aborted) throw deadlineError(ctx, this.policy.totalTimeoutMs)
      }
    } finally {
      clearTimeout(timer)
    }
  }

  /** Closes every connection (direct and through proxies); further requests fail. Calling it again is harmless. */
  async close (): Promise<void> {
    await this.#dispatchers.close()
  }

  async #wait (ms: number, signal: AbortSignal): Promise<void> {
    if (this.#sleep !== null) return await this.#sleep(ms)
    await delay(ms, undefined, { signal }).catch(() => { /* the caller checks which signal fired */ })
  }

  async #attempt (url: URL, req: UpstreamRequest, signal: AbortSignal, proxy: ProxyServer | null): Promise<Attempt> {
    try {
      const u = this.#undici ?? await this.#load()
      // Getting a connection through a proxy takes up to three connect timeouts (the proxy, its
      // CONNECT answer, the origin's TLS), and undici ignores the signal until it has one: the
      // deadline and the caller's abort must not wait for that.
      const res = await unlessAborted(this.#dispatchers.get(u, proxy).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: req.method,
        // ProxyAgent writes a Host header into the object it is given, so never hand it the caller's.
        // And always hand it one: it adds Host only to an existing object, undici derives the TLS
        // servername from Host, and a request whose servername differs from the last one's drops
        // the kept-alive tunnel.
        headers: proxy === null ? req.headers : { ...req.headers },
        body: req.body,
        signal
      }), signal)
      const body = await readCappedBody(res.body, res.headers['content-length'], this.policy.maxResponseBytes, this.name, url)
      // undici ends the body stream a tick before it marks the connection idle; a request sent in
      // between would open a second connection instead of reusing this one.
      await nextTick()
      return { ok: true, response: { status: res.statusCode, headers: res.headers, body, attempts: 0 } }
    } catch (err) {
      if (err instanceof UpstreamResponseInvalid) throw err
      return { ok: false, err }
    }
  }
}
