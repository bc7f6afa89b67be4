// The errors of a call routed through an egress proxy (./proxy.ts): a proxy that refused the
// tunnel, whose name does not resolve, or whose setting is unusable. Messages name the proxy by its
// origin and variable, never its credentials.
import { UpstreamUnavailable } from '../errors.ts'
import { attemptsText, mapTransportError, upstreamFacts, type FailureContext, type TransportFailure, transportErrorCode } from './errors-map.ts'
import { proxyRefusalStatus, type ProxyServer, type UnusableProxy } from './proxy.ts'
import { isRetryableStatus } from './retry.ts'
import type { UpstreamName } from './upstream-types.ts'

// Hints for the refusals an operator meets most; the status itself is always in the message.
const REFUSAL_HINTS: Record<number, string> = {
  407: ' (proxy authentication required: credentials missing or wrong in the proxy URL)',
  403: ' (the proxy\'s policy denies this host)'
}

/** A proxied attempt's failure: a refused tunnel names the proxy and its status; anything else maps as usual. */
export function mapProxiedFailure (err: unknown, ctx: FailureContext, proxy: ProxyServer): TransportFailure {
  const status = proxyRefusalStatus(err)
  if (status === null) {
    // Through a proxy skr resolves only the proxy's name (the proxy resolves the upstream's), so a
    // name that does not exist is the proxy's: the operator's setting, not the caller's host.
    if (transportErrorCode(err) === 'ENOTFOUND') {
      const error = new UpstreamUnavailable(
        `${ctx.upstream} ${ctx.host}: the egress proxy ${proxy.origin} (${proxy.variable}) has a host name that does not resolve; fix ${proxy.variable} or list the host in NO_PROXY ${attemptsText(ctx.attempts)}`,
        { cause: err, details: { ...upstreamFacts(ctx), errorCode: 'PROXY_NOT_FOUND', proxyVariable: proxy.variable, attempts: ctx.attempts } })
      return { error, retryable: false, errorCode: 'PROXY_NOT_FOUND' }
    }
    return mapTransportError(err, ctx)
  }
  // The upstream was never reached, whatever the proxy said; only a transient proxy status is worth another attempt.
  const error = new UpstreamUnavailable(
    `${ctx.upstream} ${ctx.host}: proxy ${proxy.origin} refused the tunnel with HTTP ${status}${REFUSAL_HINTS[status] ?? ''} ${attemptsText(ctx.attempts)}`,
    { cause: err, details: { ...upstreamFacts(ctx), errorCode: 'PROXY_REFUSED', proxyStatus: status, attempts: ctx.attempts } })
  return { error, retryable: isRetryableStatus(status), errorCode: 'PROXY_REFUSED' }
}

/** The error for a call whose proxy setting (HTTPS_PROXY, ...) cannot be used; nothing was sent. */
export function unusableProxyError (upstream: UpstreamName, host: string, proxy: UnusableProxy): UpstreamUnavailable {
  return new UpstreamUnavailable(
    `${upstream} ${host}: ${proxy.variable} is set but unusable (${proxy.reason}); fix it, unset it, or list the host in NO_PROXY`,
    { details: { upstream, host, errorCode: 'PROXY_UNUSABLE', proxyVariable: proxy.variable, attempts: 0 } })
}
