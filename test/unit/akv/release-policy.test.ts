// explainReleasePolicy: every clause of every authority evaluated, with what it expected and what
// the claims hold; evaluateReleasePolicy (the emulator's decision) is derived from it. The grammar itself is tested in test/unit/emulator/release-policy.test.ts.
import t from 'tap'
import { releasePolicyFromJson } from '../../../src/akv/release-policy.ts'
import { evaluateReleasePolicy, explainReleasePolicy } from '../../../src/akv/release-policy-evaluate.ts'

const MAA = 'https://sharedeus.eus.attest.azure.net'
const OTHER = 'https://sharedwus.wus.attest.azure.net'
const HOSTDATA = 'ab'.repeat(32)
const claims: Record<string, unknown> = {
  iss: MAA,
  'x-ms-attestation-type': 'sevsnpvm',
  'x-ms-compliance-status': 'azure-compliant-uvm',
  'x-ms-sevsnpvm-hostdata': HOSTDATA,
  'x-ms-sevsnpvm-is-debuggable': false,
  'x-ms-sevsnpvm-vmpl': 0
}

t.test('each clause met or not, with expected and actual values', async t => {
  const policy = releasePolicyFromJson({
    version: '1.0.0',
    anyOf: [{
      authority: MAA,
      allOf: [
        { claim: 'x-ms-sevsnpvm-hostdata', equals: '00'.repeat(32) },
        { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
        { claim: 'x-ms-tee-missing', equals: 'x' },
        { anyOf: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '1' }, { claim: 'x-ms-attestation-type', condition: 'equals', value: 'sevsnpvm' }] }
      ]
    }]
  })
  const e = explainReleasePolicy(policy, MAA, claims)
  t.same(e, {
    allowed: false,
    issuer: MAA,
    authority: null,
    authorities: [{
      authority: MAA,
      issuerMatches: true,
      mode: 'allOf',
      conditionsMet: false,
      met: false,
      conditions: [
        { kind: 'claim', claim: 'x-ms-sevsnpvm-hostdata', operator: 'equals', expected: '00'.repeat(32), present: true, actual: HOSTDATA, met: false },
        { kind: 'claim', claim: 'x-ms-sevsnpvm-is-debuggable', operator: 'equals', expected: 'false', present: true, actual: false, met: true },
        { kind: 'claim', claim: 'x-ms-tee-missing', operator: 'equals', expected: 'x', present: false, actual: undefined, met: false },
        {
          kind: 'anyOf',
          met: true,
          conditions: [
            { kind: 'claim', claim: 'x-ms-sevsnpvm-vmpl', operator: 'equals', expected: '1', present: true, actual: 0, met: false },
            { kind: 'claim', claim: 'x-ms-attestation-type', operator: 'equals', expected: 'sevsnpvm', present: true, actual: 'sevsnpvm', met: true }
          ]
        }
      ]
    }]
  })
  t.same(evaluateReleasePolicy(policy, MAA, claims), { allowed: false, authority: MAA, reason: `claim x-ms-sevsnpvm-hostdata does not satisfy the policy of ${MAA}` },
    'the decision names the first failing claim, as before')
})

t.test('authorities: an entry for another issuer is evaluated but cannot allow', async t => {
  const cond = [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }]
  const policy = releasePolicyFromJson({ anyOf: [{ authority: OTHER, allOf: cond }, { authority: `${MAA}/`, anyOf: cond }] })
  const e = explainReleasePolicy(policy, MAA, claims)
  t.equal(e.allowed, true)
  t.equal(e.authority, `${MAA}/`)
  t.match(e.authorities, [
    { authority: OTHER, issuerMatches: false, conditionsMet: true, met: false },
    { authority: `${MAA}/`, issuerMatches: true, mode: 'anyOf', conditionsMet: true, met: true }
  ])
  const none = explainReleasePolicy(policy, 'https://elsewhere.attest.azure.net', claims)
  t.equal(none.allowed, false)
  t.ok(none.authorities.every(a => !a.issuerMatches && a.conditionsMet), 'claims that would pass, from the wrong issuer')
  t.same(evaluateReleasePolicy(policy, 'https://elsewhere.attest.azure.net', claims), { allowed: false, authority: null, reason: 'no policy authority matches the token issuer' })
})

t.test('allOf and anyOf combine the clauses as the grammar says, for every subset of clauses', async t => {
  const conditions = [
    { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' },
    { claim: 'x-ms-sevsnpvm-vmpl', greater: 0 },
    { claim: 'x-ms-compliance-status', exists: true },
    { claim: 'nope', exists: false },
    { anyOf: [{ claim: 'x-ms-sevsnpvm-vmpl', lessOrEquals: '0' }, { claim: 'nope', equals: 1 }] }
  ]
  // Each clause alone, against `claims` (vmpl 0; lenient typing compares '0' as a number).
  const alone = [true, false, true, true, true]
  conditions.forEach((c, i) => {
    const single = releasePolicyFromJson({ anyOf: [{ authority: MAA, allOf: [c] }] })
    t.equal(evaluateReleasePolicy(single, MAA, claims).allowed, alone[i], `clause ${i} alone`)
  })
  for (let mask = 1; mask < 1 << conditions.length; mask++) {
    const picked = conditions.map((_c, i) => i).filter(i => (mask & (1 << i)) !== 0)
    const chosen = picked.map(i => conditions[i])
    for (const mode of ['allOf', 'anyOf'] as const) {
      const policy = releasePolicyFromJson({ anyOf: [{ authority: MAA, [mode]: chosen }] })
      const want = mode === 'allOf' ? picked.every(i => alone[i]) : picked.some(i => alone[i])
      t.equal(evaluateReleasePolicy(policy, MAA, claims).allowed, want, `${mode} of clauses ${picked.join(',')}`)
      t.equal(explainReleasePolicy(policy, MAA, claims).authorities[0]?.conditionsMet, want)
    }
  }
})
