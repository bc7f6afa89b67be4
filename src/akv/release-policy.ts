// The key release policy grammar (docs/protocols.md#release-policy; SECDOCS
// key-management-policy-grammar.md): `release_policy.data` parsed and validated into a
// ReleasePolicy. Pure: no I/O. Its evaluation against attestation claims, shared by the AKV/mHSM
// emulator and `skr explain`, is ./release-policy-evaluate.ts.
//
// Choices where the sources are silent (each is UNCONFIRMED against the live service; the
// evaluation's own are in ./release-policy-evaluate.ts):
// - `version` may be "1.0.0", "0.2" or absent; any other version, and any member outside the
//   grammar, makes the policy malformed (a typo such as "allof" must not silently pass).
import { RequestInvalid } from '../errors.ts'
import { decodeBase64Flexible } from '../encoding/base64.ts'
import { isObject } from '../text/untrusted.ts'

/** A value a claim condition compares against (objects and arrays are not allowed). */
export type PolicyValue = string | number | boolean

/** The claim operators of the grammar. */
export type ClaimOperator = 'equals' | 'notEquals' | 'less' | 'lessOrEquals' | 'greater' | 'greaterOrEquals' | 'exists'

/** `{claim, <operator>: value}` (or the legacy `{claim, condition, value}`). */
export interface ClaimCondition { kind: 'claim', claim: string, operator: ClaimOperator, value: PolicyValue }

/** A nested `{allOf: [...]}` or `{anyOf: [...]}`. */
export interface GroupCondition { kind: 'allOf' | 'anyOf', conditions: Condition[] }

/** One node of a policy's condition tree. */
export type Condition = ClaimCondition | GroupCondition

/** One entry of the policy's top-level `anyOf`: an issuer and the conditions its claims must meet. */
export interface AuthorityRule { authority: string, mode: 'allOf' | 'anyOf', conditions: Condition[] }

/** A parsed, validated release policy. */
export interface ReleasePolicy { version: string | null, anyOf: AuthorityRule[] }

const OPERATORS: readonly ClaimOperator[] = ['equals', 'notEquals', 'less', 'lessOrEquals', 'greater', 'greaterOrEquals', 'exists']
const VERSIONS = new Set(['1.0.0', '0.2'])
const MAX_DEPTH = 16
const MAX_NODES = 1024
const MAX_POLICY_BYTES = 64 * 1024

function malformed (where: string, what: string): RequestInvalid {
  return new RequestInvalid(`release policy malformed at ${where}: ${what}`, { details: { where } })
}

function checkMembers (obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const name of Object.keys(obj)) {
    if (!allowed.includes(name)) throw malformed(where, `unexpected member "${name.slice(0, 40)}"`)
  }
}

function isOperator (name: unknown): name is ClaimOperator {
  return typeof name === 'string' && (OPERATORS as readonly string[]).includes(name)
}

function parseValue (value: unknown, operator: ClaimOperator, where: string): PolicyValue {
  if (operator === 'exists') {
    // Booleans, or their string forms in keeping with the type-lenient comparisons.
    if (value === true || value === 'true') return true
    if (value === false || value === 'false') return false
    throw malformed(where, 'exists needs true or false')
  }
  if (typeof value === 'string' || typeof value === 'boolean') return value
  if (typeof value === 'number' && Number.isFinite(value)) return value
  throw malformed(where, 'value must be a string, number or boolean')
}

interface Budget { nodes: number }

function parseClaim (node: Record<string, unknown>, where: string): ClaimCondition {
  const claim = node['claim']
  if (typeof claim !== 'string' || claim === '' || claim.split('.').some((part) => part === '')) {
    throw malformed(where, 'claim must be a non-empty (dotted) name')
  }
  if ('condition' in node) {
    // Legacy form (7.6-preview.2 ReleasePolicy-example; azure-sdk-for-js PR #16150).
    checkMembers(node, ['claim', 'condition', 'value'], where)
    const operator = node['condition']
    if (!isOperator(operator)) throw malformed(where, 'unknown condition')
    return { kind: 'claim', claim, operator, value: parseValue(node['value'], operator, where) }
  }
  const operators = Object.keys(node).filter((name) => name !== 'claim')
  if (operators.length !== 1) throw malformed(where, 'a claim condition needs exactly one operator')
  const operator = operators[0]
  if (!isOperator(operator)) throw malformed(where, `unknown operator "${String(operator).slice(0, 40)}"`)
  return { kind: 'claim', claim, operator, value: parseValue(node[operator], operator, where) }
}

