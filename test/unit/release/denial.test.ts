// A policy denial says which claims skr presented (src/release/denial.ts): the policy claims and the
// issuer, typed as in the token, and nothing else of the token.
import t from 'tap'
import { AccessDenied, KeyReleaseDenied, UpstreamUnavailable } from '../../../src/errors.ts'
import { decodeTokenClaims, POLICY_CLAIMS } from '../../../src/maa/token.ts'
import { claimValueText, isPolicyDenial, presentedClaimsText, withPresentedClaims } from '../../../src/release/denial.ts'

const jwt = (claims: unknown): string => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2lnbmF0dXJl`
const DENIED = 'AKV denied the key release: Forbidden: Target environment attestation statement cannot be verified.'

t.test('the claims policies test, in order', async t => {
  t.same(POLICY_CLAIMS, [
    'x-ms-attestation-type', 'x-ms-compliance-status', 'x-ms-sevsnpvm-hostdata',
    'x-ms-sevsnpvm-is-debuggable', 'x-ms-sevsnpvm-vmpl', 'x-ms-sevsnpvm-launchmeasurement'
  ])
})

t.test('decodeTokenClaims reads a payload and refuses what is not a JWT', async t => {
  t.same(decodeTokenClaims(jwt({ a: 1 })), { a: 1 })
  for (const bad of ['', 'a.b', 'a.b.c.d', 'x.!!!.y', `x.${Buffer.from('[1]').toString('base64url')}.y`, `x.${Buffer.from('nope').toString('base64url')}.y`, 42 as unknown as string]) {
    t.equal(decodeTokenClaims(bad), null, JSON.stringify(bad))
  }
})

t.test('values keep their JSON type; odd ones are not shown', async t => {
  const table: Array<[unknown, string]> = [
    ['sevsnpvm', '"sevsnpvm"'],
    [false, 'false'],
    [0, '0'],
    [null, 'null'],
    [undefined, 'absent'],
    [Number.NaN, '(not shown)'],
    [{ nested: true }, '(not shown)'],
    [['a'], '(not shown)'],
    ['line\nbreak', '(not shown)'],
    ['x'.repeat(201), '(not shown)'],
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', '(not shown)'],
    ['ab'.repeat(48), `"${'ab'.repeat(48)}"`]
  ]
  for (const [value, text] of table) t.equal(claimValueText(value), text, JSON.stringify(value) ?? 'undefined')
  t.equal(presentedClaimsText({ iss: 'https://m', 'x-ms-sevsnpvm-vmpl': 0, 'x-ms-runtime': { keys: [] } }),
    'iss="https://m", x-ms-attestation-type absent, x-ms-compliance-status absent, x-ms-sevsnpvm-hostdata absent, ' +
    'x-ms-sevsnpvm-is-debuggable absent, x-ms-sevsnpvm-vmpl=0, x-ms-sevsnpvm-launchmeasurement absent')
  t.equal(presentedClaimsText(Object.create({ iss: 'inherited' }) as Record<string, unknown>).startsWith('iss absent'), true, 'own claims only')
})

t.test('only a policy denial is explained; the rest passes unchanged', async t => {
  const token = jwt({ iss: 'https://m', 'x-ms-attestation-type': 'sevsnpvm', 'x-ms-runtime': { keys: [{ n: 'MODULUS' }] } })
  const policy = new KeyReleaseDenied(DENIED, { details: { upstream: 'akv', upstreamInnerCode: 'AccessDenied' } })
  t.ok(isPolicyDenial(policy))
  const explained = withPresentedClaims(policy, token) as KeyReleaseDenied
  t.type(explained, KeyReleaseDenied)
  t.equal(explained.message, `${DENIED} Claims presented: iss="https://m", x-ms-attestation-type="sevsnpvm", x-ms-compliance-status absent, ` +
    'x-ms-sevsnpvm-hostdata absent, x-ms-sevsnpvm-is-debuggable absent, x-ms-sevsnpvm-vmpl absent, x-ms-sevsnpvm-launchmeasurement absent')
  t.equal(explained.cause, policy)
  t.same({ ...explained.details }, { upstream: 'akv', upstreamInnerCode: 'AccessDenied', claimsShown: true })
  t.notMatch(explained.message, /MODULUS|c2lnbmF0dXJl|eyJ/)

  const noStop = withPresentedClaims(new KeyReleaseDenied('AKV denied the key release: HTTP 403 attestation'), token) as Error
  t.match(noStop.message, /^AKV denied the key release: HTTP 403 attestation; Claims presented: /, 'a separator when the sentence has no full stop')

  const notExportable = new KeyReleaseDenied('AKV denied the key release: token ok but KeyNotExportable', { details: { upstreamInnerCode: 'KeyNotExportable' } })
  const others = [notExportable, new AccessDenied('AKV denied the identity: Forbidden: attestation'), new UpstreamUnavailable('attestation down'), new Error('attestation'), 'attestation']
  for (const other of others) {
    t.notOk(isPolicyDenial(other), String(other))
    t.equal(withPresentedClaims(other, token), other, `${String(other)}: unchanged`)
  }
  t.equal(withPresentedClaims(policy, 'not-a-jwt'), policy, 'a token without readable claims: unchanged')
})
