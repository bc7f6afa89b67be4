// The JSON key-provider protocol carried in the bytes fields of WrapKey/UnWrapKey (ocicrypt's
// keyprovider protocol as the reference sidecar reads it, pkg/grpc/grpcserver/server.go).
// Pure: bytes in, typed requests or bytes out, RequestInvalid for anything ill-formed.
//
// The reference decodes with Go's json.Unmarshal, so this parser follows its rules where a
// client could notice: unknown fields are ignored, key names match case-insensitively, null
// means "absent", and a known field of the wrong type makes the whole input ill-formed.
// Byte fields are Go []byte: base64 strings, or (Go accepts these too, and ocicrypt-rs sends
// them) arrays of byte values. Messages never echo the input: it carries keys.
import { RequestInvalid } from '../errors.ts'
import { decodeBase64Flexible } from '../encoding/base64.ts'
import { isObject } from '../text/untrusted.ts'

/** Which service name a call came in on; it decides how byte fields are written back. */
export type KeyProviderFlavour = 'reference' | 'ocicrypt'

/** The attestation-agent name the reference answers to (compared case-insensitively). */
export const ATTESTATION_AGENT = 'skr'

/** The decryption/encryption config parameter naming the agent (and, for wrap, the key path). */
export const AGENT_PARAMETER = 'attestation-agent'

/** A WrapKey request: wrap `optsData` with the key described by `<keyPath>-info.json`. */
export interface WrapRequest {
  readonly keyPath: string
  readonly optsData: Buffer
}

/** An UnWrapKey request: the decoded annotation packet bytes (JSON). */
export interface UnwrapRequest {
  readonly annotation: Buffer
}

type JsonObject = Record<string, unknown>

/** Looks a member up as Go's encoding/json does: exact name first, then case-insensitively; null is absent. */
export function goField (obj: JsonObject, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name] ?? undefined
  const lower = name.toLowerCase()
  for (const key of Object.keys(obj)) {
    if (key.toLowerCase() === lower) return obj[key] ?? undefined
  }
  return undefined
}

/** A Go string field: absent/null is '', anything but a string is ill-formed. */
export function goString (value: unknown, path: string, what: string): string {
  if (value === undefined) return ''
  if (typeof value !== 'string') throw new RequestInvalid(`${what} is ill-formed: ${path} must be a string`)
  return value
}

/** A Go []byte field: base64 text or an array of byte values; absent/null is empty. */
export function goBytes (value: unknown, path: string, what: string): Buffer {
  if (value === undefined) return Buffer.alloc(0)
  if (typeof value === 'string') {
    const decoded = decodeBase64Flexible(value)
    if (decoded === null) throw new RequestInvalid(`${what} is ill-formed: ${path} is not base64`)
    return decoded
  }
  if (Array.isArray(value) && value.every(b => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255)) {
    return Buffer.from(value as number[])
  }
  throw new RequestInvalid(`${what} is ill-formed: ${path} must be base64 text or an array of byte values`)
}

/** A Go object field (struct or map): absent/null is {}, anything but an object is ill-formed. */
function goObject (value: unknown, path: string, what: string): JsonObject {
  if (value === undefined) return {}
  if (!isObject(value)) throw new RequestInvalid(`${what} is ill-formed: ${path} must be an object`)
  return value
}

/** Parses JSON text that must be an object; the parser's own message is dropped because it quotes the input. */
export function parseJsonObject (bytes: Uint8Array, what: string): JsonObject {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    throw new RequestInvalid(`${what} is not valid JSON`)
  }
  if (!isObject(value)) throw new RequestInvalid(`${what} must be a JSON object`)
  return value
}

const INPUT = 'key provider input'

/** The first value of Parameters["attestation-agent"], decoded; throws when absent. */
function agentParameter (config: JsonObject, path: string, configName: string): Buffer {
  const parameters = goObject(goField(config, 'Parameters'), `${path}.Parameters`, INPUT)
  const values = goField(parameters, AGENT_PARAMETER)
  if (values !== undefined && !Array.isArray(values)) {
    throw new RequestInvalid(`${INPUT} is ill-formed: ${path}.Parameters["${AGENT_PARAMETER}"] must be an array`)
  }
  const first: unknown = values?.[0]
  if (first === undefined) {
    throw new RequestInvalid(`${AGENT_PARAMETER} must be specified in the ${configName} config parameters`)
  }
  return goBytes(first, `${path}.Parameters["${AGENT_PARAMETER}"][0]`, INPUT)
}

