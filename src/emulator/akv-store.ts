// The AKV emulator's keys: versions per name, their material and release policies, kept in memory
// and optionally in a JSON file (./akv-key-file.ts; mode 0600; RSA/EC material as PKCS#8 PEM, oct as base64). The file
// may also be written by hand: an entry without `material` gets a fresh key on load, and a policy
// may be given as plain JSON (`releasePolicy.policy`) instead of encoded `data`.
// Rules enforced as the service does (docs/protocols.md#creating-exportable-keys): an exportable key needs a release
// policy and a policy needs an exportable key (400 BadParameter), and an immutable policy cannot be
// replaced by a new version with a different one.
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { RequestInvalid } from '../errors.ts'
import { decodePolicyData, parseReleasePolicy } from '../akv/release-policy.ts'
import type { CreateKeySettings, EmulatedKey, EmulatedKty, KeySettings, StoredReleasePolicy } from './akv-key-types.ts'
import { family, generate, importMaterial, specOf } from './akv-key-material.ts'
import { loadKeyFile, writeKeyFile } from './akv-key-file.ts'

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
    if (file !== undefined) writeKeyFile(file, all())
  }

  if (file !== undefined) {
    if (loadKeyFile(file, add)) save()
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
