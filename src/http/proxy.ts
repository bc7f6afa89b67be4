// Egress proxy selection from HTTP_PROXY / HTTPS_PROXY / NO_PROXY, with the semantics of Go's
// golang.org/x/net/http/httpproxy (what the reference's net/http default transport applies): the
// upper-case name wins over the lower-case one, a value without a scheme means http://, NO_PROXY
// takes hosts, domain suffixes, host:port, IPs, CIDRs and `*`, and loopback never goes through a
// proxy. Parsing and matching only, pure apart from proxyFromEnvironment's one read of process.env;
// the undici ProxyAgent lives in ./upstream.ts. The sidecar parses these variables once, in
// loadConfig (src/config/config.ts: config.proxy), from the same environment as its own settings, and
// hands the result to every Upstream it builds; proxyFromEnvironment is the default only for code
// that has no Config (the CLI's one-shot tools, the emulators).
//
// One addition to Go's rules: link-local addresses (169.254.0.0/16, fe80::/10) always go direct.
// The reference sends its IMDS calls (managed-identity tokens, THIM collateral at 169.254.169.254)
// through the proxy unless NO_PROXY lists the address. A link-local address is only meaningful on
// this VM's own link, so a proxy elsewhere either cannot reach it or reaches its own host's IMDS
// and hands back that host's identity and collateral. Token requests follow the same rules: the
// identity SDK's HTTP goes through an Upstream too (src/identity/sdk-http-client.ts).
import { BlockList, isIP } from 'node:net'
import { domainToASCII } from 'node:url'

/** The environment variables a proxy can come from (upper case is looked at first, as in Go). */
export type ProxyVariable = 'HTTPS_PROXY' | 'https_proxy' | 'HTTP_PROXY' | 'http_proxy'

/** Every variable parseProxyEnv reads: standard conventions, not skr settings (config/settings.ts does not declare them). */
export const PROXY_ENV_VARIABLES: readonly string[] = Object.freeze(['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'])

/** A usable proxy. Printing it (String, JSON, util.inspect) shows `origin` only, never credentials. */
export class ProxyServer {
  readonly kind = 'proxy'
  /** Which variable named it. */
  readonly variable: ProxyVariable
  /** `http:` (CONNECT over plain TCP) or `https:` (CONNECT over TLS to the proxy). */
  readonly protocol: 'http:' | 'https:'
  /** scheme://host[:port] without userinfo or path: the only form skr prints or hands to undici. */
  readonly origin: string
  readonly #authorization: string | undefined

  constructor (variable: ProxyVariable, url: URL, authorization: string | undefined) {
    this.variable = variable
    this.protocol = url.protocol === 'https:' ? 'https:' : 'http:'
    this.origin = url.origin
    this.#authorization = authorization
    Object.freeze(this)
  }

  /** The Proxy-Authorization value (`Basic …`) for userinfo in the URL, else undefined. A secret. */
  authorization (): string | undefined {
    return this.#authorization
  }

  toString (): string {
    return this.origin
  }

  toJSON (): string {
    return this.origin
  }
}

/** A proxy variable that is set but cannot be used; `reason` never repeats the value (it may hold a password). */
export interface UnusableProxy {
  readonly kind: 'unusable'
  readonly variable: ProxyVariable
  readonly reason: string
}

type NoProxyEntry =
  | { readonly kind: 'all' }
  | { readonly kind: 'ip', readonly list: BlockList, readonly port: string }
  | { readonly kind: 'domain', readonly suffix: string, readonly exact: boolean, readonly port: string }

/** Parsed proxy settings; build with parseProxyEnv. */
export interface ProxySettings {
  readonly http: ProxyServer | UnusableProxy | null
  readonly https: ProxyServer | UnusableProxy | null
  readonly noProxy: readonly NoProxyEntry[]
}

/** What a request should do: go direct, go through `proxy`, or fail because its proxy variable is unusable. */
export type ProxyRoute = ProxyServer | UnusableProxy | null

/** No proxy at all: what tests and tools that must never proxy pass as `proxy`. */
export const NO_PROXY_SETTINGS: ProxySettings = Object.freeze({ http: null, https: null, noProxy: Object.freeze([]) })

