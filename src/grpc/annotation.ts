// The annotation packet and the key info file of the reference's RSA key provider
// (pkg/grpc/grpcserver/server.go AnnotationPacket, RSAKeyInfo, directWrap). Pure.
//
// The packet is what ends up in an image's annotation or in the `wrapped` file of the
// reference's aks-kata-cc example, so skr writes it byte for byte as Go's json.Marshal does:
// fields in struct order, wrapped_data as standard padded base64, iv/wrap_type/endpoints
// omitted when empty, and HTML-safe string escapes. Packets wrapped by either tool unwrap
// with the other.
import { WrappingKeyInvalid, RequestInvalid } from '../errors.ts'
import { decodeBase64Flexible } from '../encoding/base64.ts'
import { goBytes, goField, goJsonString, goString, parseJsonObject } from './key-provider-protocol.ts'

/** The wrap_type the reference writes, whatever the key's size (kept for interchange). */
export const WRAP_TYPE = 'rsa_3072'

/** The suffix the reference appends to the key path to find the key info file. */
export const KEY_INFO_SUFFIX = '-info.json'

/** A decoded annotation packet. `iv` is empty for RSA wrapping. */
export interface AnnotationPacket {
  readonly kid: string
  readonly wrappedData: Buffer
  readonly iv: Buffer
  readonly wrapType: string
  readonly kmsEndpoint: string
  readonly attesterEndpoint: string
}

/** `<keypath>-info.json`: where the public key is, and where to release its private half. */
export interface KeyInfo {
  readonly publicKeyPath: string
  readonly kmsEndpoint: string
  readonly attesterEndpoint: string
}

/** The key info file's path for a key path (the reference's `key_path + "-info.json"`). */
export function keyInfoPath (keyPath: string): string {
  return keyPath + KEY_INFO_SUFFIX
}

/** The key id a key path wraps for: its last '/'-separated element, as Go's path.Split gives it. */
export function kidFromKeyPath (keyPath: string): string {
  return keyPath.slice(keyPath.lastIndexOf('/') + 1)
}

function omitEmpty (name: string, value: string): string {
  return value === '' ? '' : `,"${name}":${goJsonString(value)}`
}

/** The packet's JSON bytes, identical to the reference's json.Marshal output. */
export function encodeAnnotationPacket (packet: AnnotationPacket): Buffer {
  const json = `{"kid":${goJsonString(packet.kid)}` +
    `,"wrapped_data":"${packet.wrappedData.toString('base64')}"` +
    omitEmpty('iv', packet.iv.length === 0 ? '' : packet.iv.toString('base64')) +
    omitEmpty('wrap_type', packet.wrapType) +
    omitEmpty('kms_endpoint', packet.kmsEndpoint) +
    omitEmpty('attester_endpoint', packet.attesterEndpoint) +
    '}'
  return Buffer.from(json, 'utf8')
}

const PACKET = 'annotation packet'

/** Decodes packet JSON bytes (RequestInvalid when ill-formed or missing what an unwrap needs). */
export function decodeAnnotationPacket (bytes: Uint8Array): AnnotationPacket {
  const obj = parseJsonObject(bytes, PACKET)
  const packet: AnnotationPacket = {
    kid: goString(goField(obj, 'kid'), 'kid', PACKET),
    wrappedData: goBytes(goField(obj, 'wrapped_data'), 'wrapped_data', PACKET),
    iv: goBytes(goField(obj, 'iv'), 'iv', PACKET),
    wrapType: goString(goField(obj, 'wrap_type'), 'wrap_type', PACKET),
    kmsEndpoint: goString(goField(obj, 'kms_endpoint'), 'kms_endpoint', PACKET),
    attesterEndpoint: goString(goField(obj, 'attester_endpoint'), 'attester_endpoint', PACKET)
  }
  // The reference would go on to a release that cannot work; saying which field is missing is kinder.
  for (const [field, present] of [['kid', packet.kid !== ''], ['wrapped_data', packet.wrappedData.length > 0],
    ['kms_endpoint', packet.kmsEndpoint !== ''], ['attester_endpoint', packet.attesterEndpoint !== '']] as const) {
    if (!present) throw new RequestInvalid(`${PACKET} has no ${field}`)
  }
  return packet
}

/** Parses a key info file's bytes; `path` is only used in messages. */
export function parseKeyInfo (bytes: Uint8Array, path: string): KeyInfo {
  let obj: Record<string, unknown>
  let info: KeyInfo
  try {
    obj = parseJsonObject(bytes, 'key info file')
    info = {
      publicKeyPath: goString(goField(obj, 'public_key_path'), 'public_key_path', 'key info file'),
      kmsEndpoint: goString(goField(obj, 'kms_endpoint'), 'kms_endpoint', 'key info file'),
      attesterEndpoint: goString(goField(obj, 'attester_endpoint'), 'attester_endpoint', 'key info file')
    }
  } catch (err) {
    const why = err instanceof RequestInvalid ? err.message : 'key info file is unreadable'
    throw new WrappingKeyInvalid(`${why} (${path})`, { details: { path } })
  }
  // The reference writes whatever it finds (an empty endpoint is simply omitted), producing a
  // packet nothing can unwrap; skr refuses at wrap time instead.
  for (const [field, value] of [['public_key_path', info.publicKeyPath], ['kms_endpoint', info.kmsEndpoint],
    ['attester_endpoint', info.attesterEndpoint]] as const) {
    if (value === '') throw new WrappingKeyInvalid(`key info file has no ${field} (${path})`, { details: { path } })
  }
  return info
}

/** The `--outfile` text of the wrap tool: standard padded base64 of the packet JSON, no newline. */
export function encodeWrappedFile (packetJson: Buffer): string {
  return packetJson.toString('base64')
}

/** Decodes the wrap tool's file text (surrounding whitespace, as `cat` + shell leaves it, is ignored). */
export function decodeWrappedFile (text: string): Buffer {
  const decoded = decodeBase64Flexible(text.trim())
  if (decoded === null) throw new RequestInvalid('the wrapped file is not base64')
  return decoded
}
