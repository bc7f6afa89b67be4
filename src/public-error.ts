// What a client may see of a SidecarError, HTTP and gRPC alike (server/error-handler.ts and
// grpc/status-map.ts both answer with it, and neither imports the other). A caller's mistake
// (4xx) is shown by its own message; a server-side failure (5xx) by its class's fixed
// publicMessage, because its message may name internal paths or quote an upstream, followed by
// the safe facts of publicFacts (which step, which upstream and host, its status and error code).
// Pure: no I/O.
import * as errors from './errors.ts'
import type { ErrorCode, SidecarError } from './errors.ts'

// What publicFacts lets through, each checked against its expected shape: a value that does not
// fit is left out rather than cleaned up, so nothing an upstream chose (beyond a short code) and
// nothing secret-shaped can reach a client.
const STEPS = new Set(['wrapping key', 'attestation', 'identity', 'release', 'verification', 'unwrap'])
const UPSTREAMS = new Set(['maa', 'akv', 'imds', 'thim', 'kds', 'azcache', 'entra'])
// host[:port] as the HTTP client connects to it: a DNS name or IPv4 address, or a bracketed IPv6 one.
const HOST = /^(?:\[[0-9a-f:.]{2,45}\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::\d{1,5})?$/i
// Upstream error codes (ServiceUnavailable, KeyNotFound, invalid_resource, AKV10000) and our own
// transport codes (ENOTFOUND, UND_ERR_CONNECT_TIMEOUT, PROXY_REFUSED): one short identifier.
const CODE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/

// The sentence of a class whose publicMessage is null (a 4xx one, asked for its 5xx text).
const GENERIC = 'internal error'

function detailString (details: SidecarError['details'], name: string, shape: RegExp | Set<string>): string | null {
  const value = details[name]
  if (typeof value !== 'string') return null
  const ok = shape instanceof Set ? shape.has(value) : shape.test(value) && !value.startsWith('eyJ')
  return ok ? value : null
}

function detailStatus (details: SidecarError['details'], name: string): number | null {
  const value = details[name]
  return typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599 ? value : null
}

/**
 * The facts of a server-side failure a client may see, from its details: the release step, the
 * upstream and its host (and whether a proxy was in between), the upstream's HTTP status and
 * error code (and inner code), the transport error code, and a refusing proxy's status. Each is
 * checked against a fixed list or a strict shape and left out when it does not fit. Never a
 * message, a body, a token, a URL path, a file path or a proxy's address.
 */
export function publicFacts (details: SidecarError['details']): string[] {
  const facts: string[] = []
  const step = detailString(details, 'step', STEPS)
  if (step !== null) facts.push(`step: ${step}`)
  const upstream = detailString(details, 'upstream', UPSTREAMS)
  if (upstream !== null) {
    const host = detailString(details, 'host', HOST)
    facts.push(`upstream: ${upstream}${host === null ? '' : ` ${host.toLowerCase()}`}${details['viaProxy'] === true ? ' via proxy' : ''}`)
  }
  const status = detailStatus(details, 'upstreamStatus')
  if (status !== null) facts.push(`status ${status}`)
  const code = detailString(details, 'upstreamCode', CODE)
  const inner = detailString(details, 'upstreamInnerCode', CODE)
  if (code !== null) facts.push(`code ${code}${inner === null || inner === code ? '' : `, inner code ${inner}`}`)
  const errorCode = detailString(details, 'errorCode', CODE)
  if (errorCode !== null) facts.push(`error ${errorCode}`)
  const proxyStatus = detailStatus(details, 'proxyStatus')
  if (proxyStatus !== null) facts.push(`proxy status ${proxyStatus}`)
  return facts
}

type ErrorClass = new (message: string) => SidecarError

let sentences: ReadonlyMap<ErrorCode, string> | undefined

/** The fixed sentence a client sees for a 5xx with this code: its class's publicMessage. */
export function publicServerMessage (code: ErrorCode): string {
  sentences ??= new Map((Object.values(errors) as unknown[])
    .filter((value): value is ErrorClass => typeof value === 'function' && value.prototype instanceof errors.SidecarError)
    .map(Cls => { const probe = new Cls(''); return [probe.code, probe.publicMessage ?? GENERIC] as const }))
  return sentences.get(code) ?? GENERIC
}

/**
 * The client-facing text for an error, HTTP and gRPC alike: its message for caller mistakes (4xx);
 * for 5xx its class's fixed publicMessage and its publicFacts, e.g.
 * `upstream unavailable (step: release, upstream: akv myvault.vault.azure.net, status 503, code ServiceUnavailable)`.
 */
export function publicMessage (err: SidecarError): string {
  if (err.statusCode < 500) return err.message
  const facts = publicFacts(err.details)
  const sentence = err.publicMessage ?? GENERIC
  return facts.length === 0 ? sentence : `${sentence} (${facts.join(', ')})`
}
