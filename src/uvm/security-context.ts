// The UVM security context: what the confidential-container host hands the guest about itself —
// the CCE security policy, the host's THIM document and the UVM reference info (a COSE_Sign1
// endorsement), each base64 in a file of the security-context directory or, for old hosts, in an
// environment variable (CSC pkg/common/info.go; docs/protocols.md#uvm-security-context).
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { VcekCollateral } from '../collateral/types.ts'
import { parseThimDocument } from '../collateral/thim.ts'
import { CollateralUnavailable, SidecarError } from '../errors.ts'

/** The three security-context items, decoded, and where each was found. */
export interface SecurityContext {
  dir: string | null
  securityPolicy: Buffer | null
  securityPolicyBase64: string | null
  hostAmdCert: VcekCollateral | null
  referenceInfo: Buffer | null
  referenceInfoBase64: string | null
  sources: Record<'securityPolicy' | 'hostAmdCert' | 'referenceInfo', 'file' | 'env' | 'absent'>
}

/** The UVM_* environment variables (or their Config values, config/security-context-env.ts). */
export type Env = Record<string, string | undefined>

/** A context with nothing in it: what a host without a security context hands over. */
export function emptySecurityContext (): SecurityContext {
  return {
    dir: null,
    securityPolicy: null,
    securityPolicyBase64: null,
    hostAmdCert: null,
    referenceInfo: null,
    referenceInfoBase64: null,
    sources: { securityPolicy: 'absent', hostAmdCert: 'absent', referenceInfo: 'absent' }
  }
}
type Item = keyof SecurityContext['sources']

const ITEMS: Readonly<Record<Item, { file: string, env: string }>> = {
  securityPolicy: { file: 'security-policy-base64', env: 'UVM_SECURITY_POLICY' },
  hostAmdCert: { file: 'host-amd-cert-base64', env: 'UVM_HOST_AMD_CERTIFICATE' },
  referenceInfo: { file: 'reference-info-base64', env: 'UVM_REFERENCE_INFO' }
}

// AKS Kata UVMs put the files here; ACI mounts /security-context-<random>.
const KATA_DIR = '/opt/confidential-containers/share/kata-containers'
const PREFIX = 'security-context-'
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

async function isDirectory (path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}

/** UVM_SECURITY_CONTEXT_DIR, else the first /security-context-* directory (sorted), else the Kata directory if it exists; paths under `root`. */
export async function findSecurityContextDir (options: { env: Env, root?: string }): Promise<string | null> {
  const root = options.root ?? '/'
  const configured = options.env.UVM_SECURITY_CONTEXT_DIR
  if (configured !== undefined && configured.trim() !== '') return join(root, configured.trim())
  let entries: string[] = []
  try {
    entries = (await readdir(root)).filter((name) => name.startsWith(PREFIX)).sort()
  } catch {
    // An unreadable root just means no ACI-style mount.
  }
  for (const name of entries) {
    const path = join(root, name)
    if (await isDirectory(path)) return path
  }
  const kata = join(root, KATA_DIR)
  return await isDirectory(kata) ? kata : null
}

async function readItem (dir: string | null, file: string): Promise<string | null> {
  if (dir === null) return null
  const path = join(dir, file)
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return null
    throw new CollateralUnavailable(`cannot read security context file ${path}: ${String(code ?? 'unknown error')}`,
      { cause: err, details: { file: path, errno: typeof code === 'string' ? code : null } })
  }
}

function decode (text: string, where: string): { bytes: Buffer, base64: string } {
  const base64 = text.replace(/\s+/g, '')
  // Padding, when present, must complete a 4-character group; Buffer.from would ignore the error.
  const padded = base64.endsWith('=')
  if (!BASE64.test(base64) || base64.length % 4 === 1 || (padded && base64.length % 4 !== 0)) {
    throw new CollateralUnavailable(`${where} is not base64 (${base64.length} characters)`, { details: { source: where } })
  }
  return { bytes: Buffer.from(base64, 'base64'), base64 }
}

function parseHostCert (bytes: Buffer, where: string): VcekCollateral {
  let json: unknown
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new CollateralUnavailable(`${where} does not decode to JSON`, { details: { source: where } })
  }
  try {
    return parseThimDocument(json, 'security-context')
  } catch (err) {
    const reason = err instanceof SidecarError ? err.message : 'malformed'
    throw new CollateralUnavailable(`${where} is not a THIM document: ${reason}`, { cause: err, details: { source: where } })
  }
}

function checkCoseSign1 (bytes: Buffer, where: string): void {
  // COSE_Sign1 (RFC 9052 §4.2) is a 4-element CBOR array, optionally under tag 18 (0xd2).
  const start = bytes[0] === 0xd2 ? 1 : 0
  if (bytes[start] !== 0x84) {
    throw new CollateralUnavailable(`${where} is not a COSE_Sign1 message (first byte 0x${(bytes[0] ?? 0).toString(16)}, want 0xd2 or 0x84)`,
      { details: { source: where } })
  }
}

/** Loads the three items, file first then env; absent items are null, malformed ones → CollateralUnavailable naming the file or variable. */
export async function loadSecurityContext (options: { env: Env, root?: string }): Promise<SecurityContext> {
  const dir = await findSecurityContextDir(options)
  const found: Partial<Record<Item, { bytes: Buffer, base64: string }>> = {}
  const sources: SecurityContext['sources'] = { securityPolicy: 'absent', hostAmdCert: 'absent', referenceInfo: 'absent' }
  let hostAmdCert: VcekCollateral | null = null
  for (const item of Object.keys(ITEMS) as Item[]) {
    const { file, env } = ITEMS[item]
    // An empty file means "not provided" to the reference, which then tries the variable.
    const fromFile = await readItem(dir, file)
    let text: string | undefined
    let where: string
    if (fromFile !== null && fromFile.trim() !== '') {
      text = fromFile
      where = `security context file ${join(dir ?? '', file)}`
      sources[item] = 'file'
    } else {
      text = options.env[env]
      where = `environment variable ${env}`
      if (text === undefined || text.trim() === '') continue
      sources[item] = 'env'
    }
    const decoded = decode(text, where)
    found[item] = decoded
    if (item === 'hostAmdCert') hostAmdCert = parseHostCert(decoded.bytes, where)
    if (item === 'referenceInfo') checkCoseSign1(decoded.bytes, where)
  }
  return {
    dir,
    securityPolicy: found.securityPolicy?.bytes ?? null,
    securityPolicyBase64: found.securityPolicy?.base64 ?? null,
    hostAmdCert,
    referenceInfo: found.referenceInfo?.bytes ?? null,
    referenceInfoBase64: found.referenceInfo?.base64 ?? null,
    sources
  }
}
