// The roots a release JWS signer chain may end in: the same set Node's TLS trusts (its bundled
// Mozilla store, the OS store, NODE_EXTRA_CA_CERTS) plus roots from configuration. The reference
// sidecar uses Go's x509.SystemCertPool() (docs/protocols.md#verifying-the-release-jws); taking the union keeps us working
// on distroless images whose OS store is empty.
import crypto, { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import tls from 'node:tls'
import { ConfigInvalid } from '../errors.ts'
import { createRootStore, type RootStore } from './root-store.ts'

/** Where to look for trusted roots; every member is optional. */
export interface TrustStoreOptions {
  /** Extra PEM bundles (each may hold several certificates), e.g. from configuration. */
  extraCaPem?: string[]
  /** Include the operating system's store (default true). */
  includeSystem?: boolean
  /** When given, its NODE_EXTRA_CA_CERTS file is read; otherwise Node's own copy of that file is used. */
  env?: Record<string, string | undefined>
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

const memo = new Map<string, RootStore>()

type CaStore = 'system' | 'bundled' | 'extra'

function nodeStore (which: CaStore): string[] | undefined {
  // tls.getCACertificates landed in Node 22.15 / 23.10; engines allow older 22.x.
  const get = (tls as { getCACertificates?: (type: CaStore) => string[] }).getCACertificates
  return typeof get === 'function' ? get(which) : undefined
}

// Node's stores overlap (the OS store usually repeats most bundled roots, sometimes several times
// over): a PEM text already seen is skipped. Nothing is parsed here: the store parses a root when a
// chain asks for it (./root-store.ts), and an entry OpenSSL will not parse is skipped then.
function derOfPems (pems: Iterable<string>, into: Array<Uint8Array | X509Certificate>, seen: Set<string>): void {
  for (const pem of pems) {
    const text = pem.trim()
    if (seen.has(text)) continue
    seen.add(text)
    const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(text)?.[1]
    if (body !== undefined) into.push(Buffer.from(body.replace(/\s+/g, ''), 'base64'))
  }
}

function parseStrict (bundle: string, source: string, into: Array<Uint8Array | X509Certificate>): void {
  const blocks = bundle.match(PEM_BLOCK) ?? []
  if (blocks.length === 0) throw new ConfigInvalid(`${source} holds no PEM certificate`, { details: { source } })
  blocks.forEach((pem, index) => {
    let cert: X509Certificate
    try {
      cert = new X509Certificate(pem)
    } catch (err) {
      throw new ConfigInvalid(`${source} certificate ${index} is not a valid X.509 certificate`, { details: { source, index }, cause: err })
    }
    into.push(cert)
  })
}

function extraFile (env: Record<string, string | undefined>): string | undefined {
  const path = env['NODE_EXTRA_CA_CERTS']
  if (path === undefined || path === '') return undefined
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigInvalid('NODE_EXTRA_CA_CERTS names a file that cannot be read', { details: { key: 'NODE_EXTRA_CA_CERTS' }, cause: err })
  }
}

function memoKey (options: TrustStoreOptions, extra: string | undefined): string {
  const h = crypto.createHash('sha256')
  for (const pem of options.extraCaPem ?? []) h.update(`${pem.length}:`).update(pem)
  h.update(`|${extra?.length ?? -1}:`).update(extra ?? '')
  return `${options.includeSystem !== false ? 's' : '-'}${options.env === undefined ? 'n' : 'e'}:${h.digest('hex')}`
}

/**
 * Checks configured PEM bundles the way loadTrustedRoots does (each must hold at least one valid
 * certificate), without reading Node's stores: a composition root calls it at start-up, so a bad
 * configured CA fails there, and leaves the parse of the ~150 system roots to the first use.
 * @throws ConfigInvalid naming `extraCaPem[i]` (never the content)
 */
export function checkExtraCaPems (extraCaPem: readonly string[]): void {
  if (!(Array.isArray(extraCaPem) && extraCaPem.every((p) => typeof p === 'string'))) {
    throw new TypeError('checkExtraCaPems: extraCaPem must be an array of PEM strings')
  }
  const scratch: X509Certificate[] = []
  extraCaPem.forEach((pem, index) => { parseStrict(pem, `extraCaPem[${index}]`, scratch) })
}

/**
 * The trusted roots as a store that parses them on demand (./root-store.ts), deduplicated by DER:
 * Node's bundled store, the OS store (unless `includeSystem` is false; where Node can read it),
 * NODE_EXTRA_CA_CERTS and `extraCaPem`. Memoised per distinct input (the same store for the same
 * input). Configured sources are parsed at once: one that is unreadable or holds no valid
 * certificate is ConfigInvalid (naming the source, never its content).
 */
export function loadRootStore (options: TrustStoreOptions = {}): RootStore {
  if (options.extraCaPem !== undefined && !(Array.isArray(options.extraCaPem) && options.extraCaPem.every((p) => typeof p === 'string'))) {
    throw new TypeError('loadRootStore: extraCaPem must be an array of PEM strings')
  }
  const extra = options.env === undefined ? undefined : extraFile(options.env)
  const key = memoKey(options, extra)
  const hit = memo.get(key)
  if (hit !== undefined) return hit

  // In the eager list's order (Node's bundled store, the OS store, NODE_EXTRA_CA_CERTS, the
  // configured PEMs): the first copy of a root is the one kept, and the full search tries them in
  // this order.
  const items: Array<Uint8Array | X509Certificate> = []
  const seen = new Set<string>()
  derOfPems(nodeStore('bundled') ?? tls.rootCertificates, items, seen)
  if (options.includeSystem !== false) derOfPems(nodeStore('system') ?? [], items, seen)
  if (options.env === undefined) {
    // Node read NODE_EXTRA_CA_CERTS once at start-up; an older Node without the API gives none.
    derOfPems(nodeStore('extra') ?? [], items, seen)
  } else if (extra !== undefined) {
    parseStrict(extra, 'NODE_EXTRA_CA_CERTS', items)
  }
  options.extraCaPem?.forEach((pem, index) => { parseStrict(pem, `extraCaPem[${index}]`, items) })
  const store = createRootStore(items)
  memo.set(key, store)
  return store
}

/** Every trusted root of loadRootStore(options), parsed (a new array each call). */
export function loadTrustedRoots (options: TrustStoreOptions = {}): X509Certificate[] {
  return loadRootStore(options).all()
}
