// Does a certificate name the host we called? RFC 6125 §6.4 via OpenSSL's X509_check_host /
// X509_check_ip (node:crypto X509Certificate.checkHost/checkIP), with the flags pinned so only the
// RFC 6125 §6.4.3 wildcard form matches: "*" as the whole left-most label, standing for exactly one
// label, never in a pattern of fewer than three labels (OpenSSL refuses "*.com"). The subject CN is
// consulted only when the certificate has no dNSName SAN (RFC 6125 §6.4.4); IP hosts match only
// iPAddress SANs.
import { isIP } from 'node:net'
import type { X509Certificate } from 'node:crypto'

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/

function dnsName (host: string): string | null {
  let name = host.toLowerCase()
  if (name.endsWith('.')) name = name.slice(0, -1)
  if (name === '' || name.length > 253) return null
  // A host is a name, never a pattern: '*' (or anything outside LDH and '_') cannot be matched.
  return name.split('.').every((label) => LABEL.test(label)) ? name : null
}

/** True when `cert` was issued for `host` (a DNS name, an IPv4 literal, or an IPv6 literal with or without brackets). */
export function hostMatchesCert (host: string, cert: X509Certificate): boolean {
  if (typeof host !== 'string') return false
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  try {
    if (isIP(bare) !== 0) return cert.checkIP(bare) !== undefined
    const name = dnsName(host)
    if (name === null) return false
    return cert.checkHost(name, {
      subject: 'default',
      wildcards: true,
      partialWildcards: false,
      multiLabelWildcards: false,
      singleLabelSubdomains: false
    }) !== undefined
  } catch {
    // checkHost/checkIP throw only on inputs we already screen; a throw is never a match.
    return false
  }
}
