// The AKV emulator's key record (./akv-store.ts): one version of a key, and the settings keys are
// created and imported with.
import type { KeyObject } from 'node:crypto'

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
