// The AKV emulator's keys: versions per name, their material and release policies, kept in memory
// and optionally in a JSON file (mode 0600; RSA/EC material as PKCS#8 PEM, oct as base64). The file
// may also be written by hand: an entry without `material` gets a fresh key on load, and a policy
// may be given as plain JSON (`releasePolicy.policy`) instead of encoded `data`.
// Rules enforced as the service does (wire-protocols §2.6, §2.7): an exportable key needs a release
// policy and a policy needs an exportable key (400 BadParameter), and an immutable policy cannot be
// replaced by a new version with a different one.
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { ConfigInvalid, RequestInvalid } from '../errors.ts'
import { decodePolicyData, parseReleasePolicy } from '../akv/release-policy.ts'

/** The key types a vault or Managed HSM reports. */
export type EmulatedKty = 'oct-HSM' | 'RSA-HSM' | 'EC-HSM' | 'oct' | 'RSA' | 'EC'

/** A key's release policy as stored: `data` is the policy JSON in unpadded b64url. */
export interface StoredReleasePolicy { data: string, immutable: boolean, contentType?: string }

/** One version of a key. `material` is a private KeyObject (RSA, EC) or the raw bytes (oct). */
export interface EmulatedKey {
  name: string
  version: string
  kty: EmulatedKty
  keyOps: string[]
  exportable: boolean
  material: KeyObject | Buffer
  crv?: string
  releasePolicy: StoredReleasePolicy | null
  created: number
}

/** Settings shared by create and import; `releasePolicy.data` may be b64url or std b64, padded or not. */
export interface KeySettings {
  keyOps?: string[]
  exportable?: boolean
  releasePolicy?: { data: string, immutable?: boolean, contentType?: string } | null
  /** Store the key as an HSM key (kty with the -HSM suffix). */
  hsm?: boolean
}

/** What to generate: `size` in bits for oct (128/192/256) and RSA (2048/3072/4096); `crv` for EC. */
export interface CreateKeySettings extends KeySettings { kty: EmulatedKty, size?: number, crv?: string }

/** The emulator's key store. Invalid input throws RequestInvalid (the emulator's 400 BadParameter). */
export interface KeyStore {
  createKey: (name: string, settings: CreateKeySettings) => Promise<EmulatedKey>
  importKey: (name: string, jwk: Record<string, unknown>, settings?: KeySettings) => EmulatedKey
  /** The given version, or the newest one; names and versions are case-insensitive. */
  get: (name: string, version?: string) => EmulatedKey | undefined
  /** Every stored version, oldest first. */
  list: () => EmulatedKey[]
}

