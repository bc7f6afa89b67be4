// `skr explain`'s logic, pure: a key's release policy (as the vault returns it) and the claims of
// an MAA token, evaluated clause by clause with the same evaluator the AKV emulator decides
// releases with (akv/release-policy-evaluate.ts explainReleasePolicy), and rendered as text or JSON with
// every clause met or not, its expected and its actual value. The token itself is never printed:
// only its claims, which describe the TEE (docs/security.md). The I/O (the vault, the sidecar, a
// file) is in explain-sources.ts.
import { ConfigInvalid, UpstreamResponseInvalid } from '../errors.ts'
import { releasePolicyFromJson, type ReleasePolicy } from '../akv/release-policy.ts'
import { explainReleasePolicy, type ConditionResult, type PolicyExplanation } from '../akv/release-policy-evaluate.ts'
import { decodeTokenClaims } from '../maa/token.ts'
import { hasControl, oneLine } from '../text/untrusted.ts'

/** Where the claims came from, for the report. */
export type ClaimsSource =
  | { kind: 'sidecar', url: string, maaEndpoint: string }
  | { kind: 'token-file', path: string }

/** A key as read from the vault: what explain needs of it. */
export interface VaultKeyPolicy {
  keyId: string
  exportable: boolean | null
  /** The policy document as the vault returned it (JSON), or null when the key has none. */
  policy: unknown
}

/** The outcome of one explanation, ready to render. */
export interface ExplainReport {
  vault: string
  keyId: string
  source: ClaimsSource
  explanation: PolicyExplanation
  /** The token's exp as ISO text, and whether it is past (the vault refuses expired tokens whatever the policy). */
  tokenExpires: string | null
  tokenExpired: boolean
  /** The key's exportable attribute (null when the vault did not say). */
  exportable: boolean | null
  warnings: string[]
  policy: unknown
}

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/**
 * The MAA token in a saved file: the compact JWT itself, or the JSON `/attest/maa` answered
 * (`{"token": "…"}`). ConfigInvalid (a usage error) when it is neither; the message never quotes the file.
 */
export function tokenFromText (text: string): string {
  const trimmed = text.trim()
  if (JWT.test(trimmed)) return trimmed
  if (trimmed.startsWith('{')) {
    try {
      const token = (JSON.parse(trimmed) as { token?: unknown } | null)?.token
      if (typeof token === 'string' && JWT.test(token)) return token
    } catch {
      // Reported below.
    }
  }
  throw new ConfigInvalid('--token: the file holds neither an MAA token (a compact JWT) nor the JSON /attest/maa answers ({"token": "…"})')
}

/** The claims of a token (unverified); ConfigInvalid (a usage error) when its payload is not a JSON object. */
export function claimsOfToken (token: string, from: 'file' | 'sidecar' = 'file'): Record<string, unknown> {
  const claims = decodeTokenClaims(token)
  if (claims !== null) return claims
  // A file the operator named is a usage error; a sidecar answering 200 with a bad token is not.
  if (from === 'sidecar') throw new UpstreamResponseInvalid('the sidecar\'s MAA token payload is not a JSON object', { details: { upstream: 'maa' } })
  throw new ConfigInvalid('the MAA token\'s payload is not a JSON object')
}

/** The parsed policy of a vault key; UpstreamResponseInvalid when it has none or it is malformed. */
export function policyOfKey (key: VaultKeyPolicy): ReleasePolicy {
  if (key.policy === null || key.policy === undefined) {
    throw new UpstreamResponseInvalid(`${key.keyId} has no release policy: the vault cannot release it`, { details: { upstream: 'akv' } })
  }
  try {
    return releasePolicyFromJson(key.policy)
  } catch (err) {
    const why = err instanceof Error ? err.message : 'malformed'
    throw new UpstreamResponseInvalid(`${key.keyId}: the vault returned a ${why}`, { cause: err, details: { upstream: 'akv' } })
  }
}

function isoOf (seconds: unknown): string | null {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return null
  const date = new Date(seconds * 1000)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}

/** Evaluates the key's policy against the claims (their `iss` is the issuer the vault would see). */
export function buildReport (input: { vault: string, key: VaultKeyPolicy, claims: Record<string, unknown>, source: ClaimsSource, now: Date }): ExplainReport {
  const policy = policyOfKey(input.key)
  const iss = input.claims['iss']
  const issuer = typeof iss === 'string' ? iss : ''
  const explanation = explainReleasePolicy(policy, issuer, input.claims)
  const tokenExpires = isoOf(input.claims['exp'])
  const exp = input.claims['exp']
  const tokenExpired = typeof exp === 'number' && exp * 1000 <= input.now.getTime()
  const warnings: string[] = []
  if (issuer === '') warnings.push('the token has no iss claim: no authority can match it')
  if (tokenExpired) warnings.push(`the token expired at ${tokenExpires ?? '?'}: the vault refuses an expired token whatever the policy says (take a fresh one)`)
  if (input.key.exportable === false) warnings.push('the key is not exportable: the vault refuses to release it whatever the claims')
  return { vault: input.vault, keyId: input.key.keyId, source: input.source, explanation, tokenExpires, tokenExpired, exportable: input.key.exportable, warnings, policy: input.key.policy }
}

