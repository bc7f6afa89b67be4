// Turns unwrapped key material into the JWK the local API returns. Plaintext formats per
// docs/protocols.md#released-key-wrapping: oct → raw bytes; RSA and EC → PKCS#8 DER. The JSON shape follows the
// reference sidecar (lestrrat-go/jwx: plain JOSE kty, key_ops only when non-empty, members in
// sorted order, e.g. {"k","key_ops","kty"} for oct, docs/compatibility.md#post-keyrelease).
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { KeyUnwrapFailed } from '../errors.ts'

// AKV's curve names (JsonWebKeyCurveName) and the JOSE name node:crypto exports for each.
const CURVES: Readonly<Record<string, string>> = Object.freeze({
  'P-256': 'P-256',
  'P-384': 'P-384',
  'P-521': 'P-521',
  'P-256K': 'secp256k1',
  secp256k1: 'secp256k1'
})

function fail (step: string, details: Record<string, string> = {}): KeyUnwrapFailed {
  return new KeyUnwrapFailed(`released key material invalid: ${step}`, { details: { step, ...details } })
}

function sorted (jwk: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const name of Object.keys(jwk).sort()) out[name] = jwk[name]
  return out
}

function keyOpsOf (key: { key_ops?: unknown }): string[] | undefined {
  const ops = key.key_ops
  if (ops === undefined || ops === null) return undefined
  if (!Array.isArray(ops) || !ops.every((op) => typeof op === 'string')) throw fail('key_ops')
  return ops.length > 0 ? [...ops] : undefined
}

function parsePkcs8 (plaintext: Buffer, family: string): KeyObject {
  try {
    return crypto.createPrivateKey({ key: plaintext, format: 'der', type: 'pkcs8' })
  } catch {
    throw fail('PKCS#8 parse', { kty: family })
  }
}

function asymmetricJwk (plaintext: Buffer, family: 'RSA' | 'EC', crv: string | undefined): Record<string, unknown> {
  const key = parsePkcs8(plaintext, family)
  const actual = key.asymmetricKeyType ?? 'unknown'
  if (actual !== (family === 'RSA' ? 'rsa' : 'ec')) throw fail('key type does not match kty', { kty: family, actual })
  const jwk = key.export({ format: 'jwk' }) as Record<string, unknown>
  if (family === 'EC' && crv !== undefined) {
    const expected = CURVES[crv]
    if (expected === undefined || jwk['crv'] !== expected) throw fail('curve does not match crv')
  }
  return jwk
}

/**
 * Builds the output JWK from released plaintext: `oct`/`oct-HSM` → {k, key_ops?, kty:'oct'};
 * `RSA`/`RSA-HSM` and `EC`/`EC-HSM` → the private JWK of the PKCS#8 key, after checking its type
 * (and curve, when `crv` is given) matches what the vault declared. Unknown kty → KeyUnwrapFailed.
 */
export function plaintextToJwk (
  plaintext: Buffer,
  key: { kty: string, key_ops?: string[], kid?: string, crv?: string }
): Record<string, unknown> {
  if (!Buffer.isBuffer(plaintext)) throw new TypeError('plaintextToJwk: plaintext must be a Buffer')
  const keyOps = keyOpsOf(key)
  let jwk: Record<string, unknown>
  switch (key.kty) {
    case 'oct':
    case 'oct-HSM':
      if (plaintext.length === 0) throw fail('empty symmetric key')
      jwk = { kty: 'oct', k: plaintext.toString('base64url') }
      break
    case 'RSA':
    case 'RSA-HSM':
      jwk = asymmetricJwk(plaintext, 'RSA', undefined)
      break
    case 'EC':
    case 'EC-HSM':
      if (key.crv !== undefined && typeof key.crv !== 'string') throw fail('crv')
      jwk = asymmetricJwk(plaintext, 'EC', key.crv)
      break
    default:
      // kty is vault-chosen text, not secret, but it is untrusted: keep it out of the message.
      throw fail('unsupported kty')
  }
  if (keyOps !== undefined) jwk['key_ops'] = keyOps
  return sorted(jwk)
}
