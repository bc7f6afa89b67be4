// The key release policy grammar and its evaluation against attestation claims (wire-protocols
// §3; SECDOCS key-management-policy-grammar.md). Pure: no I/O. Two users: the AKV/mHSM emulator
// (src/emulator/akv.ts), which decides releases with evaluateReleasePolicy, and `skr explain`
// (src/ops/explain.ts), which shows every clause met or not with explainReleasePolicy; both are
// one evaluation, so what explain prints is what the emulator decides.
//
// Choices where the sources are silent (each is UNCONFIRMED against the live service):
// - every operator of the grammar is evaluated, not only `equals`;
// - `equals`/`notEquals` compare string forms ("false" == false, "0" == 0, "100" == 100) and are
//   case-sensitive, so hex claims must be written in MAA's lowercase;
// - dotted claim names only navigate objects: a literal claim name containing a dot never matches,
//   and arrays are never entered;
// - `version` may be "1.0.0", "0.2" or absent; any other version, and any member outside the
//   grammar, makes the policy malformed (a typo such as "allof" must not silently pass).
import { RequestInvalid } from '../errors.ts'
import { decodeBase64Flexible } from '../encoding/base64.ts'

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

/** The outcome of an evaluation; `reason` names claims and authorities, never claim values. */
export interface PolicyDecision { allowed: boolean, authority: string | null, reason: string }

const OPERATORS: readonly ClaimOperator[] = ['equals', 'notEquals', 'less', 'lessOrEquals', 'greater', 'greaterOrEquals', 'exists']
const VERSIONS = new Set(['1.0.0', '0.2'])
const MAX_DEPTH = 16
const MAX_NODES = 1024
const MAX_POLICY_BYTES = 64 * 1024
const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

