// The roots a release JWS signer chain may end in, held as DER and parsed only when a chain asks
// for them. Parsing every root up front (Node's bundled store, the OS store, NODE_EXTRA_CA_CERTS:
// ~700 PEM texts on a Debian host, ~170 distinct) cost tens of milliseconds on the first release
// and kept every X509Certificate (with its OpenSSL object) for the life of the process, for a
// chain that needs one of them. Here the roots are indexed by subject Name bytes, and a chain's
// certificate is matched by its issuer Name bytes (namedIssuers): only those roots are parsed.
// Names are compared byte for byte, while the same name can be encoded differently (RFC 5280
// §7.1 compares them after normalisation): release-jws.ts therefore builds the path by name first
// and, when that does not give a valid path, again over every root (all()), as it always did.
import crypto, { X509Certificate } from 'node:crypto'
import { readCertNames } from '../certs/cert-fields.ts'

/** Trusted roots, parsed on demand. */
export interface RootStore {
  /** How many distinct roots (by DER). */
  readonly size: number
  /** How many of them have been parsed so far (diagnostics; tests check the laziness with it). */
  readonly parsed: number
  /** True when `cert` is itself one of the roots (the same DER). */
  has (cert: X509Certificate): boolean
  /** The roots whose subject Name has the same bytes as `cert`'s issuer Name (and any root whose Names cannot be read here). */
  namedIssuers (cert: X509Certificate): X509Certificate[]
  /** Every root, parsed, in the order given (entries OpenSSL will not parse are left out). */
  all (): X509Certificate[]
}

/** Roots as release-jws.ts takes them: a store, or parsed certificates (tests, tools). */
export type TrustedRoots = RootStore | readonly X509Certificate[]

interface Entry {
  readonly der: Buffer
  /** undefined: not parsed yet; null: OpenSSL would not parse it. */
  cert: X509Certificate | null | undefined
}

function digest (der: Uint8Array): string {
  return crypto.createHash('sha256').update(der).digest('hex')
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

function parsedCert (entry: Entry): X509Certificate | null {
  if (entry.cert === undefined) {
    try {
      entry.cert = new X509Certificate(entry.der)
    } catch {
      // An OS store can hold entries OpenSSL will not parse; they could never anchor a chain anyway.
      entry.cert = null
    }
  }
  return entry.cert
}

function present (entries: Iterable<Entry>): X509Certificate[] {
  const out: X509Certificate[] = []
  for (const entry of entries) {
    const cert = parsedCert(entry)
    if (cert !== null) out.push(cert)
  }
  return out
}

/**
 * A store over certificates in order of preference, each as DER (parsed when needed) or already
 * parsed; a certificate seen before (the same DER) is dropped, as the eager list dropped it.
 */
export function createRootStore (certs: Iterable<Uint8Array | X509Certificate>): RootStore {
  const entries: Entry[] = []
  const byDigest = new Map<string, Entry>()
  const bySubject = new Map<string, Entry[]>()
  // Entries whose Names this module cannot read: named issuers of every certificate.
  const unindexed: Entry[] = []
  for (const item of certs) {
    const cert = item instanceof X509Certificate ? item : undefined
    const der = cert === undefined ? Buffer.from(item as Uint8Array) : cert.raw
    const key = digest(der)
    if (byDigest.has(key)) continue
    const entry: Entry = { der, cert }
    entries.push(entry)
    byDigest.set(key, entry)
    let subject: string
    try {
      subject = hex(readCertNames(der).subject)
    } catch {
      unindexed.push(entry)
      continue
    }
    const list = bySubject.get(subject)
    if (list === undefined) bySubject.set(subject, [entry])
    else list.push(entry)
  }
  let everyRoot: X509Certificate[] | null = null
  return {
    get size () { return entries.length },
    get parsed () { return entries.filter((e) => e.cert !== undefined).length },
    has (cert) {
      // The same DER as a certificate that did parse: it parses too.
      return byDigest.has(digest(cert.raw))
    },
    namedIssuers (cert) {
      let issuer: string
      try {
        issuer = hex(readCertNames(cert.raw).issuer)
      } catch {
        // OpenSSL parsed it, this reader did not: only the full search can place it.
        return []
      }
      const named = bySubject.get(issuer) ?? []
      if (unindexed.length === 0) return present(named)
      const wanted = new Set([...named, ...unindexed])
      return present(entries.filter((e) => wanted.has(e)))
    },
    all () {
      everyRoot ??= present(entries)
      return [...everyRoot]
    }
  }
}

// One store per array handed in, so a caller that passes the same array gets the same store
// (signer-chain-cache.ts compares roots by identity). The store copies the array's contents when
// it is made: an array handed in is to be treated as frozen, and a changed set of roots passed as
// a new array.
const storesOfArrays = new WeakMap<readonly X509Certificate[], RootStore>()

/** `roots` as a RootStore: itself when it is one, else a store over the parsed certificates. */
export function asRootStore (roots: TrustedRoots): RootStore {
  if (!Array.isArray(roots)) return roots as RootStore
  const list = roots as readonly X509Certificate[]
  let store = storesOfArrays.get(list)
  if (store === undefined) {
    store = createRootStore(list)
    storesOfArrays.set(list, store)
  }
  return store
}