// Loopback is Go's rule; link-local is ours (see the header).
const ALWAYS_DIRECT = new BlockList()
ALWAYS_DIRECT.addSubnet('127.0.0.0', 8, 'ipv4')
ALWAYS_DIRECT.addAddress('::1', 'ipv6')
ALWAYS_DIRECT.addSubnet('169.254.0.0', 16, 'ipv4')
ALWAYS_DIRECT.addSubnet('fe80::', 10, 'ipv6')
const LINK_LOCAL = new BlockList()
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4')
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6')

/** True for a link-local IP literal (169.254.0.0/16, fe80::/10; brackets allowed): IMDS's addresses. */
export function isLinkLocal (host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1')
  const family = isIP(bare)
  return family !== 0 && LINK_LOCAL.check(bare, family === 6 ? 'ipv6' : 'ipv4')
}

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' }

type Env = Readonly<Record<string, string | undefined>>

function firstSet (env: Env, names: readonly [ProxyVariable, ProxyVariable]): [ProxyVariable, string] | null {
  for (const name of names) {
    const value = env[name]
    if (value !== undefined && value !== '') return [name, value]
  }
  return null
}

function parseUrl (text: string): URL | null {
  try {
    return new URL(text)
  } catch {
    return null
  }
}

function decode (part: string): string | null {
  try {
    return decodeURIComponent(part)
  } catch {
    return null
  }
}

/** Parses one proxy value as Go does: a full URL, or `host[:port]` meaning http://host[:port]. */
function parseProxy (variable: ProxyVariable, value: string): ProxyServer | UnusableProxy {
  const unusable = (reason: string): UnusableProxy => Object.freeze({ kind: 'unusable', variable, reason })
  let url = parseUrl(value)
  // `proxy:3128` parses as scheme "proxy:" with no host, `10.0.0.1:3128` not at all. A value that
  // names a scheme is not retried: "http://[bad" would otherwise become the host "http".
  if ((url === null || url.host === '') && !value.includes('://')) url = parseUrl(`http://${value}`)
  if (url === null || url.host === '') return unusable('not a URL or host[:port]')
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return unusable(`scheme ${url.protocol.slice(0, -1).slice(0, 16)} is not supported; want http or https`)
  }
  if (url.username === '' && url.password === '') return new ProxyServer(variable, url, undefined)
  const user = decode(url.username)
  const pass = decode(url.password)
  if (user === null || pass === null) return unusable('its user name or password is not valid percent-encoding')
  return new ProxyServer(variable, url, `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`)
}

// Go's net.SplitHostPort: "host:port" or "[v6]:port"; a bare IPv6 address (several colons) has no port.
function splitHostPort (entry: string): [string, string] | null {
  if (entry.startsWith('[')) {
    const end = entry.indexOf(']')
    if (end < 0 || entry[end + 1] !== ':' || entry.includes(':', end + 2)) return null
    return [entry.slice(1, end), entry.slice(end + 2)]
  }
  const colon = entry.lastIndexOf(':')
  if (colon < 0 || entry.lastIndexOf(':', colon - 1) >= 0) return null
  return [entry.slice(0, colon), entry.slice(colon + 1)]
}

function parseCidr (entry: string): BlockList | null {
  const slash = entry.indexOf('/')
  if (slash < 0) return null
  const address = entry.slice(0, slash)
  const bits = entry.slice(slash + 1)
  const family = isIP(address)
  if (family === 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) return null
  const list = new BlockList()
  list.addSubnet(address, Number(bits), family === 4 ? 'ipv4' : 'ipv6')
  return list
}

/** Parses NO_PROXY; malformed entries are skipped, as Go does ("a best effort is made"). */
function parseNoProxy (value: string): readonly NoProxyEntry[] {
  const entries: NoProxyEntry[] = []
  for (const raw of value.split(',')) {
    const entry = raw.trim().toLowerCase()
    if (entry === '') continue
    if (entry === '*') return Object.freeze([Object.freeze({ kind: 'all' })])
    const cidr = parseCidr(entry)
    if (cidr !== null) {
      entries.push(Object.freeze({ kind: 'ip', list: cidr, port: '' }))
      continue
    }
    const [host, port] = splitHostPort(entry) ?? [entry, '']
    if (host === '') continue
    const family = isIP(host)
    if (family !== 0) {
      const list = new BlockList()
      list.addAddress(host, family === 4 ? 'ipv4' : 'ipv6')
      entries.push(Object.freeze({ kind: 'ip', list, port }))
      continue
    }
    // "*.example.com" is ".example.com": subdomains only; "example.com" also matches itself.
    const name = host.startsWith('*.') ? host.slice(1) : host
    const exact = !name.startsWith('.')
    const bare = exact ? name : name.slice(1)
    // Request hosts arrive punycoded (WHATWG URL), so Unicode entries are compared the same way.
    const ascii = /^[\u0020-\u007e]*$/.test(bare) ? bare : (domainToASCII(bare) || bare)
    entries.push(Object.freeze({ kind: 'domain', suffix: `.${ascii}`, exact, port }))
  }
  return Object.freeze(entries)
}

