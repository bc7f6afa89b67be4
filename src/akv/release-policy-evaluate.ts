// The evaluation of a key release policy against attestation claims
// (docs/protocols.md#release-policy; SECDOCS key-management-policy-grammar.md). Pure: no I/O. The
// grammar and its parsing are in ./release-policy.ts. The AKV/mHSM emulator decides releases with
// evaluateReleasePolicy and `skr explain` shows every clause with explainReleasePolicy: both are
// one evaluation, so what explain prints is what the emulator decides.
//
// Choices where the sources are silent (each is UNCONFIRMED against the live service):
// - every operator of the grammar is evaluated, not only `equals`;
// - `equals`/`notEquals` compare string forms ("false" == false, "0" == 0, "100" == 100) and are
//   case-sensitive, so hex claims must be written in MAA's lowercase;
// - dotted claim names only navigate objects: a literal claim name containing a dot never matches,
//   and arrays are never entered.
import { isObject } from '../text/untrusted.ts'
import type { ClaimCondition, ClaimOperator, Condition, PolicyValue, ReleasePolicy } from './release-policy.ts'

/** The outcome of an evaluation; `reason` names claims and authorities, never claim values. */
export interface PolicyDecision { allowed: boolean, authority: string | null, reason: string }

const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

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
