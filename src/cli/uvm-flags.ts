// The UVM-endorsement flags `skr verify` and `skr report` share: where the endorsement comes from,
// which signing roots and transparency keys to trust, and (verify only) what to expect of it.
import { decodeEndorsementInput, type UvmCheckOptions } from '../ops/uvm-endorsement-checks.ts'
import { MICROSOFT_SUPPLY_CHAIN_ROOT_FINGERPRINT as MICROSOFT_ROOT } from '../uvm/reference-info.ts'
import { microsoftTransparencyKeys, parseTransparencyKeys, type TransparencyKey } from '../uvm/transparency-receipt.ts'
import type { FlagSpecs } from '../config/flags.ts'
import { fingerprintFlag, readUserFile, usageError } from './operator-kit.ts'

/** Flags that may repeat (pass to takeRepeated). */
export const UVM_REPEATED_FLAGS = ['trust-uvm-root', 'transparency-keys'] as const

/** The flags both commands take. */
export const UVM_SOURCE_FLAGS: FlagSpecs = {
  'uvm-endorsement': { type: 'string', help: 'the UVM endorsement (reference-info-base64 of the security context, raw COSE_Sign1 or hex); either layout' },
  'trust-uvm-root': { type: 'string', help: 'also trust this endorsement signing root SHA-256 fingerprint besides Microsoft\'s; repeatable' },
  'transparency-keys': { type: 'string', help: 'also trust these transparency-service keys for receipts: a JWKS (the service\'s /jwks), a CCF trust store JSON or PEM; repeatable' }
}

/** The expectations only `skr verify` takes. */
export const UVM_EXPECT_FLAGS: FlagSpecs = {
  'expect-uvm-feed': { type: 'string', help: 'the feed the endorsement must name (default ContainerPlat-AMD-UVM)' },
  'expect-uvm-svn': { type: 'string', help: 'the endorsement\'s SVN must be at least this' },
  'require-receipt': { type: 'boolean', help: 'fail unless the endorsement carries a receipt that verifies under a trusted transparency key' }
}

/** Reads the endorsement file (null when the flag is absent); a malformed file is ERR_UVM_ENDORSEMENT_INVALID. */
export async function readEndorsementFlag (values: Readonly<Record<string, string | undefined>>): Promise<Buffer | null> {
  const path = values['uvm-endorsement']
  return path === undefined ? null : decodeEndorsementInput(await readUserFile(path, '--uvm-endorsement'))
}

/** Trust and expectations from the flags; files are read here. */
export async function uvmCheckOptions (
  values: Readonly<Record<string, string | undefined>>, repeated: Readonly<Record<string, string[]>>, now: Date
): Promise<UvmCheckOptions> {
  const extraRoots = (repeated['trust-uvm-root'] ?? []).map((raw) => fingerprintFlag(raw, '--trust-uvm-root'))
  const keys: TransparencyKey[] = [...microsoftTransparencyKeys()]
  for (const path of repeated['transparency-keys'] ?? []) {
    const text = (await readUserFile(path, '--transparency-keys')).toString('utf8')
    try {
      keys.push(...parseTransparencyKeys(text, path))
    } catch (err) {
      throw usageError(`--transparency-keys ${path}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  const svn = values['expect-uvm-svn']
  if (svn !== undefined && !/^\d{1,10}$/.test(svn.trim())) throw usageError('--expect-uvm-svn must be a non-negative integer')
  return {
    now,
    ...(extraRoots.length === 0 ? {} : { trustedRootFingerprints: [MICROSOFT_ROOT, ...extraRoots] }),
    transparencyKeys: keys,
    ...(values['expect-uvm-feed'] === undefined ? {} : { expectFeed: values['expect-uvm-feed'] }),
    ...(svn === undefined ? {} : { expectMinSvn: Number(svn.trim()) }),
    requireReceipt: values['require-receipt'] === 'true'
  }
}
