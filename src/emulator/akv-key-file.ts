// The AKV emulator's key file: the store (./akv-store.ts) as JSON (mode 0600, written atomically;
// RSA/EC material as PKCS#8 PEM, oct as base64), rewritten after every change. The file may also
// be written by hand: an entry without `material` gets a fresh key on load, and a policy may be
// given as plain JSON (`releasePolicy.policy`) instead of encoded `data`.
import type { KeyObject } from 'node:crypto'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { ConfigInvalid, RequestInvalid } from '../errors.ts'
import type { EmulatedKey, KeySettings } from './akv-key-types.ts'
import { asymmetricFromPem, family, generateSync, octFromBase64, specOf } from './akv-key-material.ts'

function bad (message: string): RequestInvalid {
  return new RequestInvalid(message)
}

/** Writes every key to `file` (0600, through a temporary file renamed over it). */
export function writeKeyFile (file: string, all: readonly EmulatedKey[]): void {
  const keys = all.map((key) => ({
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

/** How the loader adds an entry to the store: the store's own add, so entries meet the same rules. */
export type KeyAdder = (name: string, base: 'oct' | 'RSA' | 'EC', settings: KeySettings & { kty: string }, made: { material: KeyObject | Buffer, crv?: string }, created?: number, version?: string) => EmulatedKey

/** Loads entries into the store; true when some entry was completed (generated) and the file should be rewritten. */
export function loadKeyFile (file: string, add: KeyAdder): boolean {
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

function loadEntry (entry: unknown, add: KeyAdder): boolean {
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