/** Reads HTTPS_PROXY/https_proxy, HTTP_PROXY/http_proxy and NO_PROXY/no_proxy from `env` (pure). */
export function parseProxyEnv (env: Env): ProxySettings {
  const https = firstSet(env, ['HTTPS_PROXY', 'https_proxy'])
  const http = firstSet(env, ['HTTP_PROXY', 'http_proxy'])
  const noProxy = env.NO_PROXY !== undefined && env.NO_PROXY !== '' ? env.NO_PROXY : (env.no_proxy ?? '')
  return Object.freeze({
    https: https === null ? null : parseProxy(...https),
    http: http === null ? null : parseProxy(...http),
    noProxy: parseNoProxy(noProxy)
  })
}

function bypassed (settings: ProxySettings, url: URL): boolean {
  // WHATWG URLs are already lower case, punycoded and canonical (0x7f.1 is 127.0.0.1).
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const family = isIP(hostname)
  const type = family === 6 ? 'ipv6' : 'ipv4'
  if (hostname === 'localhost' || (family !== 0 && ALWAYS_DIRECT.check(hostname, type))) return true
  const port = url.port !== '' ? url.port : (DEFAULT_PORT[url.protocol] ?? '')
  for (const entry of settings.noProxy) {
    switch (entry.kind) {
      case 'all':
        return true
      case 'ip':
        if (family !== 0 && entry.list.check(hostname, type) && (entry.port === '' || entry.port === port)) return true
        break
      case 'domain':
        // A name entry never matches an IP literal (Go's rule).
        if (family === 0 && (hostname.endsWith(entry.suffix) || (entry.exact && hostname === entry.suffix.slice(1))) &&
          (entry.port === '' || entry.port === port)) return true
        break
    }
  }
  return false
}

/** The route for `url`: its scheme's proxy unless the host is loopback, link-local or matched by NO_PROXY. */
export function proxyFor (settings: ProxySettings, url: URL): ProxyRoute {
  const proxy = url.protocol === 'https:' ? settings.https : url.protocol === 'http:' ? settings.http : null
  if (proxy === null || bypassed(settings, url)) return null
  return proxy
}

let fromEnvironment: ProxySettings | undefined

/**
 * The process's proxy settings, read from process.env once on first use (Go's ProxyFromEnvironment
 * caches the same way): the Upstream default for callers without a Config (CLI one-shots, the
 * emulators). The sidecar uses config.proxy instead, parsed by loadConfig from the environment it
 * was given; they are standard variables rather than skr settings, so settings.ts does not list them.
 */
export function proxyFromEnvironment (): ProxySettings {
  fromEnvironment ??= parseProxyEnv(process.env)
  return fromEnvironment
}

// undici 7 reports a refused CONNECT only in message text (no status field or dedicated code); the
// proxy tests pin both texts, so an undici upgrade that changes them fails loudly there.
const TUNNEL_REFUSED = /^Proxy response \((\d{3})\) !== 200 when HTTP Tunneling$/

/** The proxy's HTTP status when `err` is undici refusing a tunnel (or a forwarded request with 407), else null. */
export function proxyRefusalStatus (err: unknown): number | null {
  if (typeof err !== 'object' || err === null) return null
  const { code, message } = err as { code?: unknown, message?: unknown }
  if (typeof message !== 'string') return null
  if (code === 'UND_ERR_ABORTED') {
    const status = TUNNEL_REFUSED.exec(message)?.[1]
    return status === undefined ? null : Number(status)
  }
  if (code === 'UND_ERR_INVALID_ARG' && message === 'Proxy Authentication Required (407)') return 407
  return null
}
