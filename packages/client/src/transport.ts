// One JSON call to the sidecar, with a per-attempt timeout and bounded retries. Only what
// may succeed on a second try is retried: 503/504 (the sidecar's "upstream or device busy,
// try again") honouring Retry-After, and failures to reach the sidecar at all (it may still
// be starting). A timeout is not retried: the sidecar is still working on the first request.
import { setTimeout as sleep } from 'node:timers/promises'
import { CLIENT_ERROR_CODES, SkrClientError } from './errors.ts'

/** The fetch signature the transport calls (global fetch, undici's, or a test's). */
export type FetchFn = (url: string, init: {
  method: string
  headers: Record<string, string>
  body?: string
  signal: AbortSignal
  dispatcher?: unknown
}) => Promise<Response>

/** Resolved transport settings (see SkrClientOptions for the meaning of each). */
export interface TransportSettings {
  readonly baseUrl: string
  readonly timeoutMs: number
  readonly retries: number
  readonly backoffMs: number
  readonly maxRetryDelayMs: number
  /** Resolves fetch and, for Unix sockets, the dispatcher to pass it; called once per request. */
  readonly connect: () => Promise<{ fetch: FetchFn; dispatcher?: unknown }>
}

const RETRY_STATUSES = new Set([503, 504])
const MAX_MESSAGE = 500

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Milliseconds a Retry-After header asks for (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter (value: string | null, now: number = Date.now()): number | null {
  if (value === null) return null
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const at = Date.parse(text)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}

/** Exponential backoff with jitter in [half, full] of backoffMs·2^attempt, capped. */
export function backoffDelay (attempt: number, backoffMs: number, capMs: number): number {
  const full = Math.min(capMs, backoffMs * 2 ** attempt)
  return Math.round(full / 2 + Math.random() * full / 2)
}

/** Builds the error for a non-2xx answer from the sidecar's `{error, code, requestId}` body. */
export function errorFromResponse (status: number, text: string): SkrClientError {
  let body: unknown = null
  try {
    body = JSON.parse(text)
  } catch {
    // Not JSON (a proxy's page, or an empty body): status only.
  }
  const record = isRecord(body) ? body : {}
  const code = typeof record.code === 'string' && record.code !== '' ? record.code : `ERR_HTTP_${status}`
  const requestId = typeof record.requestId === 'string' ? record.requestId : null
  const sentence = typeof record.error === 'string' ? record.error.slice(0, MAX_MESSAGE) : `HTTP ${status}`
  return new SkrClientError(`skr answered ${status} ${code}: ${sentence}`, { code, status, requestId })
}

function abortedError (cause: unknown): SkrClientError {
  return new SkrClientError('the request was aborted by the caller', { code: CLIENT_ERROR_CODES.aborted, status: null, requestId: null, cause })
}

async function pause (ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? undefined : { signal })
  } catch (err) {
    throw abortedError(err)
  }
}

type Attempt =
  | { kind: 'answer'; status: number; text: string; retryAfter: string | null }
  | { kind: 'network'; cause: unknown }

async function attempt (settings: TransportSettings, method: string, path: string, body: string | undefined, signal: AbortSignal | undefined): Promise<Attempt> {
  const controller = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; controller.abort() }, settings.timeoutMs)
  const combined = signal === undefined ? controller.signal : AbortSignal.any([signal, controller.signal])
  try {
    const { fetch, dispatcher } = await settings.connect()
    const headers: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const init = { method, headers, signal: combined, ...(body === undefined ? {} : { body }), ...(dispatcher === undefined ? {} : { dispatcher }) }
    const response = await fetch(`${settings.baseUrl}${path}`, init)
    // The body is read under the same timer: a sidecar that sends headers and stalls still times out.
    const text = await response.text()
    return { kind: 'answer', status: response.status, text, retryAfter: response.headers.get('retry-after') }
  } catch (err) {
    if (signal?.aborted === true) throw abortedError(err)
    if (timedOut) {
      throw new SkrClientError(`no answer from skr within ${settings.timeoutMs} ms (${method} ${path})`,
        { code: CLIENT_ERROR_CODES.timeout, status: null, requestId: null, cause: err })
    }
    return { kind: 'network', cause: err }
  } finally {
    clearTimeout(timer)
  }
}

function describeNetwork (cause: unknown): string {
  const inner = (cause as { cause?: unknown } | null)?.cause ?? cause
  const code = (inner as { code?: unknown } | null)?.code
  if (typeof code === 'string') return code
  return inner instanceof Error ? inner.message : String(inner)
}

/**
 * Sends one call and returns the parsed 2xx JSON body. Throws SkrClientError for error
 * answers (the sidecar's code preserved), timeouts, aborts and unreachable sidecars.
 */
export async function requestJson (settings: TransportSettings, method: 'GET' | 'POST', path: string, payload?: unknown, signal?: AbortSignal): Promise<unknown> {
  const body = payload === undefined ? undefined : JSON.stringify(payload)
  for (let n = 0; ; n++) {
    if (signal?.aborted === true) throw abortedError(signal.reason)
    const result = await attempt(settings, method, path, body, signal)
    const last = n >= settings.retries
    if (result.kind === 'network') {
      if (last) {
        throw new SkrClientError(`skr unreachable at ${settings.baseUrl} (${describeNetwork(result.cause)})`,
          { code: CLIENT_ERROR_CODES.network, status: null, requestId: null, cause: result.cause })
      }
      await pause(backoffDelay(n, settings.backoffMs, settings.maxRetryDelayMs), signal)
      continue
    }
    if (result.status >= 200 && result.status < 300) {
      try {
        return JSON.parse(result.text) as unknown
      } catch {
        // Never echo a 2xx body: it may hold a key or a token.
        throw new SkrClientError(`skr answered ${result.status} to ${method} ${path} with a body that is not JSON`,
          { code: CLIENT_ERROR_CODES.responseInvalid, status: result.status, requestId: null })
      }
    }
    if (!RETRY_STATUSES.has(result.status) || last) throw errorFromResponse(result.status, result.text)
    const asked = parseRetryAfter(result.retryAfter)
    const delay = Math.min(asked ?? backoffDelay(n, settings.backoffMs, settings.maxRetryDelayMs), settings.maxRetryDelayMs)
    await pause(delay, signal)
  }
}