const NAME = /^[0-9A-Za-z-]{1,127}$/
const OCT_BITS = [128, 192, 256]
const RSA_BITS = [2048, 3072, 4096]
// AKV curve names → node:crypto curve names.
const CURVES: Readonly<Record<string, string>> = Object.freeze({ 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1', 'P-256K': 'secp256k1' })
const JOSE_CRV: Readonly<Record<string, string>> = Object.freeze({ 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521', 'P-256K': 'secp256k1' })
const DEFAULT_OPS: Readonly<Record<string, string[]>> = Object.freeze({
  oct: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  RSA: ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'],
  EC: ['sign', 'verify']
})

function bad (message: string): RequestInvalid {
  return new RequestInvalid(message)
}

/** True when `name` is a valid Key Vault object name. */
export function isKeyName (name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name)
}

function family (kty: string): 'oct' | 'RSA' | 'EC' {
  const base = kty.replace(/-HSM$/, '')
  if (base === 'oct' || base === 'RSA' || base === 'EC') return base
  throw bad('kty must be one of oct, oct-HSM, RSA, RSA-HSM, EC, EC-HSM')
}

function ktyOf (kty: string, hsm: boolean | undefined): EmulatedKty {
  const base = family(kty)
  return (hsm === true || kty.endsWith('-HSM') ? `${base}-HSM` : base)
}

function keyOpsOf (ops: unknown, base: string): string[] {
  if (ops === undefined || ops === null) return [...(DEFAULT_OPS[base] ?? [])]
  if (!Array.isArray(ops) || ops.length > 16 || !ops.every((op) => typeof op === 'string' && op !== '' && op.length <= 32)) {
    throw bad('key_ops must be an array of operation names')
  }
  return [...ops] as string[]
}

function policyOf (input: KeySettings['releasePolicy']): StoredReleasePolicy | null {
  if (input === undefined || input === null) return null
  if (typeof input !== 'object') throw bad('release_policy must be an object')
  if (input.immutable !== undefined && typeof input.immutable !== 'boolean') throw bad('release_policy.immutable must be a boolean')
  if (input.contentType !== undefined && typeof input.contentType !== 'string') throw bad('release_policy.contentType must be a string')
  parseReleasePolicy(input.data)
  return {
    // Stored and answered in the canonical wire form whatever encoding the caller used.
    data: decodePolicyData(input.data).toString('base64url'),
    immutable: input.immutable ?? false,
    ...(input.contentType === undefined ? {} : { contentType: input.contentType })
  }
}

function b64urlMember (jwk: Record<string, unknown>, name: string): string {
  const value = jwk[name]
  if (typeof value !== 'string' || value === '' || !/^[A-Za-z0-9_-]+={0,2}$/.test(value)) throw bad(`key.${name} missing or not base64url`)
  return value.replace(/=+$/, '')
}

function importMaterial (jwk: Record<string, unknown>, base: 'oct' | 'RSA' | 'EC'): { material: KeyObject | Buffer, crv?: string } {
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

type Spec = { type: 'oct', bytes: number } | { type: 'rsa', modulusLength: number } | { type: 'ec', namedCurve: string, crv: string }

function specOf (base: 'oct' | 'RSA' | 'EC', size: unknown, crv: unknown): Spec {
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

// Asynchronous so that minting an RSA-4096 key does not stall the emulator's other requests.
async function generate (spec: Spec): Promise<{ material: KeyObject | Buffer, crv?: string }> {
  if (spec.type === 'oct') return { material: crypto.randomBytes(spec.bytes) }
  const priv = await new Promise<KeyObject>((resolve, reject) => {
    const done = (err: Error | null, _pub: KeyObject, key: KeyObject): void => { if (err === null) resolve(key); else reject(err) }
    if (spec.type === 'rsa') crypto.generateKeyPair('rsa', { modulusLength: spec.modulusLength }, done)
    else crypto.generateKeyPair('ec', { namedCurve: spec.namedCurve }, done)
  })
  return spec.type === 'ec' ? { material: priv, crv: spec.crv } : { material: priv }
}

function generateSync (spec: Spec): { material: KeyObject | Buffer, crv?: string } {
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

/** The bytes a release wraps (wire-protocols §2.3): raw for oct, PKCS#8 DER for RSA and EC. The caller zeroes them. */
export function releasePlaintext (key: EmulatedKey): Buffer {
  if (Buffer.isBuffer(key.material)) return Buffer.from(key.material)
  return key.material.export({ format: 'der', type: 'pkcs8' })
}

/** Opens a store; with `file`, loads it (if present) and rewrites it after every change. */
export function createKeyStore (options: { file?: string, now?: () => Date } = {}): KeyStore {
  const now = options.now ?? (() => new Date())
  const versions = new Map<string, EmulatedKey[]>()
  const file = options.file

  const add = (name: string, base: 'oct' | 'RSA' | 'EC', settings: KeySettings & { kty: string }, made: { material: KeyObject | Buffer, crv?: string }, created?: number, version?: string): EmulatedKey => {
    if (!isKeyName(name)) throw bad('key name must be 1-127 letters, digits or dashes')
    const releasePolicy = policyOf(settings.releasePolicy)
    const exportable = settings.exportable ?? false
    if (typeof exportable !== 'boolean') throw bad('attributes.exportable must be a boolean')
    if (exportable && releasePolicy === null) throw bad('an exportable key needs a release policy')
    if (!exportable && releasePolicy !== null) throw bad('a release policy can only be set on an exportable key')
    const list = versions.get(name.toLowerCase()) ?? []
    const latest = list.at(-1)
    if (latest?.releasePolicy?.immutable === true && latest.releasePolicy.data !== releasePolicy?.data) {
      throw bad('the key\'s release policy is immutable')
    }
    const key: EmulatedKey = {
      name,
      version: version ?? crypto.randomBytes(16).toString('hex'),
      kty: ktyOf(settings.kty, settings.hsm),
      keyOps: keyOpsOf(settings.keyOps, base),
      exportable,
      material: made.material,
      ...(made.crv === undefined ? {} : { crv: made.crv }),
      releasePolicy,
      created: created ?? Math.floor(now().getTime() / 1000)
    }
    list.push(key)
    versions.set(name.toLowerCase(), list)
    return key
  }

  const all = (): EmulatedKey[] => [...versions.values()].flat().sort((a, b) => a.created - b.created)

  const save = (): void => {
    if (file === undefined) return
    const keys = all().map((key) => ({
      name: key.name,
      version: key.version,
      kty: key.kty,
      keyOps: key.keyOps,
      exportable: key.exportable,
      ...(key.crv === undefined ? {} : { crv: key.crv }),
      material: Buffer.isBuffer(key.material) ? key.material.toString('base64') : key.material.export({ format: 'pem', type: 'pkcs8' }),
      releasePolicy: key.releasePolicy,
      created: key.created
    }))
    const tmp = `${file}.${process.pid}.tmp`
    writeFileSync(tmp, JSON.stringify({ keys }, null, 2) + '\n', { mode: 0o600 })
    renameSync(tmp, file)
  }

  if (file !== undefined) {
    if (load(file, add)) save()
  }

  return {
    createKey: async (name, settings) => {
      if (typeof settings !== 'object' || settings === null) throw bad('create settings missing')
      if (!isKeyName(name)) throw bad('key name must be 1-127 letters, digits or dashes')
      const base = family(String(settings.kty))
      const made = await generate(specOf(base, settings.size, settings.crv))
      const key = add(name, base, settings, made)
      save()
      return key
    },
    importKey: (name, jwk, settings = {}) => {
      if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw bad('key must be a JWK object')
      const kty = String(jwk['kty'])
      const base = family(kty)
      const key = add(name, base, { ...settings, kty, keyOps: settings.keyOps ?? (jwk['key_ops'] as string[] | undefined) }, importMaterial(jwk, base))
      save()
      return key
    },
    get: (name, version) => {
      if (typeof name !== 'string') return undefined
      const list = versions.get(name.toLowerCase())
      if (version === undefined || version === '') return list?.at(-1)
      return list?.find((key) => key.version.toLowerCase() === String(version).toLowerCase())
    },
    list: all
  }
}

type Adder = (name: string, base: 'oct' | 'RSA' | 'EC', settings: KeySettings & { kty: string }, made: { material: KeyObject | Buffer, crv?: string }, created?: number, version?: string) => EmulatedKey

/** Loads entries into the store; true when some entry was completed (generated) and the file should be rewritten. */
function load (file: string, add: Adder): boolean {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new ConfigInvalid(`key store file ${file} cannot be read`, { cause: err })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new ConfigInvalid(`key store file ${file} is not JSON`)
  }
  const entries = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(entries)) throw new ConfigInvalid(`key store file ${file} needs a "keys" array`)
  let completed = false
  entries.forEach((entry: unknown, index) => {
    try {
      completed = loadEntry(entry, add) || completed
    } catch (err) {
      throw new ConfigInvalid(`key store file ${file}: keys[${index}] invalid: ${err instanceof RequestInvalid ? err.message : 'unreadable'}`, { cause: err })
    }
  })
  return completed
}

function loadEntry (entry: unknown, add: Adder): boolean {
  if (typeof entry !== 'object' || entry === null) throw bad('entry must be an object')
  const e = entry as Record<string, unknown>
  const kty = String(e['kty'])
  const base = family(kty)
  const rp = e['releasePolicy'] as Record<string, unknown> | null | undefined
  const releasePolicy = rp === undefined || rp === null
    ? null
    : {
        data: rp['policy'] !== undefined ? Buffer.from(JSON.stringify(rp['policy'])).toString('base64url') : String(rp['data']),
        ...(rp['immutable'] === undefined ? {} : { immutable: rp['immutable'] as boolean }),
        ...(typeof rp['contentType'] === 'string' ? { contentType: rp['contentType'] } : {})
      }
  const settings = { kty, keyOps: e['keyOps'] as string[] | undefined, exportable: e['exportable'] as boolean | undefined, releasePolicy }
  const created = typeof e['created'] === 'number' ? e['created'] : undefined
  const version = typeof e['version'] === 'string' && /^[0-9a-f]{32}$/i.test(e['version']) ? e['version'] : undefined
  const material = e['material']
  if (material === undefined) {
    add(String(e['name']), base, settings, generateSync(specOf(base, e['size'], e['crv'])), created, version)
    return true
  }
  if (typeof material !== 'string') throw bad('material must be a string')
  const made = base === 'oct'
    ? { material: octFromBase64(material) }
    : asymmetricFromPem(material, base)
  add(String(e['name']), base, settings, made, created, version)
  return version === undefined || created === undefined
}

function asymmetricFromPem (pem: string, base: 'RSA' | 'EC'): { material: KeyObject, crv?: string } {
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

function octFromBase64 (text: string): Buffer {
  const bytes = Buffer.from(text, 'base64')
  if (!OCT_BITS.includes(bytes.length * 8)) throw bad('oct material must be 16, 24 or 32 bytes of base64')
  return bytes
}
