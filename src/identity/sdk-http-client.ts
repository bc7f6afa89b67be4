// The HttpClient @azure/identity (and MSAL under it) sends every token request through, built on
// skr's own Upstream (../http/upstream.ts), so token requests get what every other upstream gets:
// the egress-proxy rules of ../http/proxy.ts (link-local and loopback always direct), the extra CA
// roots, a per-attempt deadline, and the `skr_upstream_request_duration_seconds` metric under
// 'imds' (plain http or link-local: IMDS and its AZURE_POD_IDENTITY_AUTHORITY_HOST redirect) or
// 'entra' (everything else: the SDK refuses a non-https authority host).
//
// Each SDK attempt is one Upstream attempt (`retry: false`, every status returned): the SDK's
// pipeline and MSAL keep their own retry logic. A failed attempt reaches the SDK as its default
// client reports one, a RestError whose `code` is a Node errno (ECONNREFUSED, ETIMEDOUT, ...) and
// whose `request` is the request, so its retry strategies and MSAL's network_error handling apply
// unchanged; a cancelled request rejects with an error named AbortError. The RestError's message is
// Upstream's (upstream, host, what happened, the proxy's origin): never a body, header or token.
import { Readable } from 'node:stream'
import { createHttpHeaders, RestError } from '@azure/core-rest-pipeline'
import type { HttpClient, PipelineRequest, PipelineResponse } from '@azure/core-rest-pipeline'
import { isSidecarError } from '../errors.ts'
import { isLinkLocal, type ProxySettings } from '../http/proxy.ts'
import { Upstream, type UpstreamFactory, type UpstreamName, type UpstreamOptions } from '../http/upstream.ts'

/** How to build the client; only `attemptTimeoutMs` is required. */
export interface SdkHttpClientOptions {
  /** Deadline of one HTTP attempt; a request's own shorter `timeout` wins. */
  attemptTimeoutMs: number
  /** Extra PEM roots for Entra's TLS (added to the system roots). */
  ca?: readonly string[]
  /** Egress proxy settings (config.proxy); default: read once from process.env, as Upstream does. */
  proxy?: ProxySettings
  /** Records each attempt under 'imds' or 'entra'. */
  metrics?: UpstreamOptions['metrics']
  /** Makes the clients instead (app/trust.ts: its roots, proxy and metrics apply; `ca`, `proxy` and `metrics` are then unused). */
  upstream?: UpstreamFactory
}

/** Which upstream a token request goes to: 'imds' for plain http or a link-local host, else 'entra'. */
export function identityServiceOf (url: URL): 'imds' | 'entra' {
  return url.protocol === 'http:' || isLinkLocal(url.hostname) ? 'imds' : 'entra'
}

