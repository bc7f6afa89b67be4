// Normalises the MAA and AKV endpoints callers send. The reference only accepts a bare host
// and builds `https://<host>/...` itself, so users who paste the portal's URL
// (`https://x.vault.azure.net/`) get an opaque failure deep in the release. skr accepts
// the URL forms people actually paste and rejects anything that would change where the
// request goes (paths, userinfo, other schemes) with a message saying what was wrong.
//
// The result is canonical (./host-name.ts): one spelling per destination, the one undici will
// connect to. That is what SKR_ALLOWED_HOSTS is checked against (./allowed-hosts.ts), so
// `2130706433`, `127.1` and `127.0.0.1` are one address there, and `:443` (the https default) is
// dropped, so `host` and `host:443` are one destination (and one MAA issuer, `https://host`).
import { RequestInvalid } from '../errors.ts'
import { HostSyntaxError, parseHostAndPort, quoteHost } from './host-name.ts'

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//
const HTTPS_PORT = 443

function invalid (field: string, problem: string): RequestInvalid {
  const example = field.includes('akv') || field.includes('kms') ? 'myvault.vault.azure.net' : 'sharedeus.eus.attest.azure.net'
  return new RequestInvalid(`${field} must be a host name like ${example} (optionally https:// and :port), got ${problem}`)
}

/**
 * Returns `host[:port]` in canonical form for `host`, `host:port` or `https://host[:port]` with at
 * most one trailing slash. IPv6 literals must be bracketed; the port is left out when it is 443.
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
    if (name !== 'https') throw invalid(field, `the scheme ${quoteHost(`${name}://`)} (only https:// is allowed)`)
    rest = value.slice(scheme[0].length)
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1)
  if (rest.includes('@')) throw invalid(field, 'user information (user@)')
  if (rest.includes('?')) throw invalid(field, 'a query')
  if (rest.includes('#')) throw invalid(field, 'a fragment')
  if (rest.includes('/') || rest.includes('\\')) throw invalid(field, 'a path')
  try {
    const { host, port } = parseHostAndPort(rest)
    return port === null || port === HTTPS_PORT ? host.host : `${host.host}:${port}`
  } catch (err) {
    if (err instanceof HostSyntaxError) throw invalid(field, err.problem)
    throw err
  }
}
