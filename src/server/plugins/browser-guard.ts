// No web page can drive skr (issue 11 §2). skr's API is for processes in the pod; a browser on
// the same machine or network namespace can reach 127.0.0.1:8080 too, two ways:
// - cross-site requests: a page on any site can POST a form (or a no-cors fetch) to
//   http://127.0.0.1:8080/key/release. Browsers mark such requests with `Origin` and
//   `Sec-Fetch-Site` (Fetch Standard; https://www.w3.org/TR/fetch-metadata/);
// - DNS rebinding: a page at http://attacker.example:8080 whose name is then re-pointed at
//   127.0.0.1 reads skr's answers as same-origin. Its requests carry `Host: attacker.example:8080`.
// So every route refuses a request that carries Origin, or a Sec-Fetch-Site other than `none`
// (typed in the address bar) or `same-origin`, and one whose Host is not a loopback name or
// address, nor a name the operator configured (SKR_SERVER_NAMES) for a non-loopback listener,
// where IP literals are accepted too (a rebinding page always sends a name). curl, Go's
// net/http, Python and Node clients send neither Origin nor Sec-Fetch-*, and a loopback Host.
// Connections on the Unix socket skip the Host check: no browser can open one.
//
// Also answered here, in skr's error shape: an HTTP/1.1 request without Host (Node is told not to
// answer it itself, see ../http-options.ts). HTTP/1.0 may omit Host and is let through.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Socket } from 'node:net'
import { CrossOriginRefused, HostNotAllowed, RequestInvalid, type SidecarError } from '../../errors.ts'
import { isLoopbackCanonical, parseHostAndPort } from '../../http/host-name.ts'

/** Which Host values a listener answers to. */
export interface HostPolicy {
  /** Canonical names accepted besides loopback ones. */
  readonly serverNames: readonly string[]
  /** Whether a listener is on a non-loopback address (then IP-literal hosts are accepted). */
  readonly nonLoopbackListener: boolean
}

/** The headers the guard looks at. */
export interface BrowserHeaders {
  readonly httpVersion: string
  readonly host: string | undefined
  readonly origin: string | undefined
  readonly secFetchSite: string | undefined
  /** How many Host headers the request carried (Node keeps only the first). */
  readonly hostCount?: number
  /** The authority of an absolute-form request target (`POST http://host/…`), which RFC 9112 §3.2.2 says wins over Host. */
  readonly targetAuthority?: string
}

const SAME_SITE_FETCHES = new Set(['none', 'same-origin'])

function single (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value
}

/**
 * Why a request must be refused, or null when it may go on. Pure.
 * @param localSocket the request came over the Unix socket (no Host check)
 */
export function refuseBrowserRequest (headers: BrowserHeaders, policy: HostPolicy, localSocket = false): SidecarError | null {
  if (headers.origin !== undefined) {
    return new CrossOriginRefused('requests from web pages (an Origin header) are refused: skr\'s API is for processes in the pod')
  }
  const site = headers.secFetchSite?.trim().toLowerCase()
  if (site !== undefined && !SAME_SITE_FETCHES.has(site)) {
    return new CrossOriginRefused('cross-site requests (Sec-Fetch-Site other than none or same-origin) are refused: skr\'s API is for processes in the pod')
  }
  if ((headers.hostCount ?? 0) > 1) return new RequestInvalid('the Host header is given more than once (RFC 9112 §3.2)')
  if (headers.targetAuthority === '') return new RequestInvalid('the absolute-form request target is not a valid URL')
  if (headers.targetAuthority !== undefined) {
    const target = refuseBrowserRequest({ ...headers, host: headers.targetAuthority, targetAuthority: undefined }, policy, localSocket)
    if (target !== null) return target
  }
  if (headers.host === undefined || headers.host === '') {
    return headers.httpVersion === '1.0' ? null : new RequestInvalid('the Host header is required (HTTP/1.1)')
  }
  if (localSocket) return null
  let host
  try {
    host = parseHostAndPort(headers.host.trim()).host
  } catch {
    return new HostNotAllowed('the Host header is not a valid host[:port]')
  }
  if (isLoopbackCanonical(host.host)) return null
  if (policy.serverNames.includes(host.host)) return null
  if (policy.nonLoopbackListener && host.ip !== 0) return null
  const shown = host.host.length > 100 ? `${host.host.slice(0, 100)}…` : host.host
  return new HostNotAllowed(`Host ${JSON.stringify(shown)} is not a loopback name or address, nor listed in SKR_SERVER_NAMES (this refusal stops DNS rebinding)`)
}

// `POST http://host/path HTTP/1.1` (absolute form): its authority is the request's host. A target
// that does not parse as a URL is left to the router (404).
function absoluteFormAuthority (url: string | undefined): { targetAuthority?: string } {
  if (url === undefined || !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return {}
  try {
    return { targetAuthority: new URL(url).host }
  } catch {
    return { targetAuthority: '' }
  }
}

// Sockets accepted by the Unix-socket listener (./listen.ts marks them).
const localSockets = new WeakSet<Socket>()

/** Marks a connection as coming over the Unix socket. */
export function markLocalSocket (socket: Socket): void {
  localSockets.add(socket)
}

/** Installs the guard as the app's first onRequest hook (it runs for every route, 404s included). */
export function registerBrowserGuard (app: FastifyInstance, policy: HostPolicy): void {
  app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    const h = request.headers
    const raw = request.raw
    let hostCount = 0
    for (let i = 0; i < raw.rawHeaders.length; i += 2) if (raw.rawHeaders[i]?.toLowerCase() === 'host') hostCount++
    const refusal = refuseBrowserRequest({
      httpVersion: raw.httpVersion,
      host: single(h.host),
      origin: single(h.origin),
      secFetchSite: single(h['sec-fetch-site']),
      hostCount,
      ...absoluteFormAuthority(raw.url)
    }, policy, localSockets.has(raw.socket))
    done(refusal ?? undefined)
  })
}
