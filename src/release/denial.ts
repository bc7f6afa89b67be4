// Saying why a release was refused. AKV answers a policy it finds unmet with one fixed sentence
// ("Target environment attestation statement cannot be verified."), whichever claim failed. The
// vault has the policy; skr has the token it presented. So a policy denial is answered with the
// claims of that token that release policies commonly test (maa/token.ts POLICY_CLAIMS) and its
// issuer, which the caller can compare with the key's policy (`skr explain` does it for them).
// The claims describe the TEE and are not secrets (docs/security.md, "What errors reveal"); the
// token itself, its signature and its runtime keys are never shown. Pure: no I/O.
import { isSidecarError, KeyReleaseDenied } from '../errors.ts'
import { decodeTokenClaims, POLICY_CLAIMS } from '../maa/token.ts'
import { isTokenShaped } from '../text/untrusted.ts'

const MAX_TEXT = 200
const PRINTABLE = /^[\x20-\x7e]*$/

/**
 * True for AKV's refusal of the attestation statement (a policy the claims do not meet, or a token
 * it no longer accepts): ERR_KEY_RELEASE_DENIED whose text is about the attestation or the token,
 * and not a non-exportable key, which no token or policy change on the TEE side can fix.
 */
export function isPolicyDenial (err: unknown): boolean {
  return isSidecarError(err) && err.code === 'ERR_KEY_RELEASE_DENIED' &&
    err.details['upstreamInnerCode'] !== 'KeyNotExportable' && /attestation|token/i.test(err.message)
}

/** One claim value as a denial shows it: JSON-typed (`"sevsnpvm"`, `false`, `0`), `absent`, or `(not shown)` when its shape is unexpected. */
export function claimValueText (value: unknown): string {
  if (value === undefined) return 'absent'
  if (value === null || typeof value === 'boolean') return String(value)
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '(not shown)'
  if (typeof value === 'string' && value.length <= MAX_TEXT && PRINTABLE.test(value) && !isTokenShaped(value)) return JSON.stringify(value)
  return '(not shown)'
}

/** `iss="https://…", x-ms-attestation-type="sevsnpvm", …` for the policy claims of `claims`. */
export function presentedClaimsText (claims: Readonly<Record<string, unknown>>): string {
  return ['iss', ...POLICY_CLAIMS].map((name) => {
    const value = Object.hasOwn(claims, name) ? claims[name] : undefined
    return value === undefined ? `${name} absent` : `${name}=${claimValueText(value)}`
  }).join(', ')
}

/**
 * A policy denial (isPolicyDenial) re-thrown with the claims `maaToken` presented appended to its
 * message (same class, code, status and details, the original as `cause`); anything else, or a
 * token whose payload cannot be read, is returned unchanged.
 */
export function withPresentedClaims (err: unknown, maaToken: string): unknown {
  if (!isPolicyDenial(err)) return err
  const claims = decodeTokenClaims(maaToken)
  if (claims === null) return err
  const denied = err as KeyReleaseDenied
  const said = denied.message.replace(/\s+$/, '')
  return new KeyReleaseDenied(`${said}${/[.!]$/.test(said) ? '' : ';'} Claims presented: ${presentedClaimsText(claims)}`, {
    cause: err,
    details: { ...denied.details, claimsShown: true }
  })
}
