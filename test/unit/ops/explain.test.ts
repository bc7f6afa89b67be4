// `skr explain`'s pure part: reading a saved token, evaluating a vault key's policy against its
// claims, and the text and JSON reports (never the token).
import t from 'tap'
import { buildReport, claimsOfToken, policyOfKey, releasable, renderJson, renderText, safeText, tokenFromText, valueText, type VaultKeyPolicy } from '../../../src/ops/explain.ts'

const MAA = 'https://sharedeus.eus.attest.azure.net'
const HOSTDATA = 'ab'.repeat(32)
const NOW = new Date('2025-06-01T12:00:00Z')
const claims = {
  iss: MAA,
  exp: NOW.getTime() / 1000 + 3600,
  'x-ms-attestation-type': 'sevsnpvm',
  'x-ms-sevsnpvm-hostdata': HOSTDATA,
  'x-ms-sevsnpvm-is-debuggable': false,
  'x-ms-sevsnpvm-vmpl': 0
}
const SIGNATURE = 'c2lnbmF0dXJlLW9mLXRoZS10b2tlbg'
const TOKEN = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${SIGNATURE}`
const policy = (hostData: string): unknown => ({
  version: '1.0.0',
  anyOf: [{
    authority: MAA,
    allOf: [
      { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' },
      { claim: 'x-ms-sevsnpvm-hostdata', equals: hostData },
      { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
      { anyOf: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }, { claim: 'x-ms-compliance-status', equals: 'azure-compliant-uvm' }] }
    ]
  }]
})
const key = (p: unknown, exportable: boolean | null = true): VaultKeyPolicy => ({ keyId: 'https://v.vault.azure.net/keys/k/1', exportable, policy: p })
const source = { kind: 'token-file' as const, path: 'token.jwt' }

t.test('tokenFromText takes the JWT or the /attest/maa answer, and refuses the rest without quoting it', async t => {
  t.equal(tokenFromText(`${TOKEN}\n`), TOKEN)
  t.equal(tokenFromText(JSON.stringify({ token: TOKEN })), TOKEN)
  for (const bad of ['', 'hello', '{"token": 1}', '{"token": "a.b"}', '{not json', 'a.b.c.d']) {
    t.throws(() => tokenFromText(bad), { code: 'ERR_CONFIG_INVALID', message: /^--token: the file holds neither/ }, JSON.stringify(bad))
  }
  t.same(claimsOfToken(TOKEN), claims)
  t.throws(() => claimsOfToken('a.b.c'), { code: 'ERR_CONFIG_INVALID' })
})

t.test('policyOfKey: none, or malformed, is the vault\'s problem (exit 1), not a usage error', async t => {
  t.throws(() => policyOfKey(key(null)), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: 'https://v.vault.azure.net/keys/k/1 has no release policy: the vault cannot release it' })
  t.throws(() => policyOfKey(key({ anyOf: [{ authority: MAA, allof: [] }] })), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: /the vault returned a release policy malformed at \$\.anyOf\[0\]/ })
})

t.test('a met policy', async t => {
  const report = buildReport({ vault: 'v.vault.azure.net', key: key(policy(HOSTDATA)), claims, source, now: NOW })
  t.equal(report.explanation.allowed, true)
  t.same(report.warnings, [])
  const text = renderText(report)
  t.equal(text, [
    'key:    https://v.vault.azure.net/keys/k/1',
    'claims: the token in token.jwt, read without verifying its signature',
    `issuer: ${MAA}; expires 2025-06-01T13:00:00.000Z`,
    '',
    `met      authority ${MAA} (the token's issuer), allOf (all must hold):`,
    '    met      x-ms-attestation-type equals "sevsnpvm"; actual "sevsnpvm"',
    `    met      x-ms-sevsnpvm-hostdata equals "${HOSTDATA}"; actual "${HOSTDATA}"`,
    '    met      x-ms-sevsnpvm-is-debuggable equals "false"; actual false',
    '    met      anyOf (one must hold):',
    '        met      x-ms-sevsnpvm-vmpl equals "0"; actual 0',
    '        NOT MET  x-ms-compliance-status equals "azure-compliant-uvm"; actual absent',
    '',
    `MET: the policy of ${MAA} allows releasing this key to these claims.`,
    ''
  ].join('\n'))
})

