// The extra PEM roots skr trusts for upstream TLS and release-signer chains: those a caller passes
// in (the demo's local PKI, test doubles) plus the file SKR_EXTRA_CA_CERTS names.
import { readFile } from 'node:fs/promises'
import type { Config } from './config.ts'
import { ConfigInvalid } from '../errors.ts'

/**
 * `extra` followed by the contents of config.extraCaFile (when set). An unreadable file is
 * ConfigInvalid naming SKR_EXTRA_CA_CERTS and the error code; the message never carries the path
 * or the file's contents.
 */
export async function readExtraCa (config: Pick<Config, 'extraCaFile'>, extra: readonly string[] = []): Promise<string[]> {
  const roots = [...extra]
  if (config.extraCaFile !== null) {
    try {
      roots.push(await readFile(config.extraCaFile, 'utf8'))
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw new ConfigInvalid(`SKR_EXTRA_CA_CERTS names a file that cannot be read (${typeof code === 'string' ? code : 'unknown error'})`,
        { cause: err, details: { key: 'SKR_EXTRA_CA_CERTS' } })
    }
  }
  return roots
}