function malformed (where: string, what: string): RequestInvalid {
  return new RequestInvalid(`release policy malformed at ${where}: ${what}`, { details: { where } })
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
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

/** True when an authority and an issuer name the same service: trailing slashes ignored, scheme and host case-insensitive. */
export function sameAuthority (authority: string, issuer: string): boolean {
  if (typeof authority !== 'string' || typeof issuer !== 'string') return false
  const norm = (text: string): string => {
    try {
      const url = new URL(text)
      // URL lowercases scheme and host and drops a default port; the path stays case-sensitive.
      return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}${url.search}`
    } catch {
      return text.replace(/\/+$/, '')
    }
  }
  return norm(authority) === norm(issuer)
}

/** Looks a dotted claim name up in nested objects; arrays are not navigable. */
function lookup (claims: Record<string, unknown>, path: string): { found: boolean, value: unknown } {
  let current: unknown = claims
  for (const part of path.split('.')) {
    if (!isObject(current) || !Object.hasOwn(current, part)) return { found: false, value: undefined }
    current = current[part]
  }
  return { found: current !== undefined, value: current }
}

function stringForm (value: unknown): string | null {
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}

function numberForm (value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  if (typeof value === 'string' && NUMBER_TEXT.test(value)) return Number(value)
  return null
}

function claimHolds (cond: ClaimCondition, found: boolean, value: unknown): boolean {
  if (cond.operator === 'exists') return found === cond.value
  if (!found) return false
  if (cond.operator === 'equals' || cond.operator === 'notEquals') {
    const claimText = stringForm(value)
    if (claimText === null) return false
    return (claimText === stringForm(cond.value)) === (cond.operator === 'equals')
  }
  const a = numberForm(value)
  const b = numberForm(cond.value)
  if (a === null || b === null) return false
  switch (cond.operator) {
    case 'less': return a < b
    case 'lessOrEquals': return a <= b
    case 'greater': return a > b
    case 'greaterOrEquals': return a >= b
  }
}

/** One claim condition, evaluated: what the policy expects and what the claims hold. */
export interface ClaimResult {
  kind: 'claim'
  claim: string
  operator: ClaimOperator
  expected: PolicyValue
  /** Whether the claims carry it (a missing claim fails every operator but `exists: false`). */
  present: boolean
  /** The claim's value; undefined when absent. */
  actual: unknown
  met: boolean
}

/** A nested allOf/anyOf, evaluated: each of its conditions, and whether the group holds. */
export interface GroupResult {
  kind: 'allOf' | 'anyOf'
  met: boolean
  conditions: ConditionResult[]
}

/** One evaluated node of a policy's condition tree. */
export type ConditionResult = ClaimResult | GroupResult

/** One authority entry, evaluated. `met` needs both the issuer and the conditions. */
export interface AuthorityResult {
  authority: string
  /** The token's issuer is this authority (sameAuthority): only then can the entry allow a release. */
  issuerMatches: boolean
  mode: 'allOf' | 'anyOf'
  /** The conditions hold for these claims (whatever the issuer). */
  conditionsMet: boolean
  met: boolean
  conditions: ConditionResult[]
}

/** A whole policy, evaluated clause by clause against one issuer's claims. */
export interface PolicyExplanation {
  allowed: boolean
  issuer: string
  /** The first authority entry that allows the release; null when none does. */
  authority: string | null
  authorities: AuthorityResult[]
}

function explainCondition (cond: Condition, claims: Record<string, unknown>): ConditionResult {
  if (cond.kind === 'claim') {
    const { found, value } = lookup(claims, cond.claim)
    return { kind: 'claim', claim: cond.claim, operator: cond.operator, expected: cond.value, present: found, actual: value, met: claimHolds(cond, found, value) }
  }
  const conditions = cond.conditions.map((c) => explainCondition(c, claims))
  return { kind: cond.kind, met: groupHolds(cond.kind, conditions), conditions }
}

function groupHolds (mode: 'allOf' | 'anyOf', results: readonly ConditionResult[]): boolean {
  return mode === 'allOf' ? results.every((r) => r.met) : results.some((r) => r.met)
}

/**
 * Evaluates every clause of `policy` against claims issued by `issuer` (no short cut: every
 * condition of every authority entry gets a result). The release is allowed when some entry
 * names the issuer (sameAuthority) and its conditions hold.
 */
export function explainReleasePolicy (policy: ReleasePolicy, issuer: string, claims: Record<string, unknown>): PolicyExplanation {
  const authorities = policy.anyOf.map((rule): AuthorityResult => {
    const conditions = rule.conditions.map((c) => explainCondition(c, claims))
    const issuerMatches = sameAuthority(rule.authority, issuer)
    const conditionsMet = groupHolds(rule.mode, conditions)
    return { authority: rule.authority, issuerMatches, mode: rule.mode, conditionsMet, met: issuerMatches && conditionsMet, conditions }
  })
  const allowing = authorities.find((a) => a.met)
  return { allowed: allowing !== undefined, issuer, authority: allowing?.authority ?? null, authorities }
}

/** The first claim name that keeps a condition list from holding; null when it holds. */
function firstFailure (mode: 'allOf' | 'anyOf', results: readonly ConditionResult[]): string | null {
  let first: string | null = null
  for (const r of results) {
    const failed = r.kind === 'claim' ? (r.met ? null : r.claim) : firstFailure(r.kind, r.conditions)
    if (mode === 'anyOf' && failed === null) return null
    if (mode === 'allOf' && failed !== null) return failed
    first ??= failed
  }
  return mode === 'allOf' ? null : first
}

/**
 * Decides whether claims issued by `issuer` meet `policy`: some authority entry must name the
 * issuer (see sameAuthority) and its conditions must hold. Missing claims make a condition false,
 * except `exists: false`. The reason names claims and authorities, never claim values.
 */
export function evaluateReleasePolicy (policy: ReleasePolicy, issuer: string, claims: Record<string, unknown>): PolicyDecision {
  const explanation = explainReleasePolicy(policy, issuer, claims)
  const matching = explanation.authorities.filter((a) => a.issuerMatches)
  const first = matching[0]
  if (first === undefined) return { allowed: false, authority: null, reason: 'no policy authority matches the token issuer' }
  if (explanation.authority !== null) return { allowed: true, authority: explanation.authority, reason: `claims satisfy the policy of ${explanation.authority}` }
  return { allowed: false, authority: first.authority, reason: `claim ${firstFailure(first.mode, first.conditions) ?? '?'} does not satisfy the policy of ${first.authority}` }
}

/** The authorities a policy names, in order (the issuers whose tokens it can accept). */
export function policyAuthorities (policy: ReleasePolicy): string[] {
  return policy.anyOf.map((rule) => rule.authority)
}