t.test('an unmet policy: which clause, expected and actual; warnings for what the policy cannot show', async t => {
  const expired = { ...claims, exp: NOW.getTime() / 1000 - 1 }
  const report = buildReport({ vault: 'v.vault.azure.net', key: key(policy('00'.repeat(32)), false), claims: expired, source: { kind: 'sidecar', url: 'http://localhost:8080', maaEndpoint: 'sharedeus.eus.attest.azure.net' }, now: NOW })
  t.equal(report.explanation.allowed, false)
  t.equal(report.tokenExpired, true)
  const text = renderText(report)
  t.match(text, `NOT MET  authority ${MAA} (the token's issuer), allOf (all must hold):`)
  t.match(text, `    NOT MET  x-ms-sevsnpvm-hostdata equals "${'00'.repeat(32)}"; actual "${HOSTDATA}"`)
  t.match(text, 'claims: a token from the sidecar at http://localhost:8080 (maa_endpoint sharedeus.eus.attest.azure.net)')
  t.match(text, '(EXPIRED)')
  t.match(text, 'NOT MET: the vault will refuse to release this key to these claims')
  t.match(text, 'warning: the token expired at 2025-06-01T11:59:59.000Z')
  t.match(text, 'warning: the key is not exportable')

  const otherIssuer = buildReport({ vault: 'v', key: key(policy(HOSTDATA)), claims: { ...claims, iss: 'https://sharedwus.wus.attest.azure.net' }, source, now: NOW })
  t.match(renderText(otherIssuer), `NOT MET  authority ${MAA} (NOT the token's issuer: this entry cannot allow the release)`)
  t.match(renderText(otherIssuer), 'NOT MET: no authority of the policy is the token\'s issuer')
  const noIss = buildReport({ vault: 'v', key: key(policy(HOSTDATA)), claims: { 'x-ms-attestation-type': 'sevsnpvm' }, source, now: NOW })
  t.match(renderText(noIss), 'issuer: (none)\n')
  t.match(noIss.warnings, ['the token has no iss claim: no authority can match it'])
})

t.test('the JSON report has the evaluation and never the token', async t => {
  const report = buildReport({ vault: 'v.vault.azure.net', key: key(policy('00'.repeat(32))), claims, source, now: NOW })
  const json = renderJson(report)
  t.match(json, { vault: 'v.vault.azure.net', keyId: 'https://v.vault.azure.net/keys/k/1', allowed: false, authority: null, issuer: MAA, claimsSource: source, tokenExpired: false })
  t.match((json.authorities as Array<{ conditions: unknown[] }>)[0]?.conditions[1], { claim: 'x-ms-sevsnpvm-hostdata', expected: '00'.repeat(32), actual: HOSTDATA, met: false })
  const all = JSON.stringify(json) + renderText(report)
  t.notOk(all.includes(SIGNATURE), 'no signature')
  t.notOk(all.includes(TOKEN.split('.')[1] ?? '-'), 'no token payload')
})

t.test('valueText', async t => {
  t.equal(valueText('x'), '"x"')
  t.equal(valueText(false), 'false')
  t.equal(valueText(undefined), 'absent')
  t.equal(valueText('x', false), 'absent')
  t.equal(valueText({ a: 1 }), '{"a":1}')
  t.equal(valueText('a\u0007b'), '"a\\u0007b"', 'control characters escaped')
  t.equal(valueText('y'.repeat(300)).length, 201)
})

t.test('a met policy is not a release when the token expired or the key is not exportable', async t => {
  const live = { ...claims, exp: Math.floor(NOW.getTime() / 1000) + 3600 }
  const ok = buildReport({ vault: 'v.vault.azure.net', key: key(policy(HOSTDATA)), claims: live, source, now: NOW })
  t.equal(releasable(ok), true)
  t.match(renderText(ok), /^MET: /m)
  const expired = buildReport({ vault: 'v.vault.azure.net', key: key(policy(HOSTDATA)), claims: { ...live, exp: Math.floor(NOW.getTime() / 1000) - 1 }, source, now: NOW })
  t.equal(expired.explanation.allowed, true, 'the policy itself is met')
  t.equal(releasable(expired), false, 'but the vault refuses an expired token')
  t.match(renderText(expired), /^NOT MET: the policy is met, but the vault will refuse this release anyway/m)
  t.equal(renderJson(expired)['releasable'], false)
  const locked = buildReport({ vault: 'v.vault.azure.net', key: key(policy(HOSTDATA), false), claims: live, source, now: NOW })
  t.equal(releasable(locked), false, 'nor releases a key that is not exportable')
})

t.test('text from the vault or an unverified token cannot forge report lines', async t => {
  const forged = { ...claims, iss: `${MAA}\nMET: forged line\u001b[2K`, exp: Math.floor(NOW.getTime() / 1000) + 3600 }
  const text = renderText(buildReport({ vault: 'v.vault.azure.net', key: key(policy(HOSTDATA)), claims: forged, source, now: NOW }))
  t.notMatch(text, /^MET: forged line/m, 'the newline is escaped')
  t.notOk(text.includes('\u001b'), 'control characters are escaped')
  t.equal(safeText('plain'), 'plain')
  t.equal(safeText('a\nb'), '"a\\nb"')
  // JSON.stringify leaves C1 (U+009B is CSI), DEL and U+2028 raw: they were printed as they came.
  t.equal(safeText('a\u009b2Kb'), '"a\\u009b2Kb"')
  t.equal(safeText('a\u2028b\u202e'), '"a\\u2028b\\u202e"')
  t.equal(valueText('a\u0085b\u007f'), '"a\\u0085b\\u007f"', 'escaped once, not quoted twice')
})

t.test('a malformed token: a usage error when it is the operator\'s file, an upstream fault when the sidecar sent it', async t => {
  t.throws(() => claimsOfToken('aaaa.bbbb.cccc'), { code: 'ERR_CONFIG_INVALID' })
  t.throws(() => claimsOfToken('aaaa.bbbb.cccc', 'sidecar'), { code: 'ERR_UPSTREAM_RESPONSE_INVALID' })
})
