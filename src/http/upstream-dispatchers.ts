// The undici dispatchers of one upstream: a direct Agent and a ProxyAgent per egress proxy, with
// the upstream's timeouts and extra CA roots, each created on first use. undici itself is loaded on
// the first request (see ./upstream.ts).
import type { LookupFunction } from 'node:net'
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import type * as UndiciModule from './undici-parts.ts'
import type { buildConnector, Dispatcher, Pool } from 'undici'
import type { ProxyServer } from './proxy.ts'
import type { UpstreamPolicy } from './upstream-types.ts'

/**
 * Most open connections to one origin (further requests wait in undici's queue, still under their
 * deadline). Each TLS connection holds buffers and session state; at 64 concurrent releases to one
 * vault skr used to open 64, and capping them at 32 took RSS under that load from 143 to 133–136 MB
 * with the same throughput (bench/results.md; issue 13). Per-vault admission (SKR_MAX_INFLIGHT_PER_DESTINATION)
 * still decides how many releases may wait.
 */
export const MAX_CONNECTIONS_PER_ORIGIN = 32

// undici takes a CONNECT that the proxy closed without answering (UND_ERR_SOCKET) for a recoverable
// socket error: it reconnects at once, without end, and never fails the requests waiting for the
// tunnel (thousands of CONNECTs a second, the call stuck until its deadline and the loop going on
// after it). Reported as a reset, it fails them, and the call's own bounded retries take over.
function failClosedTunnel (connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) => {
    connect(options, (...args) => {
      const [err] = args
      if (err !== null && (err as { code?: unknown }).code === 'UND_ERR_SOCKET') {
        callback(Object.assign(new Error('the proxy closed the connection without answering CONNECT', { cause: err }), { code: 'ECONNRESET' }), null)
      } else {
        callback(...args)
      }
    })
  }
}

/** The undici parts skr uses (./undici-parts.ts). */
export type Undici = typeof UndiciModule

let undici: Promise<Undici> | undefined

/** Loads undici once per process. */
export async function loadUndici (): Promise<Undici> {
  undici ??= import('./undici-parts.ts')
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

/** Options of UpstreamDispatchers: the upstream's policy (timeouts), extra CA roots and name resolution. */
export interface DispatchersOptions { policy: UpstreamPolicy, extraCa: readonly string[], lookup: LookupFunction | null }

/** The dispatchers of one upstream, direct and per proxy, created on first use. */
export class UpstreamDispatchers {
  /** The upstream's policy: its timeouts apply to every connection. */
  readonly policy: UpstreamPolicy
  readonly #extraCa: readonly string[]
  readonly #lookup: LookupFunction | null
  #direct: Dispatcher | null = null
  readonly #viaProxy = new Map<ProxyServer, Dispatcher>()
  #closed = false

  constructor (options: DispatchersOptions) {
    this.policy = options.policy
    this.#extraCa = options.extraCa
    this.#lookup = options.lookup
  }

  /** The extra roots, also trusted for an https:// proxy's own certificate (a corporate CA often signs both). */
  #tls (): { secureContext?: SecureContext } {
    return this.#extraCa.length > 0 ? { secureContext: secureContextFor(this.#extraCa) } : {}
  }

  #newDirect (u: Undici): Dispatcher {
    return new u.Agent({
      connect: { timeout: this.policy.connectTimeoutMs, ...this.#tls(), ...(this.#lookup === null ? {} : { lookup: this.#lookup }) },
      headersTimeout: this.policy.headersTimeoutMs,
      bodyTimeout: this.policy.bodyTimeoutMs,
      connections: MAX_CONNECTIONS_PER_ORIGIN
    })
  }

  #newViaProxy (u: Undici, proxy: ProxyServer): Dispatcher {
    const { connectTimeoutMs, headersTimeoutMs, bodyTimeoutMs } = this.policy
    const token = proxy.authorization()
    // undici checks an https:// proxy's certificate against the URL's hostname, which for IPv6 is
    // "[::1]", a name no certificate holds: give it the address itself.
    const host = new URL(proxy.origin).hostname
    const servername = host.startsWith('[') ? { servername: host.slice(1, -1) } : {}
    return new u.ProxyAgent({
      uri: proxy.origin,
      ...(token === undefined ? {} : { token }),
      // Plain-http origins are forwarded in absolute form, as Go does (many proxies only allow CONNECT
      // to 443); https origins always go through a CONNECT tunnel.
      proxyTunnel: false,
      connections: MAX_CONNECTIONS_PER_ORIGIN,
      proxyTls: { timeout: connectTimeoutMs, ...servername, ...this.#tls(), ...(this.#lookup === null ? {} : { lookup: this.#lookup }) },
      requestTls: { timeout: connectTimeoutMs, ...this.#tls() },
      // Waiting for the CONNECT answer is part of connecting. Only the proxy client's headers timeout
      // bounds it: undici does not cancel a request still waiting for its connection when its signal
      // fires (the call itself stops waiting then: unlessAborted).
      clientFactory: (origin, opts) => new u.Pool(origin, { ...(opts as Pool.Options), headersTimeout: connectTimeoutMs }),
      // The client for forwarded plain-http requests is built here with `connect` only: give it our
      // timeouts. The client of each origin reached through a tunnel is built here too.
      factory: (origin, opts) => {
        const options = opts as Pool.Options
        const connect = typeof options.connect === 'function' ? { connect: failClosedTunnel(options.connect) } : {}
        return new u.Pool(origin, { headersTimeout: headersTimeoutMs, bodyTimeout: bodyTimeoutMs, ...options, ...connect })
      },
      headersTimeout: headersTimeoutMs,
      bodyTimeout: bodyTimeoutMs
    })
  }

  /** The dispatcher for a route, created on first use; one created after close() is closed at once, so it refuses requests as the others do. */
  get (u: Undici, proxy: ProxyServer | null): Dispatcher {
    const existing = proxy === null ? this.#direct : this.#viaProxy.get(proxy)
    if (existing !== null && existing !== undefined) return existing
    const created = proxy === null ? this.#newDirect(u) : this.#newViaProxy(u, proxy)
    if (this.#closed) {
      // close() marks a dispatcher closed synchronously (the promise only reports the sockets gone).
      // Not kept: a second close() of an undici dispatcher rejects.
      void created.close()
      return created
    }
    if (proxy === null) this.#direct = created
    else this.#viaProxy.set(proxy, created)
    return created
  }

  /** Closes every dispatcher (direct and through proxies); ones created later are closed at once. */
  async close (): Promise<void> {
    this.#closed = true
    // Never used: nothing to close, and no reason to load undici now.
    const open = [this.#direct, ...this.#viaProxy.values()].filter((d): d is Dispatcher => d !== null)
    this.#direct = null
    this.#viaProxy.clear()
    await Promise.all(open.map(async (d) => { await d.close() }))
  }
}
