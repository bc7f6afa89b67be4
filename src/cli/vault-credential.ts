// The operator credential of the commands that call a vault (`skr import-key`, `skr explain`): a
// bearer token given with --access-token or --access-token-file, else exactly the identity the
// sidecar would use (workload identity when AZURE_CLIENT_ID, AZURE_TENANT_ID and
// AZURE_FEDERATED_TOKEN_FILE are set, else the managed identity), loaded only when needed.
import type { TokenCredential } from '@azure/identity'
import type { Config } from '../config/config.ts'
import { readExtraCa } from '../app/trust.ts'
import { staticTokenCredential } from '../ops/vault-client.ts'
import type { FlagSpecs } from '../config/flags.ts'
import { readUserFile, usageError } from './operator-kit.ts'

/** The flags that give a bearer token for the vault. */
export const CREDENTIAL_FLAGS: FlagSpecs = {
  'access-token': { type: 'string', help: 'bearer token for the vault (visible in ps: prefer --access-token-file); default: managed or workload identity from AZURE_* env' },
  'access-token-file': { type: 'string', help: 'read the bearer token from this file' }
}

/** The credential the CREDENTIAL_FLAGS values (or the sidecar's identity) give; usage errors for bad flags. */
export async function vaultCredential (values: Readonly<Record<string, string>>, config: Config): Promise<TokenCredential> {
  if (values['access-token'] !== undefined && values['access-token-file'] !== undefined) throw usageError('give --access-token or --access-token-file, not both')
  let token = values['access-token']
  if (values['access-token-file'] !== undefined) token = (await readUserFile(values['access-token-file'], '--access-token-file')).toString('utf8').trim()
  if (token !== undefined) {
    if (!/^[\x21-\x7e]{1,16384}$/.test(token)) throw usageError('the access token must be one printable word')
    return staticTokenCredential(token)
  }
  // Loaded only when needed: @azure/identity is large.
  const { createCredential, identityError } = await import('../identity/token-source.ts')
  const { identityConfigOf } = await import('../app/release.ts')
  // Exactly the identity the sidecar would use.
  const { credential, kind, hint } = await createCredential(identityConfigOf(config, await readExtraCa(config)))
  return {
    getToken: async (scopes, options) => {
      try {
        return await credential.getToken(scopes, options)
      } catch (err) {
        throw identityError(err, kind, hint)
      }
    }
  }
}