function checkOp (input: JsonObject, expected: 'keywrap' | 'keyunwrap'): void {
  // The reference never looks at op; skr accepts it missing but not contradicting the method.
  const op = goString(goField(input, 'op'), 'op', INPUT)
  if (op !== '' && op !== expected) throw new RequestInvalid(`${INPUT} op must be "${expected}" (or absent) for this method`)
}

function sameAgent (name: string): boolean {
  return name.toLowerCase() === ATTESTATION_AGENT
}

/** Parses WrapKey's input: keywrapparams.ec.Parameters["attestation-agent"][0] = base64("skr:<keypath>"), optsdata = base64 data. */
export function parseWrapRequest (bytes: Uint8Array): WrapRequest {
  const input = parseJsonObject(bytes, INPUT)
  checkOp(input, 'keywrap')
  const params = goObject(goField(input, 'keywrapparams'), 'keywrapparams', INPUT)
  const ec = goObject(goField(params, 'ec'), 'keywrapparams.ec', INPUT)
  const agent = agentParameter(ec, 'keywrapparams.ec', 'encryption').toString('utf8')
  const colon = agent.indexOf(':')
  // The reference splits on every ':' and keeps only the second piece; skr keeps the whole
  // remainder so key paths containing ':' work.
  if (colon < 0) throw new RequestInvalid(`the key path is not provided: ${AGENT_PARAMETER} must be "${ATTESTATION_AGENT}:<keypath>"`)
  const name = agent.slice(0, colon)
  if (!sameAgent(name)) throw new RequestInvalid(`unexpected attestation agent specified, want "${ATTESTATION_AGENT}"; perhaps the request went to the wrong key provider`)
  const keyPath = agent.slice(colon + 1)
  if (keyPath === '') throw new RequestInvalid(`the key path is empty: ${AGENT_PARAMETER} must be "${ATTESTATION_AGENT}:<keypath>"`)
  return { keyPath, optsData: goBytes(goField(params, 'optsdata'), 'keywrapparams.optsdata', INPUT) }
}

/** Parses UnWrapKey's input: keyunwrapparams.dc.Parameters["attestation-agent"][0] = base64("skr"), annotation = base64 packet. */
export function parseUnwrapRequest (bytes: Uint8Array): UnwrapRequest {
  const input = parseJsonObject(bytes, INPUT)
  checkOp(input, 'keyunwrap')
  const params = goObject(goField(input, 'keyunwrapparams'), 'keyunwrapparams', INPUT)
  const dc = goObject(goField(params, 'dc'), 'keyunwrapparams.dc', INPUT)
  const agent = agentParameter(dc, 'keyunwrapparams.dc', 'decryption').toString('utf8')
  if (!sameAgent(agent)) throw new RequestInvalid(`unexpected attestation agent specified, want "${ATTESTATION_AGENT}"; perhaps the request went to the wrong key provider`)
  const annotation = goBytes(goField(params, 'annotation'), 'keyunwrapparams.annotation', INPUT)
  if (annotation.length === 0) throw new RequestInvalid('annotation is missing: keyunwrapparams.annotation must be the base64 annotation packet')
  return { annotation }
}

/** JSON text of a string exactly as Go's json.Marshal writes it (HTML-safe escapes included). */
export function goJsonString (text: string): string {
  return JSON.stringify(text).replace(/[<>&\u2028\u2029]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function bytesJson (data: Buffer | null, flavour: KeyProviderFlavour): string {
  if (data === null) return 'null'
  // ocicrypt-rs (CoCo) reads these fields as serde Vec<u8>, which only accepts arrays of byte
  // values; Go's ocicrypt accepts those too. The reference name keeps Go's base64 strings,
  // which its grpcurl/jq/base64 scripts decode.
  return flavour === 'reference' ? `"${data.toString('base64')}"` : `[${data.join(',')}]`
}

/** WrapKey's output: the reference writes both result objects, the unused one with a null field. */
export function buildWrapOutput (annotation: Buffer, flavour: KeyProviderFlavour): Buffer {
  const wrap = `"keywrapresults":{"annotation":${bytesJson(annotation, flavour)}}`
  return Buffer.from(flavour === 'reference'
    ? `{${wrap},"keyunwrapresults":{"optsdata":null}}`
    : `{${wrap}}`)
}

/** UnWrapKey's output, byte-identical to the reference for its service name. */
export function buildUnwrapOutput (optsData: Buffer, flavour: KeyProviderFlavour): Buffer {
  const unwrap = `"keyunwrapresults":{"optsdata":${bytesJson(optsData, flavour)}}`
  return Buffer.from(flavour === 'reference'
    ? `{"keywrapresults":{"annotation":null},${unwrap}}`
    : `{${unwrap}}`)
}
