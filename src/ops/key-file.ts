// The key `skr import-key --key-file` imports, from the forms people keep keys in: a private JWK
// (oct, RSA or EC, with or without the -HSM suffix), a PEM private key (PKCS#8, PKCS#1 or SEC1),
// or hex text of a 16/24/32-byte symmetric key (the reference importkey tool's -kh form). The
// result is the Azure SDK's JsonWebKey (binary members). Messages never contain key material.
import { createPrivateKey, type JsonWebKey as NodeJwk, type KeyObject } from 'node:crypto'
import type { JsonWebKey as SdkJwk } from '@azure/keyvault-keys'
import { ConfigInvalid } from '../errors.ts'

/** A key ready for KeyClient.importKey, and a description safe to print. */
export interface ImportableKey {
  jwk: SdkJwk
  /** The family, for choosing defaults and checking --kty. */
  family: 'oct' | 'RSA' | 'EC'
  /** E.g. "oct 256-bit", "RSA 3072-bit", "EC P-384". */
  description: string
}

const OCT_BYTES = [16, 24, 32]
const CURVES: Readonly<Record<string, string>> = { 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521' }

function invalid (message: string): ConfigInvalid {
  return new ConfigInvalid(`--key-file: ${message}`)
}

function b64url (value: unknown, member: string): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+={0,2}$/.test(value)) throw invalid(`JWK member ${member} is missing or not base64url`)
  return Buffer.from(value.replace(/=+$/, ''), 'base64url')
}

function octKey (k: Buffer): ImportableKey {
  if (!OCT_BYTES.includes(k.length)) throw invalid(`a symmetric key must be 16, 24 or 32 bytes, got ${k.length}`)
  // The reference imports symmetric keys as oct-HSM (tools/importkey).
  return { jwk: { kty: 'oct-HSM', k: new Uint8Array(k) }, family: 'oct', description: `oct ${k.length * 8}-bit` }
}

function fromKeyObject (key: KeyObject): ImportableKey {
  const type = key.asymmetricKeyType
  if (type !== 'rsa' && type !== 'ec') throw invalid(`a ${type ?? 'unknown'} key cannot be imported (RSA or EC only)`)
  const jwk = key.export({ format: 'jwk' }) as Record<string, unknown>
  const member = (name: string): Uint8Array => new Uint8Array(b64url(jwk[name], name))
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
    return {
      // As the reference's jwk.FromRaw: kty RSA with hsm: true in the request.
      jwk: { kty: 'RSA', n: member('n'), e: member('e'), d: member('d'), p: member('p'), q: member('q'), dp: member('dp'), dq: member('dq'), qi: member('qi') },
      family: 'RSA',
      description: `RSA ${bits}-bit`
    }
  }
  const crv = typeof jwk['crv'] === 'string' ? CURVES[jwk['crv']] : undefined
  if (crv === undefined) throw invalid('EC keys must be on P-256, P-384 or P-521')
  return { jwk: { kty: 'EC', crv, x: member('x'), y: member('y'), d: member('d') }, family: 'EC', description: `EC ${crv}` }
}

function fromJwk (doc: Record<string, unknown>): ImportableKey {
  const kty = typeof doc['kty'] === 'string' ? doc['kty'].replace(/-HSM$/, '') : ''
  if (kty === 'oct') return octKey(b64url(doc['k'], 'k'))
  if (kty !== 'RSA' && kty !== 'EC') throw invalid('JWK kty must be oct, RSA or EC (optionally -HSM)')
  if (typeof doc['d'] !== 'string') throw invalid('JWK has no private part (d): only private keys can be imported')
  const members = kty === 'RSA' ? ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'] : ['crv', 'x', 'y', 'd']
  const jwk: NodeJwk = { kty }
  for (const m of members) jwk[m] = doc[m]
  let key: KeyObject
  try {
    key = createPrivateKey({ key: jwk, format: 'jwk' })
  } catch {
    throw invalid(`the ${kty} JWK is not a valid private key`)
  }
  return fromKeyObject(key)
}

/** Parses a key file; ConfigInvalid (exit 2) when it is none of the accepted forms. */
export function parseKeyFile (content: Buffer): ImportableKey {
  const text = content.toString('utf8').trim()
  if (text.startsWith('{')) {
    let doc: Record<string, unknown>
    try {
      // Text that starts with `{` and parses is a JSON object.
      doc = JSON.parse(text) as Record<string, unknown>
    } catch {
      throw invalid('looks like JSON but does not parse')
    }
    return fromJwk(doc)
  }
  if (text.includes('-----BEGIN')) {
    if (!/-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/.test(text)) throw invalid('PEM must hold a private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)')
    let key: KeyObject
    try {
      key = createPrivateKey({ key: text, format: 'pem' })
    } catch {
      throw invalid('the PEM private key cannot be read (encrypted keys are not supported)')
    }
    return fromKeyObject(key)
  }
  if (/^(?:[0-9a-fA-F]{2})+$/.test(text)) return octKey(Buffer.from(text, 'hex'))
  throw invalid('not a JWK, a PEM private key or a hex symmetric key')
}

/** Overwrites the key's private members (best effort: the SDK has serialised its own copy by then). */
export function wipeKey (key: ImportableKey): void {
  for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'] as const) key.jwk[member]?.fill(0)
}
