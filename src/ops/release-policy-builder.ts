// Builds the key release policy a confidential container's key needs, so users stop writing it by
// hand (docs/protocols.md#release-policy). The ACI preset is the reference's canonical policy (CSC
// examples/skr/aci/importkeyconfig.json, tools/importkey): one authority (the MAA endpoint) whose
// claims must all hold — HOST_DATA equal to SHA-256 of the container group's security policy, a
// Microsoft-endorsed UVM, not debuggable, VMPL 0 — with values in the string forms the reference
// uses ("false", "0"), which the service compares type-leniently. The AKS preset follows CSC
// examples/skr/aks-kata-cc/setup-key-mhsm.sh (x-ms-attestation-type == sevsnpvm; Kata UVMs carry
// no x-ms-compliance-status) plus the host-data and debug claims when known. Pure: no I/O.
import { createHash } from 'node:crypto'
import { ConfigInvalid } from '../errors.ts'
import { normaliseEndpoint } from '../http/endpoint.ts'
import { isObject } from '../text/untrusted.ts'

/** A claim condition as the policy grammar writes it; values are strings, as in the reference's policies. */
export interface ClaimEquals { claim: string, equals: string }

/** A release policy document as the vault stores it (docs/protocols.md#release-policy). */
export interface ReleasePolicyDocument {
  version: '1.0.0'
  anyOf: Array<{ authority: string, allOf: ClaimEquals[] }>
}

/** Environment presets: ACI confidential containers, or AKS confidential containers (Kata). */
export type PolicyPlatform = 'aci' | 'aks'

/** What the policy is built from. */
export interface ReleasePolicyInput {
  /** The MAA endpoint (host, host:port or https URL) whose tokens the vault must accept. */
  maaEndpoint: string
  platform: PolicyPlatform
  /** HOST_DATA as 64 hex digits (SHA-256 of the security policy); required for ACI. */
  hostData: string | null
  /** x-ms-compliance-status value; undefined = the platform's default, null = no such claim. */
  compliance?: string | null
  /** Require x-ms-sevsnpvm-is-debuggable == false (default true). */
  debugCheck?: boolean
  /** Require this x-ms-sevsnpvm-vmpl; undefined = the platform's default (ACI 0, AKS none), null = no claim. */
  vmpl?: number | null
  /** Further `claim == value` conditions, appended in order. */
  extraClaims?: readonly ClaimEquals[]
}

/** The compliance status MAA issues for a UVM whose endorsement it validated. */
export const ACI_COMPLIANCE = 'azure-compliant-uvm'

/** The MAA endpoint the reference's examples use; the default when none is given. */
export const DEFAULT_MAA_ENDPOINT = 'sharedeus.eus.attest.azure.net'

const HOST_DATA = /^[0-9a-f]{64}$/
const CLAIM_NAME = /^[A-Za-z0-9_.:-]{1,128}$/

function invalid (message: string): ConfigInvalid {
  return new ConfigInvalid(message)
}

/** SHA-256 of the security policy bytes as lowercase hex: the HOST_DATA the host sets at launch. */
export function hostDataOf (securityPolicy: Uint8Array): string {
  return createHash('sha256').update(securityPolicy).digest('hex')
}

/** Lowercases and checks a HOST_DATA hex string (64 hex digits, optional 0x); ConfigInvalid otherwise. */
export function normaliseHostData (hex: string): string {
  const h = hex.trim().replace(/^0x/i, '').toLowerCase()
  if (!HOST_DATA.test(h)) throw invalid(`host data must be 64 hex digits (SHA-256), got ${h.length} characters`)
  return h
}

/**
 * The security policy bytes from a file: the base64 form the ARM template's `ccePolicy` and the
 * security-context file `security-policy-base64` hold (decoded), or raw Rego (hashed as is).
 * Base64 is recognised when the whole file (line breaks ignored) is padded standard base64 that
 * decodes to text; Rego always has spaces, braces or quotes, which base64 cannot.
 */
export function securityPolicyFromFile (content: Buffer): { bytes: Buffer, encoding: 'base64' | 'raw' } {
  const text = content.toString('latin1').replace(/[\r\n]+/g, '')
  if (text.length > 0 && text.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    const bytes = Buffer.from(text, 'base64')
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes)
      return { bytes, encoding: 'base64' }
    } catch {
      // Not text once decoded: it was never base64 of a Rego policy.
    }
  }
  return { bytes: Buffer.from(content), encoding: 'raw' }
}

/** Parses `name=value` (the first `=` splits; the value may be empty); ConfigInvalid when malformed. */
export function parseExtraClaim (text: string): ClaimEquals {
  const eq = text.indexOf('=')
  const claim = eq === -1 ? '' : text.slice(0, eq).trim()
  if (!CLAIM_NAME.test(claim)) throw invalid(`--extra-claim wants name=value with a claim name of letters, digits and _.:-, got ${JSON.stringify(text.slice(0, 60))}`)
  return { claim, equals: text.slice(eq + 1) }
}