function parseConditions (list: unknown, where: string, depth: number, budget: Budget): Condition[] {
  if (!Array.isArray(list) || list.length === 0) throw malformed(where, 'must be a non-empty array')
  return list.map((node, i) => parseCondition(node, `${where}[${i}]`, depth, budget))
}

function parseCondition (node: unknown, where: string, depth: number, budget: Budget): Condition {
  if (++budget.nodes > MAX_NODES) throw malformed(where, 'too many conditions')
  if (depth > MAX_DEPTH) throw malformed(where, 'nested too deeply')
  if (!isObject(node)) throw malformed(where, 'condition must be an object')
  if ('claim' in node) return parseClaim(node, where)
  const mode = groupMode(node, where)
  checkMembers(node, [mode], where)
  return { kind: mode, conditions: parseConditions(node[mode], `${where}.${mode}`, depth + 1, budget) }
}

function groupMode (node: Record<string, unknown>, where: string): 'allOf' | 'anyOf' {
  const hasAll = 'allOf' in node
  const hasAny = 'anyOf' in node
  if (hasAll === hasAny) throw malformed(where, 'needs exactly one of allOf, anyOf')
  return hasAll ? 'allOf' : 'anyOf'
}

function parseAuthority (node: unknown, where: string, budget: Budget): AuthorityRule {
  if (!isObject(node)) throw malformed(where, 'authority entry must be an object')
  const authority = node['authority']
  if (typeof authority !== 'string' || !isHttpsUrl(authority)) throw malformed(where, 'authority must be an https URL')
  const mode = groupMode(node, where)
  checkMembers(node, ['authority', mode], where)
  return { authority, mode, conditions: parseConditions(node[mode], `${where}.${mode}`, 1, budget) }
}

function isHttpsUrl (text: string): boolean {
  try {
    return new URL(text).protocol === 'https:'
  } catch {
    return false
  }
}

/** Validates a decoded policy document (the JSON inside `release_policy.data`). */
export function releasePolicyFromJson (doc: unknown): ReleasePolicy {
  if (!isObject(doc)) throw malformed('$', 'policy must be a JSON object')
  checkMembers(doc, ['version', 'anyOf'], '$')
  const version = doc['version']
  if (version !== undefined && (typeof version !== 'string' || !VERSIONS.has(version))) {
    throw malformed('$.version', 'version must be "1.0.0", "0.2" or absent')
  }
  const list = doc['anyOf']
  if (!Array.isArray(list) || list.length === 0) throw malformed('$.anyOf', 'must be a non-empty array')
  const budget: Budget = { nodes: 0 }
  return { version: version ?? null, anyOf: list.map((node, i) => parseAuthority(node, `$.anyOf[${i}]`, budget)) }
}

/** Decodes `release_policy.data` (b64url or standard b64, padded or not) into its JSON bytes; RequestInvalid if malformed. */
export function decodePolicyData (data: string): Buffer {
  if (typeof data !== 'string' || data === '') throw malformed('data', 'must be a non-empty base64 string')
  const bytes = decodeBase64Flexible(data)
  if (bytes === null || bytes.length === 0) throw malformed('data', 'not base64 or base64url')
  if (bytes.length > MAX_POLICY_BYTES) throw malformed('data', `larger than ${MAX_POLICY_BYTES} bytes`)
  return bytes
}

/** Parses `release_policy.data` as sent on the wire; throws RequestInvalid (the emulator's 400 BadParameter) when malformed. */
export function parseReleasePolicy (data: string): ReleasePolicy {
  const bytes = decodePolicyData(data)
  let doc: unknown
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw malformed('data', 'not UTF-8 JSON')
  }
  return releasePolicyFromJson(doc)
}

/** The authorities a policy names, in order (the issuers whose tokens it can accept). */
export function policyAuthorities (policy: ReleasePolicy): string[] {
  return policy.anyOf.map((rule) => rule.authority)
}