// What the SDK's retry strategy knows as a system error (ETIMEDOUT, ECONNRESET, ...) for the
// undici codes Upstream reports; Node's own errnos pass through as they are.
function sdkCode (err: unknown): string {
  if (isSidecarError(err) && err.code === 'ERR_UPSTREAM_TIMEOUT') return 'ETIMEDOUT'
  const e = err as { details?: { errorCode?: unknown } }
  const code = e.details?.errorCode
  if (code === 'UND_ERR_SOCKET' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return 'ECONNRESET'
  return typeof code === 'string' && code !== 'UNKNOWN' ? code : RestError.REQUEST_SEND_ERROR
}

function bodyOf (request: PipelineRequest): string | Buffer | undefined {
  const body = request.body
  if (request.formData !== undefined || request.multipartBody !== undefined) {
    throw new RestError('identity http client: form and multipart bodies are not supported', { code: RestError.REQUEST_SEND_ERROR, request })
  }
  if (body === undefined || body === null || typeof body === 'string') return body ?? undefined
  if (body instanceof ArrayBuffer) return Buffer.from(body)
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  throw new RestError('identity http client: only string and byte bodies are supported', { code: RestError.REQUEST_SEND_ERROR, request })
}

function abortError (): Error {
  return Object.assign(new Error('the token request was aborted'), { name: 'AbortError' })
}

/** An HttpClient over one Upstream per identity service, each created on its first request. */
export function createSdkHttpClient (options: SdkHttpClientOptions): HttpClient {
  const attemptTimeoutMs = options.attemptTimeoutMs
  if (!Number.isInteger(attemptTimeoutMs) || attemptTimeoutMs <= 0) throw new TypeError('createSdkHttpClient: attemptTimeoutMs must be a positive integer')
  const upstreams = new Map<UpstreamName, Upstream>()
  const upstreamFor = (name: 'imds' | 'entra'): Upstream => {
    let upstream = upstreams.get(name)
    if (upstream === undefined) {
      const policy = {
        connectTimeoutMs: Math.min(5_000, attemptTimeoutMs),
        headersTimeoutMs: attemptTimeoutMs,
        bodyTimeoutMs: attemptTimeoutMs,
        totalTimeoutMs: attemptTimeoutMs,
        maxRetries: 0
      }
      upstream = options.upstream?.(name, policy) ?? new Upstream({
        name,
        policy,
        ...(options.ca === undefined || options.ca.length === 0 ? {} : { ca: [...options.ca] }),
        ...(options.proxy === undefined ? {} : { proxy: options.proxy }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics })
      })
      upstreams.set(name, upstream)
    }
    return upstream
  }

  return {
    sendRequest: async (request: PipelineRequest): Promise<PipelineResponse> => {
      const method = request.method
      if (method !== 'GET' && method !== 'POST' && method !== 'PUT') {
        throw new RestError(`identity http client: method ${method} is not supported`, { code: RestError.REQUEST_SEND_ERROR, request })
      }
      const url = new URL(request.url)
      // As the SDK's own client: plain http only where the credential allows it (IMDS).
      if (url.protocol !== 'https:' && request.allowInsecureConnection !== true) {
        throw new RestError(`identity http client: ${url.protocol} to ${url.host} while allowInsecureConnection is false`, { code: RestError.REQUEST_SEND_ERROR, request })
      }
      const service = identityServiceOf(url)
      const body = bodyOf(request)
      const headers = request.headers.toJSON({ preserveCase: true })
      // The SDK's decompression policy asks for gzip; Upstream hands back the bytes as sent.
      for (const name of Object.keys(headers)) if (name.toLowerCase() === 'accept-encoding') Reflect.deleteProperty(headers, name)
      headers['Accept-Encoding'] = 'identity'

      const caller = request.abortSignal
      const callerAborted = (): boolean => caller?.aborted === true
      if (callerAborted()) throw abortError()
      const controller = new AbortController()
      const onAbort = (): void => { controller.abort() }
      caller?.addEventListener('abort', onAbort)
      // A request's own shorter timeout; the attempt deadline is Upstream's totalTimeoutMs.
      let timedOut = false
      const timer = request.timeout > 0 && request.timeout < attemptTimeoutMs
        ? setTimeout(() => { timedOut = true; controller.abort() }, request.timeout)
        : undefined
      const started = performance.now()
      try {
        const res = await upstreamFor(service).request({
          method, url, headers, signal: controller.signal, retry: false, returnAnyStatus: true, ...(body === undefined ? {} : { body })
        })
        const responseHeaders = createHttpHeaders()
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value)
        }
        const encoding = responseHeaders.get('content-encoding')
        if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
          throw new RestError(`${service} ${url.host}: response content-encoding ${encoding}, want identity`, { code: RestError.PARSE_ERROR, request })
        }
        const response: PipelineResponse = { request, status: res.status, headers: responseHeaders }
        const streamed = request.streamResponseStatusCodes
        if (streamed?.has(Number.POSITIVE_INFINITY) === true || streamed?.has(res.status) === true) {
          response.readableStreamBody = Readable.from([res.body])
        } else {
          response.bodyAsText = res.body.toString('utf8')
        }
        return response
      } catch (err) {
        if (err instanceof RestError) throw err
        if (timedOut) {
          // Upstream leaves a caller's abort unrecorded; this one is the upstream's slowness.
          options.metrics?.observeUpstream(service, 'timeout', (performance.now() - started) / 1000)
          throw new RestError(`${service} ${url.host}: no answer within the request's ${request.timeout} ms timeout`, { code: 'ETIMEDOUT', request })
        }
        if (callerAborted()) throw abortError()
        const message = err instanceof Error ? err.message : 'request failed'
        throw new RestError(message, { code: sdkCode(err), request })
      } finally {
        clearTimeout(timer)
        caller?.removeEventListener('abort', onAbort)
      }
    }
  }
}