/** `https://<host[:port]>` for an MAA endpoint (as the reference builds the authority); ConfigInvalid if malformed. */
export function authorityOf (maaEndpoint: string): string {
  try {
    return `https://${normaliseEndpoint(maaEndpoint, '--maa-endpoint')}`
  } catch (err) {
    throw invalid(err instanceof Error ? err.message : 'invalid --maa-endpoint')
  }
}

/** Builds the policy document; ConfigInvalid for an ACI policy without host data, a malformed value or a repeated claim. */
export function buildReleasePolicy (input: ReleasePolicyInput): ReleasePolicyDocument {
  const { platform } = input
  if (platform !== 'aci' && platform !== 'aks') throw invalid(`platform must be aci or aks, got ${JSON.stringify(platform)}`)
  const authority = authorityOf(input.maaEndpoint)
  const hostData = input.hostData === null ? null : normaliseHostData(input.hostData)
  if (platform === 'aci' && hostData === null) {
    throw invalid('an ACI release policy needs the host data: pass --security-policy FILE or --host-data HEX, or run inside the container group')
  }
  const compliance = input.compliance === undefined ? (platform === 'aci' ? ACI_COMPLIANCE : null) : input.compliance
  const vmpl = input.vmpl === undefined ? (platform === 'aci' ? 0 : null) : input.vmpl
  if (vmpl !== null && !(Number.isInteger(vmpl) && vmpl >= 0 && vmpl <= 3)) throw invalid('vmpl must be an integer 0..3')

  const allOf: ClaimEquals[] = []
  if (platform === 'aks') allOf.push({ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' })
  if (hostData !== null) allOf.push({ claim: 'x-ms-sevsnpvm-hostdata', equals: hostData })
  if (compliance !== null) allOf.push({ claim: 'x-ms-compliance-status', equals: compliance })
  if (input.debugCheck ?? true) allOf.push({ claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' })
  if (vmpl !== null) allOf.push({ claim: 'x-ms-sevsnpvm-vmpl', equals: String(vmpl) })
  for (const extra of input.extraClaims ?? []) {
    const checked = parseExtraClaim(`${extra.claim}=${extra.equals}`)
    // A second condition on the same claim would either repeat or contradict the first.
    if (allOf.some((c) => c.claim === checked.claim)) throw invalid(`claim ${checked.claim} is already in the policy`)
    allOf.push(checked)
  }
  if (allOf.length === 0) throw invalid('the policy would have no conditions: any token from the authority could release the key')
  return { version: '1.0.0', anyOf: [{ authority, allOf }] }
}

/** True when the policy pins HOST_DATA (without it, any guest the authority attests qualifies). */
export function pinsHostData (policy: ReleasePolicyDocument): boolean {
  return policy.anyOf.every((rule) => rule.allOf.some((c) => c.claim === 'x-ms-sevsnpvm-hostdata'))
}

/** The policy as the UTF-8 JSON bytes a vault stores (compact, as the reference marshals it). */
export function encodeReleasePolicy (policy: unknown): Buffer {
  return Buffer.from(JSON.stringify(policy), 'utf8')
}

function checkConditions (list: unknown, where: string, depth: number): void {
  if (!Array.isArray(list) || list.length === 0) throw invalid(`release policy ${where} must be a non-empty array`)
  if (depth > 16) throw invalid(`release policy ${where} is nested too deeply`)
  list.forEach((node, i) => {
    const at = `${where}[${i}]`
    if (!isObject(node)) throw invalid(`release policy ${at} must be an object`)
    if ('claim' in node) {
      if (typeof node['claim'] !== 'string' || node['claim'] === '') throw invalid(`release policy ${at}.claim must be a non-empty string`)
      return
    }
    const mode = 'allOf' in node ? 'allOf' : 'anyOf' in node ? 'anyOf' : null
    if (mode === null) throw invalid(`release policy ${at} needs claim, allOf or anyOf`)
    checkConditions(node[mode], `${at}.${mode}`, depth + 1)
  })
}

/**
 * Parses a user's policy file: JSON with a non-empty `anyOf` of `{authority: https URL,
 * allOf|anyOf: [...]}`. A light shape check so a typo fails here with exit 2, not at the vault;
 * the vault remains the judge of the grammar. ConfigInvalid when malformed.
 */
export function parsePolicyDocument (text: string): Record<string, unknown> {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw invalid('release policy file is not JSON')
  }
  if (!isObject(doc)) throw invalid('release policy must be a JSON object')
  const list = doc['anyOf']
  if (!Array.isArray(list) || list.length === 0) throw invalid('release policy anyOf must be a non-empty array of authorities')
  list.forEach((rule, i) => {
    if (!isObject(rule)) throw invalid(`release policy anyOf[${i}] must be an object`)
    const authority = rule['authority']
    let https = false
    try {
      https = typeof authority === 'string' && new URL(authority).protocol === 'https:'
    } catch {
      // Not a URL: https stays false.
    }
    if (!https) throw invalid(`release policy anyOf[${i}].authority must be an https URL`)
    const mode = 'allOf' in rule ? 'allOf' : 'anyOf' in rule ? 'anyOf' : null
    if (mode === null) throw invalid(`release policy anyOf[${i}] needs allOf or anyOf`)
    checkConditions(rule[mode], `anyOf[${i}].${mode}`, 1)
  })
  return doc
}
