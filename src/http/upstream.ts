// One outbound HTTP client per upstream (MAA, AKV, IMDS, THIM, KDS, ...): its own undici Agent
// (keep-alive, TLS session reuse, connect timeout, extra CA roots), a whole-call deadline, a
// response-size cap and retries with backoff. Protocol knowledge stays with the callers: a non-2xx
// answer is returned to them, except that retryable statuses left after the last attempt throw.
//
// undici and each Agent (with its TLS context) are created on the first request, not with the
// Upstream: `skr serve` builds all its upstreams at start-up, and loading undici (~100 files) and
// parsing the system roots into a TLS context would otherwise delay the first /status answer.
import { setImmediate as nextTick, setTimeout as delay } from 'node:timers/promises'
import type { Readable } from 'node:stream'
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import type * as UndiciModule from 'undici'
import type { Agent } from 'undici'
import { UpstreamResponseInvalid } from '../errors.ts'
import { deadlineError, mapTransportError, statusError, type FailureContext } from './errors-map.ts'
import { isRetryableStatus, retryDelayMs } from './retry.ts'
import { upstreamFailureStatus } from '../observability/metrics.ts'

/** The upstreams skr calls; used in messages, error details and logs. */
export type UpstreamName = 'maa' | 'akv' | 'imds' | 'thim' | 'kds' | 'azcache' | 'entra'

/** Timeouts (ms), retry budget and response cap of one upstream. */
export interface UpstreamPolicy {
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  totalTimeoutMs: number
  maxRetries: number
  baseDelayMs: number
  maxDelayMs: number
  maxResponseBytes: number
}

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
}

/** One call; `retry: false` makes exactly one attempt. */
export interface UpstreamRequest {
  method: 'GET' | 'POST' | 'PUT'
  url: string | URL
  headers?: Record<string, string>
  body?: string | Buffer
  signal?: AbortSignal
  retry?: boolean
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

function firstHeader (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

// The caller's own cancellation is not an upstream failure: it surfaces unchanged.
function throwIfAborted (signal: AbortSignal | undefined): void {
  signal?.throwIfAborted()
}

type Attempt = { ok: true, response: UpstreamResponse } | { ok: false, err: unknown }

type Undici = typeof UndiciModule

let undici: Promise<Undici> | undefined

async function loadUndici (): Promise<Undici> {
  undici ??= import('undici')
  return await undici
}

// One TLS context per distinct set of extra roots, shared by every upstream that trusts it: building
// one parses ~140 system roots, and passing `ca` alone would do that again on every connection.
const secureContexts = new Map<string, SecureContext>()

function secureContextFor (extra: readonly string[]): SecureContext {
  const key = extra.join('\n')
  let context = secureContexts.get(key)
  if (context === undefined) {
    context = createSecureContext({ ca: [...rootCertificates, ...extra] })
    secureContexts.set(key, context)
  }
  return context
}

/** An HTTP client bound to one upstream, with that upstream's policy and trust roots. */
export class Upstream {
  /** Which upstream this client talks to. */
  readonly name: UpstreamName
  /** The effective (defaulted, frozen) policy. */
  readonly policy: UpstreamPolicy
  readonly #extraCa: readonly string[]
  #agent: Promise<Agent> | null = null
  /** undici's request() and the Agent, once both exist (the hot path then awaits neither). */
  #client: { request: Undici['request'], agent: Agent } | null = null
  #closed = false
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
    this.#extraCa = Object.freeze(options.ca === undefined ? [] : Array.isArray(options.ca) ? [...options.ca] : [options.ca])
  }

  /** undici and the Agent, created on first use; after close() the Agent exists only to refuse requests as a closed Agent does. */
  async #connect (): Promise<{ request: Undici['request'], agent: Agent }> {
    this.#agent ??= (async () => {
      const { Agent } = await loadUndici()
      const extra = this.#extraCa
      const agent = new Agent({
        connect: {
          timeout: this.policy.connectTimeoutMs,
          ...(extra.length > 0 ? { secureContext: secureContextFor(extra) } : {})
        },
        headersTimeout: this.policy.headersTimeoutMs,
        bodyTimeout: this.policy.bodyTimeoutMs
      })
      if (this.#closed) await agent.close()
      return agent
    })()
    const [{ request }, agent] = await Promise.all([loadUndici(), this.#agent])
    this.#client = { request, agent }
    return this.#client
  }

  /** Sends the request, retrying transient failures; returns any final status except exhausted 408/429/5xx. */
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
    const ctx: FailureContext = { upstream: this.name, host: url.host, attempts: 0 }
    const maxAttempts = req.retry === false ? 1 : this.policy.maxRetries + 1
    const started = performance.now()
    const deadline = new AbortController()
    const timer = setTimeout(() => { deadline.abort() }, this.policy.totalTimeoutMs)
    const signal = req.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, req.signal])
    try {
      for (;;) {
        ctx.attempts++
        const outcome = await this.#attempt(url, req, signal)
        throwIfAborted(req.signal)
        if (deadline.signal.aborted) throw deadlineError(ctx, this.policy.totalTimeoutMs, outcome.ok ? undefined : outcome.err)
        let failure: Error
        let retryAfter: string | undefined
        if (outcome.ok) {
          const res = outcome.response
          if (!isRetryableStatus(res.status)) return { ...res, attempts: ctx.attempts }
          failure = statusError(ctx, res.status, res.body)
          retryAfter = firstHeader(res.headers['retry-after'])
        } else {
          const mapped = mapTransportError(outcome.err, ctx)
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

  /** Closes the Agent's connections; further requests fail. */
  async close (): Promise<void> {
    this.#closed = true
    // Never used: nothing to close, and no reason to load undici now.
    if (this.#agent === null) return
    await (await this.#agent).close()
  }

  async #wait (ms: number, signal: AbortSignal): Promise<void> {
    if (this.#sleep !== null) return await this.#sleep(ms)
    await delay(ms, undefined, { signal }).catch(() => { /* the caller checks which signal fired */ })
  }

  async #attempt (url: URL, req: UpstreamRequest, signal: AbortSignal): Promise<Attempt> {
    try {
      const { request, agent } = this.#client ?? await this.#connect()
      const res = await request(url, {
        dispatcher: agent,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal
      })
      const body = await this.#readBody(res.body, res.headers['content-length'], url)
      // undici ends the body stream a tick before it marks the connection idle; a request sent in
      // between would open a second connection instead of reusing this one.
      await nextTick()
      return { ok: true, response: { status: res.statusCode, headers: res.headers, body, attempts: 0 } }
    } catch (err) {
      if (err instanceof UpstreamResponseInvalid) throw err
      return { ok: false, err }
    }
  }

  async #readBody (stream: Readable, contentLength: string | string[] | undefined, url: URL): Promise<Buffer> {
    const cap = this.policy.maxResponseBytes
    const tooLarge = (found: string): UpstreamResponseInvalid => {
      const err = new UpstreamResponseInvalid(`${this.name} ${url.host}: response body ${found} bytes, want at most ${cap}`,
        { details: { upstream: this.name, maxResponseBytes: cap } })
      // Dropping the connection is the only way to stop the rest of the body; the stream's own
      // 'error' is expected and must not become an uncaught exception.
      stream.on('error', () => {})
      stream.destroy(err)
      return err
    }
    const declared = Number(firstHeader(contentLength))
    if (Number.isFinite(declared) && declared > cap) throw tooLarge(String(declared))
    const chunks: Buffer[] = []
    let total = 0
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      total += chunk.length
      if (total > cap) throw tooLarge(`over ${cap}`)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks, total)
  }
}
