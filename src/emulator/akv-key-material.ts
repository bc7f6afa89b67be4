// The AKV emulator's key material: the key types and sizes a vault accepts, generating keys,
// importing private JWKs and PEM, and the forms a key is shown and released in (its public JWK
// members, the plaintext a release wraps).
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { RequestInvalid } from '../errors.ts'
import type { EmulatedKey } from './akv-key-types.ts'

const OCT_BITS = [128, 192, 256]
const RSA_BITS = [2048, 3072, 4096]
// AKV curve names → node:crypto curve names.
const CURVES: Readonly<Record<string, string>> = Object.freeze({ 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1', 'P-256K': 'secp256k1' })
const JOSE_CRV: Readonly<Record<string, string>> = Object.freeze({ 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521', 'P-256K': 'secp256k1' })

function bad (message: string): RequestInvalid {
  return new RequestInvalid(message)
}

/** The key family of a kty (with or without -HSM); RequestInvalid for any other kty. */
export function family (kty: string): 'oct' | 'RSA' | 'EC' {
  const base = kty.replace(/-HSM$/, '')
  if (base === 'oct' || base === 'RSA' || base === 'EC') return base
  throw bad('kty must be one of oct, oct-HSM, RSA, RSA-HSM, EC, EC-HSM')
}

function b64urlMember (jwk: Record<string, unknown>, name: string): string {
  const value = jwk[name]
  if (typeof value !== 'string' || value === '' || !/^[A-Za-z0-9_-]+={0,2}$/.test(value)) throw bad(`key.${name} missing or not base64url`)
  return value.replace(/=+$/, '')
}

/** The material of a JWK import (oct k, RSA or EC private members); RequestInvalid when malformed. BYOK (key_hsm) is refused. */
export function importMaterial (jwk: Record<string, unknown>, base: 'oct' | 'RSA' | 'EC'): { material: KeyObject | Buffer, crv?: string } {
  if (jwk['key_hsm'] !== undefined) throw bad('key_hsm (BYOK) import is not supported by the emulator')
  if (base === 'oct') {
    const k = Buffer.from(b64urlMember(jwk, 'k'), 'base64url')
    if (!OCT_BITS.includes(k.length * 8)) throw bad('key.k must be 16, 24 or 32 bytes')
    return { material: k }
  }
  if (base === 'RSA') {
    const parts = Object.fromEntries(['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'].map((m) => [m, b64urlMember(jwk, m)]))
    return { material: privateKeyFromJwk({ kty: 'RSA', ...parts }) }
  }
  const crv = jwk['crv']
  if (typeof crv !== 'string' || JOSE_CRV[crv] === undefined) throw bad('key.crv must be P-256, P-384, P-521 or P-256K')
  const parts = Object.fromEntries(['x', 'y', 'd'].map((m) => [m, b64urlMember(jwk, m)]))
  return { material: privateKeyFromJwk({ kty: 'EC', crv: JOSE_CRV[crv], ...parts }), crv }
}

function privateKeyFromJwk (jwk: crypto.JsonWebKey): KeyObject {
  try {
    return crypto.createPrivateKey({ key: jwk, format: 'jwk' })
  } catch {
    throw bad('key is not a valid private JWK')
  }
}

/** What to generate: the oct length, RSA modulus or EC curve. */
export type Spec = { type: 'oct', bytes: number } | { type: 'rsa', modulusLength: number } | { type: 'ec', namedCurve: string, crv: string }

/** The generation spec for a create request (or a key-file entry without material); RequestInvalid when unsupported. */
export function specOf (base: 'oct' | 'RSA' | 'EC', size: unknown, crv: unknown): Spec {
  if (size !== undefined && !Number.isInteger(size)) throw bad('key_size must be an integer')
  if (base === 'oct') {
    const bits = (size as number | undefined) ?? 256
    if (!OCT_BITS.includes(bits)) throw bad('key_size for oct must be 128, 192 or 256')
    return { type: 'oct', bytes: bits / 8 }
  }
  if (base === 'RSA') {
    const bits = (size as number | undefined) ?? 2048
    if (!RSA_BITS.includes(bits)) throw bad('key_size for RSA must be 2048, 3072 or 4096')
    return { type: 'rsa', modulusLength: bits }
  }
  const name = crv ?? 'P-256'
  const namedCurve = typeof name === 'string' ? CURVES[name] : undefined
  if (namedCurve === undefined) throw bad('crv must be P-256, P-384, P-521 or P-256K')
  return { type: 'ec', namedCurve, crv: name as string }
}

/** Generates fresh material for a spec. Asynchronous so that minting an RSA-4096 key does not stall the emulator's other requests. */
export async function generate (spec: Spec): Promise<{ material: KeyObject | Buffer, crv?: string }> {
  if (spec.type === 'oct') return { material: crypto.randomBytes(spec.bytes) }
  const priv = await new Promise<KeyObject>((resolve, reject) => {
    const done = (err: Error | null, _pub: KeyObject, key: KeyObject): void => { if (err === null) resolve(key); else reject(err) }
    if (spec.type === 'rsa') crypto.generateKeyPair('rsa', { modulusLength: spec.modulusLength }, done)
    else crypto.generateKeyPair('ec', { namedCurve: spec.namedCurve }, done)
  })
  return spec.type === 'ec' ? { material: priv, crv: spec.crv } : { material: priv }
}

/** generate, synchronously: for key-file entries completed on load. */
export function generateSync (spec: Spec): { material: KeyObject | Buffer, crv?: string } {
  if (spec.type === 'oct') return { material: crypto.randomBytes(spec.bytes) }
  if (spec.type === 'rsa') return { material: crypto.generateKeyPairSync('rsa', { modulusLength: spec.modulusLength }).privateKey }
  return { material: crypto.generateKeyPairSync('ec', { namedCurve: spec.namedCurve }).privateKey, crv: spec.crv }
}

/** The key's public JWK members as a vault returns them: {n, e} (RSA), {crv, x, y} (EC), none (oct). */
export function publicMembers (key: EmulatedKey): Record<string, string> {
  if (Buffer.isBuffer(key.material)) return {}
  const jwk = crypto.createPublicKey(key.material).export({ format: 'jwk' })
  if (family(key.kty) === 'RSA') return { n: jwk.n ?? '', e: jwk.e ?? '' }
  return { crv: key.crv ?? jwk.crv ?? '', x: jwk.x ?? '', y: jwk.y ?? '' }
}

/** The bytes a release wraps (docs/protocols.md#released-key-wrapping): raw for oct, PKCS#8 DER for RSA and EC. The caller zeroes them. */
export function releasePlaintext (key: EmulatedKey): Buffer {
  if (Buffer.isBuffer(key.material)) return Buffer.from(key.material)
  return key.material.export({ format: 'der', type: 'pkcs8' })
}

/** An RSA or EC private key from PKCS#8 PEM, checked against the entry's kty (EC: a supported curve). */
export function asymmetricFromPem (pem: string, base: 'RSA' | 'EC'): { material: KeyObject, crv?: string } {
  let key: KeyObject
  try {
    key = crypto.createPrivateKey(pem)
  } catch {
    throw bad('material is not a PKCS#8 PEM private key')
  }
  if (key.asymmetricKeyType !== base.toLowerCase()) throw bad('material does not match kty')
  if (base === 'RSA') return { material: key }
  const curve = key.asymmetricKeyDetails?.namedCurve
  const crv = Object.keys(CURVES).find((name) => CURVES[name] === curve)
  if (crv === undefined) throw bad('material is on an unsupported curve')
  return { material: key, crv }
}

/** oct key bytes from base64, checked to be 16, 24 or 32 bytes. */
export function octFromBase64 (text: string): Buffer {
  const bytes = Buffer.from(text, 'base64')
  if (!OCT_BITS.includes(bytes.length * 8)) throw bad('oct material must be 16, 24 or 32 bytes of base64')
  return bytes
}