const MAX_SHOWN = 200

/** Untrusted text (an issuer, a claim name, an authority from the vault or an unverified token) as printed: JSON-quoted with every control escaped when it has one, so it cannot forge a line. */
export function safeText (text: string): string {
  return oneLine(hasControl(text) ? JSON.stringify(text) : text, { escape: true, max: MAX_SHOWN })
}

/** A value as the report shows it: JSON-typed (`"sevsnpvm"`, `false`, `0`), `absent`, long or odd values shortened. */
export function valueText (value: unknown, present = true): string {
  if (!present || value === undefined) return 'absent'
  return oneLine(JSON.stringify(value) ?? String(value), { escape: true, max: MAX_SHOWN })
}

const OPERATOR_TEXT: Readonly<Record<string, string>> = {
  equals: 'equals',
  notEquals: 'not equals',
  less: '<',
  lessOrEquals: '<=',
  greater: '>',
  greaterOrEquals: '>=',
  exists: 'exists'
}

function modeText (mode: 'allOf' | 'anyOf'): string {
  return mode === 'allOf' ? 'allOf (all must hold)' : 'anyOf (one must hold)'
}

function mark (met: boolean): string {
  return met ? 'met    ' : 'NOT MET'
}

function conditionLines (results: readonly ConditionResult[], indent: string): string[] {
  const lines: string[] = []
  for (const r of results) {
    if (r.kind === 'claim') {
      lines.push(`${indent}${mark(r.met)}  ${safeText(r.claim)} ${OPERATOR_TEXT[r.operator] ?? safeText(r.operator)} ${valueText(r.expected)}; actual ${valueText(r.actual, r.present)}`)
    } else {
      lines.push(`${indent}${mark(r.met)}  ${modeText(r.kind)}:`)
      lines.push(...conditionLines(r.conditions, `${indent}    `))
    }
  }
  return lines
}

function sourceText (source: ClaimsSource): string {
  return source.kind === 'sidecar'
    ? `a token from the sidecar at ${source.url} (maa_endpoint ${source.maaEndpoint})`
    : `the token in ${source.path}`
}

/** The human-readable report. */
export function renderText (report: ExplainReport): string {
  const { explanation } = report
  const lines = [
    `key:    ${report.keyId}`,
    `claims: ${sourceText(report.source)}, read without verifying its signature`,
    `issuer: ${explanation.issuer === '' ? '(none)' : safeText(explanation.issuer)}${report.tokenExpires === null ? '' : `; expires ${report.tokenExpires}${report.tokenExpired ? ' (EXPIRED)' : ''}`}`,
    ''
  ]
  for (const a of explanation.authorities) {
    const issuerNote = a.issuerMatches ? 'the token\'s issuer' : 'NOT the token\'s issuer: this entry cannot allow the release'
    lines.push(`${mark(a.met)}  authority ${safeText(a.authority)} (${issuerNote}), ${modeText(a.mode)}:`)
    lines.push(...conditionLines(a.conditions, '    '))
  }
  lines.push('')
  lines.push(explanation.allowed
    ? releasable(report)
      ? `MET: the policy of ${safeText(explanation.authority ?? '')} allows releasing this key to these claims.`
      : 'NOT MET: the policy is met, but the vault will refuse this release anyway (see the warnings below).'
    : explanation.authorities.some((a) => a.issuerMatches)
      ? 'NOT MET: the vault will refuse to release this key to these claims (the clauses marked NOT MET say why).'
      : 'NOT MET: no authority of the policy is the token\'s issuer; the maa_endpoint must be one the policy names.')
  for (const warning of report.warnings) lines.push(`warning: ${warning}`)
  return lines.join('\n') + '\n'
}

/**
 * Whether the vault would release: the policy is met, the token has not expired and the key is
 * exportable (an expired token or a non-exportable key is refused whatever the policy says).
 */
export function releasable (report: ExplainReport): boolean {
  return report.explanation.allowed && !report.tokenExpired && report.exportable !== false
}

/** The JSON report (`--json`): the explanation as evaluated, plus where the claims came from. */
export function renderJson (report: ExplainReport): Record<string, unknown> {
  return {
    vault: report.vault,
    keyId: report.keyId,
    allowed: report.explanation.allowed,
    releasable: releasable(report),
    authority: report.explanation.authority,
    issuer: report.explanation.issuer,
    claimsSource: report.source,
    tokenExpires: report.tokenExpires,
    tokenExpired: report.tokenExpired,
    authorities: report.explanation.authorities,
    warnings: report.warnings,
    policy: report.policy
  }
}
