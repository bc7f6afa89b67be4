// The KeyBundle a vault answers for a key (create, import, get and inside a release): kid, public
// members, attributes and release policy; never private material.
import type { EmulatedKey } from './akv-key-types.ts'
import { publicMembers } from './akv-key-material.ts'

/** A key as a vault shows it at `host`; with `keyHsm`, the release form (key_hsm added, no policy contentType). */
export function keyBundle (key: EmulatedKey, host: string, keyHsm?: string): Record<string, unknown> {
  const policy = key.releasePolicy
  return {
    key: { kid: `https://${host}/keys/${key.name}/${key.version}`, kty: key.kty, key_ops: [...key.keyOps], ...publicMembers(key), ...(keyHsm === undefined ? {} : { key_hsm: keyHsm }) },
    attributes: { enabled: true, created: key.created, updated: key.created, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90, exportable: key.exportable },
    tags: {},
    ...(policy === null
      ? {}
      : { release_policy: { ...(keyHsm === undefined ? { contentType: policy.contentType ?? 'application/json; charset=utf-8' } : {}), data: policy.data, immutable: policy.immutable } })
  }
}
