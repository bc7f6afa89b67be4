// The canonical form of a host, so that one host has exactly one spelling wherever skr compares
// hosts: caller-named endpoints against SKR_ALLOWED_HOSTS, and the Host header of an API request
// against the loopback names. The canonical form is what the WHATWG URL host parser produces (the
// parser undici uses when it connects), so what skr checks is what it would connect to:
// - names are lower case, IDNs are punycode (UTS #46), one trailing dot is dropped;
// - an IPv4 address in any spelling the parser accepts (`2130706433`, `0x7f000001`, `127.1`,
//   `0177.0.0.1`) becomes dotted decimal, and an IPv6 address its compressed bracketed form.
// Names must then be LDH labels (RFC 1123 §2.1): an underscore, a percent sign or an empty label
// is refused rather than passed to a resolver. IPv6 zone ids (`fe80::1%eth0`) are refused: a zone
// names an interface of this machine, never a remote service.
// Reference: https://url.spec.whatwg.org/#host-parsing
import { isIPv4, isIPv6 } from 'node:net'

/** A canonical host: `name`, `a.b.c.d` or `[v6]`, and which of the three it is. */
export interface CanonicalHost {
  readonly host: string
  /** 0 for a DNS name, 4 or 6 for an IP literal. */
  readonly ip: 0 | 4 | 6
}

/** Why a host text has no canonical form. */
export class HostSyntaxError extends Error {
  /** A phrase that completes "got ...", quoting the offending text (cut at 100 characters). */
  readonly problem: string
  /** The same phrase without the offending text (for configuration errors, which never echo values). */
  readonly kind: string
  constructor (kind: string, offending?: string) {
    const problem = offending === undefined ? kind : `${kind} ${quoteHost(offending)}`
    super(problem)
    this.name = 'HostSyntaxError'
    this.problem = problem
    this.kind = kind
  }
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?'
const HOST_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`)
// Characters that end or change a URL authority, or that no host may hold: refused before parsing
// so the parser can never read them as something else.
const FORBIDDEN = /[\s/?#@\\:%[\]<>^|"'`{}\p{Cc}]/u
const MAX_NAME = 253
const MAX_ECHO = 100

/** `text` as a JSON string, cut at 100 characters: safe to put in a message. */
export function quoteHost (text: string): string {
  return JSON.stringify(text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text)
}

function parsedHostname (authority: string): string | null {
  try {
    return new URL(`https://${authority}/`).hostname
  } catch {
    return null
  }
}

/**
 * The canonical form of a host without a port: a name, an IPv4 literal, or a bracketed IPv6
 * literal (`[::1]`).
 * @throws HostSyntaxError saying what is wrong
 */
export function canonicalHost (text: string): CanonicalHost {
  if (text === '') throw new HostSyntaxError('an empty host')
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) throw new HostSyntaxError('an invalid IPv6 literal', text)
    const inner = text.slice(1, -1)
    if (inner.includes('%')) throw new HostSyntaxError('an IPv6 zone id (%…): a zone names a local interface, not a service')
    const host = isIPv6(inner) ? parsedHostname(`[${inner}]`) : null
    if (host === null) throw new HostSyntaxError('an invalid IPv6 literal', text)
    return { host, ip: 6 }
  }
  if (text.length > MAX_NAME + 1 || FORBIDDEN.test(text)) throw new HostSyntaxError('an invalid host name', text)
  let host = parsedHostname(text)
  if (host === null) throw new HostSyntaxError('an invalid host name', text)
  if (host.endsWith('.')) host = host.slice(0, -1)
  if (isIPv4(host)) return { host, ip: 4 }
  if (host.length > MAX_NAME || !HOST_NAME.test(host)) throw new HostSyntaxError('an invalid host name', text)
  return { host, ip: 0 }
}

const MAPPED_V4 = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/

/**
 * The address a canonical host denotes, for comparisons: an IPv4-mapped IPv6 literal
 * (`[::ffff:7f00:1]`) is its IPv4 address, since a connection to it reaches that address.
 */
export function addressOf (canonical: string): string {
  const mapped = MAPPED_V4.exec(canonical)
  if (mapped === null) return canonical
  const hi = parseInt(mapped[1] ?? '0', 16)
  const lo = parseInt(mapped[2] ?? '0', 16)
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
}

/** True for a canonical host that only reaches this machine: `localhost`, 127.0.0.0/8, ::1 (and ::ffff:127.x). */
export function isLoopbackCanonical (canonical: string): boolean {
  const address = addressOf(canonical)
  return address === 'localhost' || address === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address)
}

/** A host and the port it names; `port` is null when the text had none. */
export interface HostAndPort {
  readonly host: CanonicalHost
  readonly port: number | null
}

function parsePort (raw: string): number {
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN
  if (!(n >= 1 && n <= 65535)) throw new HostSyntaxError('a bad port', raw)
  return n
}

/**
 * Splits and canonicalises `host`, `host:port`, `[v6]` or `[v6]:port` (an authority without
 * userinfo). IPv6 literals need brackets.
 * @throws HostSyntaxError saying what is wrong
 */
export function parseHostAndPort (authority: string): HostAndPort {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']')
    if (close < 0) throw new HostSyntaxError('an invalid IPv6 literal', authority)
    const host = canonicalHost(authority.slice(0, close + 1))
    const after = authority.slice(close + 1)
    if (after === '') return { host, port: null }
    if (!after.startsWith(':')) throw new HostSyntaxError('unexpected text after the IPv6 literal', after)
    return { host, port: parsePort(after.slice(1)) }
  }
  const parts = authority.split(':')
  if (parts.length > 2) throw new HostSyntaxError('an IPv6 address without [brackets] or more than one port')
  const host = canonicalHost(parts[0] ?? '')
  const port = parts[1]
  return { host, port: port === undefined ? null : parsePort(port) }
}
