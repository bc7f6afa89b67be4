// Normalises the MAA and AKV endpoints callers send. The reference only accepts a bare host
// and builds `https://<host>/...` itself, so users who paste the portal's URL
// (`https://x.vault.azure.net/`) get an opaque failure deep in the release. skr accepts
// the URL forms people actually paste and rejects anything that would change where the
// request goes (paths, userinfo, other schemes) with a message saying what was wrong.
import { isIPv6 } from 'node:net'
import { RequestInvalid } from '../errors.ts'

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?'
const HOST_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'i')
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//
const MAX_ECHO = 100

function quote (text: string): string {
  return JSON.stringify(text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text)
}

function invalid (field: string, problem: string): RequestInvalid {
  const example = field.includes('akv') ? 'myvault.vault.azure.net' : 'sharedeus.eus.attest.azure.net'
  return new RequestInvalid(`${field} must be a host name like ${example} (optionally https:// and :port), got ${problem}`)
}

function parsePort (raw: string, field: string): string {
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN
  if (!(n >= 1 && n <= 65535)) throw invalid(field, `a bad port ${quote(raw)}`)
  return String(n)
}

/** Splits `host[:port]` or `[v6][:port]` into a validated, lowercased host and an optional port. */
function splitAuthority (authority: string, field: string): { host: string; port: string | null } {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']')
    const inner = close < 0 ? '' : authority.slice(1, close)
    if (!isIPv6(inner)) throw invalid(field, `an invalid IPv6 literal ${quote(authority)}`)
    const after = authority.slice(close + 1)
    if (after === '') return { host: `[${inner.toLowerCase()}]`, port: null }
    if (!after.startsWith(':')) throw invalid(field, `unexpected text after the IPv6 literal ${quote(after)}`)
    return { host: `[${inner.toLowerCase()}]`, port: parsePort(after.slice(1), field) }
  }
  const parts = authority.split(':')
  if (parts.length > 2) throw invalid(field, 'an IPv6 address without [brackets] or more than one port')
  const host = parts[0] ?? ''
  if (host === '') throw invalid(field, 'an empty host')
  if (host.length > 253 || !HOST_NAME.test(host)) throw invalid(field, `an invalid host name ${quote(host)}`)
  const port = parts[1]
  return { host: host.toLowerCase(), port: port === undefined ? null : parsePort(port, field) }
}

/**
 * Returns `host[:port]` (host lowercased) for `host`, `host:port` or `https://host[:port]`
 * with at most one trailing slash. IPv6 literals must be bracketed.
 * @param value what the caller sent
 * @param field the field's name for the error message (`body.maa_endpoint`)
 * @throws RequestInvalid naming the field and the problem (input echoed at most 100 chars)
 */
export function normaliseEndpoint (value: string, field: string): string {
  if (value === '') throw invalid(field, 'an empty string')
  if (/\s/.test(value)) throw invalid(field, 'whitespace')
  let rest = value
  const scheme = SCHEME.exec(value)
  if (scheme !== null) {
    const name = (scheme[1] ?? '').toLowerCase()
    if (name !== 'https') throw invalid(field, `the scheme ${quote(`${name}://`)} (only https:// is allowed)`)
    rest = value.slice(scheme[0].length)
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1)
  if (rest.includes('@')) throw invalid(field, 'user information (user@)')
  if (rest.includes('?')) throw invalid(field, 'a query')
  if (rest.includes('#')) throw invalid(field, 'a fragment')
  if (rest.includes('/') || rest.includes('\\')) throw invalid(field, 'a path')
  const { host, port } = splitAuthority(rest, field)
  return port === null ? host : `${host}:${port}`
}
