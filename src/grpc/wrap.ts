// RSA-OAEP-SHA256 wrapping as the reference's directWrap does it (used by `skr wrap` and by
// WrapKey), and its inverse with a released private JWK (used by UnWrapKey). The crypto is
// node:crypto's; this module only finds the key, checks sizes and maps failures to
// SidecarErrors whose messages name files and fields, never their contents.
import { constants, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt } from 'node:crypto'
import type { JsonWebKey, KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { KeyUnwrapFailed, RequestInvalid, WrappingKeyInvalid } from '../errors.ts'
import { encodeAnnotationPacket, keyInfoPath, kidFromKeyPath, parseKeyInfo, WRAP_TYPE, type AnnotationPacket } from './annotation.ts'

/** OAEP with SHA-256 spends 2·32+2 bytes of the modulus on padding. */
const OAEP_SHA256_OVERHEAD = 2 * 32 + 2

/** What wrapping needs from the file system (a seam for tests). */
export interface WrapOptions {
  /** Directory relative paths are resolved against (default: process.cwd(), as the reference). */
  readonly cwd?: string
  readonly readFile?: (path: string) => Promise<Buffer>
}

/** The result of a wrap: the packet and its JSON bytes as the reference writes them. */
export interface Wrapped {
  readonly packet: AnnotationPacket
  readonly packetJson: Buffer
}

function errnoOf (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'EIO'
}

async function readKeyFile (read: (path: string) => Promise<Buffer>, path: string, what: string): Promise<Buffer> {
  try {
    return await read(path)
  } catch (err) {
    const errno = errnoOf(err)
    const why = errno === 'ENOENT' ? 'not found' : `cannot be read (${errno})`
    throw new WrappingKeyInvalid(`${what} ${path} ${why}`, { cause: err, details: { path, errno } })
  }
}

/** The first PEM block's label and text, like Go's pem.Decode (which the reference uses). */
function firstPemBlock (text: string): { label: string; pem: string } | null {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/.exec(text)
  return m === null ? null : { label: m[1] as string, pem: m[0] }
}

/** Parses the RSA public key PEM (SPKI "PUBLIC KEY", or PKCS#1 "RSA PUBLIC KEY"); `path` names it in errors. */
export function rsaPublicKeyFromPem (pemBytes: Uint8Array, path: string): KeyObject {
  const block = firstPemBlock(Buffer.from(pemBytes).toString('latin1'))
  // Private keys and certificates are refused on purpose: a public key file that holds a
  // private key is a mistake worth stopping.
  if (block === null || (block.label !== 'PUBLIC KEY' && block.label !== 'RSA PUBLIC KEY')) {
    throw new WrappingKeyInvalid(`public key file ${path} holds no PUBLIC KEY PEM block`, { details: { path } })
  }
  let key: KeyObject
  try {
    key = createPublicKey({ key: block.pem, format: 'pem' })
  } catch (err) {
    throw new WrappingKeyInvalid(`public key file ${path} holds a malformed public key`, { cause: err, details: { path } })
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new WrappingKeyInvalid(`public key file ${path} holds a ${key.asymmetricKeyType ?? 'non-RSA'} key, want RSA`, { details: { path } })
  }
  return key
}

/** Largest plaintext RSA-OAEP-SHA256 can wrap under `key`. */
export function maxWrapBytes (key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  return Math.ceil(bits / 8) - OAEP_SHA256_OVERHEAD
}

/** Encrypts `data` to `key` with RSA-OAEP-SHA256 (RequestInvalid when it does not fit). */
export function oaepWrap (key: KeyObject, data: Buffer): Buffer {
  const max = maxWrapBytes(key)
  if (data.length > max) {
    throw new RequestInvalid(`data to wrap is ${data.length} bytes; RSA-OAEP-SHA256 with this key wraps at most ${max}`)
  }
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, data)
}

/**
 * Wraps `data` for the key at `keyPath`, reading `<keyPath>-info.json` and the PEM it names,
 * exactly as the reference's directWrap. A relative public_key_path is tried against the
 * working directory (the reference) and then against the info file's directory.
 */
export async function wrapForKeyPath (data: Buffer, keyPath: string, options: WrapOptions = {}): Promise<Wrapped> {
  const cwd = options.cwd ?? process.cwd()
  const read = options.readFile ?? (async (p: string) => await readFile(p))
  const kid = kidFromKeyPath(keyPath)
  if (kid === '') throw new RequestInvalid('the key path ends in "/"; it must name a key (e.g. ./testkey000)')
  const infoPath = resolve(cwd, keyInfoPath(keyPath))
  const info = parseKeyInfo(await readKeyFile(read, infoPath, 'key info file'), infoPath)

  let pemPath = resolve(cwd, info.publicKeyPath)
  let pem: Buffer
  try {
    pem = await readKeyFile(read, pemPath, 'public key file')
  } catch (err) {
    const missing = err instanceof WrappingKeyInvalid && err.details.errno === 'ENOENT'
    if (isAbsolute(info.publicKeyPath) || !missing) throw err
    pemPath = resolve(dirname(infoPath), info.publicKeyPath)
    pem = await readKeyFile(read, pemPath, 'public key file')
  }
  const key = rsaPublicKeyFromPem(pem, pemPath)
  const packet: AnnotationPacket = {
    kid,
    wrappedData: oaepWrap(key, data),
    iv: Buffer.alloc(0),
    wrapType: WRAP_TYPE,
    kmsEndpoint: info.kmsEndpoint,
    attesterEndpoint: info.attesterEndpoint
  }
  return { packet, packetJson: encodeAnnotationPacket(packet) }
}

/** Decrypts an annotation's wrapped_data with the released key (an RSA private JWK). */
export function unwrapWithJwk (jwk: Readonly<Record<string, unknown>>, wrappedData: Buffer): Buffer {
  if (jwk.kty !== 'RSA' || typeof jwk.d !== 'string') {
    const kty = typeof jwk.kty === 'string' && /^[A-Za-z-]{1,16}$/.test(jwk.kty) ? jwk.kty : 'unknown'
    throw new WrappingKeyInvalid(`the released key is not an RSA private key (kty ${kty})`, { details: { kty } })
  }
  let key: KeyObject
  try {
    key = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' })
  } catch (err) {
    throw new KeyUnwrapFailed('the released RSA key could not be decoded', { cause: err })
  }
  try {
    return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrappedData)
  } catch {
    // No cause kept: OpenSSL's error adds nothing and the point is not to help an oracle.
    throw new RequestInvalid('wrapped_data does not decrypt with the released key: it was wrapped for another key (or version), or it is corrupted')
  }
}
