// The roots a release JWS signer chain may end in, held as DER and parsed only when a chain asks
// for them. Parsing every root up front (Node's bundled store, the OS store, NODE_EXTRA_CA_CERTS:
// ~700 PEM texts on a Debian host, ~170 distinct) cost tens of milliseconds on the first release
// and kept every X509Certificate (with its OpenSSL object) for the life of the process: +7.9 MB of
// RSS measured on that host, for a chain that needs one of them. Here the roots are indexed by
// subject Name bytes, a chain's certificate is matched by its issuer Name bytes, and only those
// candidates are parsed. Names are compared byte for byte: the same name can be encoded
// differently (RFC 5280 §7.1 compares them after normalisation), so when no root has the exact
// issuer bytes every root is tried, as before, rather than refusing a chain that OpenSSL accepts.
import crypto, { X509Certificate } from 'node:crypto'
import { readCertNames } from '../certs/cert-fields.ts'

/** Trusted roots, parsed on demand. */
export interface RootStore {
  /** How many distinct roots (by DER). */
  readonly size: number
  /** True when `cert` is itself one of the roots (the same DER). */
  has (cert: X509Certificate): boolean
  /** The roots that may have issued `cert` (see the header: exact issuer bytes first, else every root). */
  candidateIssuers (cert: X509Certificate): readonly X509Certificate[]
  /** Every root, parsed (entries OpenSSL will not parse are left out). */
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

function parsed (entry: Entry): X509Certificate | null {
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
    const cert = parsed(entry)
    if (cert !== null) out.push(cert)
  }
  return out
}

/**
 * A store over DER certificates (duplicates dropped), with some perhaps already parsed
 * (`parsedAlready`, by the same DER) so that nothing is parsed twice.
 */
export function createRootStore (ders: Iterable<Uint8Array>, parsedAlready: readonly X509Certificate[] = []): RootStore {
  const byDigest = new Map<string, Entry>()
  const bySubject = new Map<string, Entry[]>()
  // Entries whose Names this module cannot read: candidates for every certificate.
  const unindexed: Entry[] = []
  const add = (der: Uint8Array, cert?: X509Certificate): void => {
    const key = digest(der)
    const known = byDigest.get(key)
    if (known !== undefined) {
      if (cert !== undefined && known.cert === undefined) known.cert = cert
      return
    }
    const entry: Entry = { der: Buffer.from(der), cert }
    byDigest.set(key, entry)
    let subject: string
    try {
      subject = hex(readCertNames(entry.der).subject)
    } catch {
      unindexed.push(entry)
      return
    }
    const list = bySubject.get(subject)
    if (list === undefined) bySubject.set(subject, [entry])
    else list.push(entry)
  }
  for (const cert of parsedAlready) add(cert.raw, cert)
  for (const der of ders) add(der)
  let everyRoot: X509Certificate[] | null = null
  const all = (): X509Certificate[] => (everyRoot ??= present(byDigest.values()))
  return {
    get size () { return byDigest.size },
    has (cert) {
      // The same DER as a certificate that did parse: it parses too.
      return byDigest.has(digest(cert.raw))
    },
    candidateIssuers (cert) {
      let issuer: string
      try {
        issuer = hex(readCertNames(cert.raw).issuer)
      } catch {
        return all()
      }
      const exact = present([...(bySubject.get(issuer) ?? []), ...unindexed])
      return exact.length > 0 ? exact : all()
    },
    all () {
      return [...all()]
    }
  }
}

// One store per array handed in, so a caller that passes the same array gets the same store
// (signer-chain-cache.ts compares roots by identity).
const storesOfArrays = new WeakMap<readonly X509Certificate[], RootStore>()

/** `roots` as a RootStore: itself when it is one, else a store over the parsed certificates. */
export function asRootStore (roots: TrustedRoots): RootStore {
  if (!Array.isArray(roots)) return roots as RootStore
  const list = roots as readonly X509Certificate[]
  let store = storesOfArrays.get(list)
  if (store === undefined) {
    store = createRootStore([], list)
    storesOfArrays.set(list, store)
  }
  return store
}
