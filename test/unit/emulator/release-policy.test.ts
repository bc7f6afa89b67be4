import t from 'tap'
import { RequestInvalid } from '../../../src/errors.ts'
import { parseReleasePolicy, policyAuthorities, releasePolicyFromJson } from '../../../src/akv/release-policy.ts'
import { evaluateReleasePolicy, sameAuthority } from '../../../src/akv/release-policy-evaluate.ts'

const MAA = 'https://sharedeus.eus.attest.azure.net'
const b64url = (doc: unknown): string => Buffer.from(JSON.stringify(doc)).toString('base64url')
const policyWith = (conditions: unknown[], extra: Record<string, unknown> = {}): string =>
  b64url({ version: '1.0.0', anyOf: [{ authority: MAA, allOf: conditions }], ...extra })

// A token shaped like an ACI SevSnpVm MAA token (docs/protocols.md#maa-token-claims).
const claims: Record<string, unknown> = {
  iss: MAA,
  'x-ms-attestation-type': 'sevsnpvm',
  'x-ms-compliance-status': 'azure-compliant-uvm',
  'x-ms-sevsnpvm-hostdata': 'ab'.repeat(32),
  'x-ms-sevsnpvm-is-debuggable': false,
  'x-ms-sevsnpvm-vmpl': 0,
  'x-ms-sevsnpvm-guestsvn': 2,
  'x-ms-sevsnpvm-tee-svn': '7',
  'x-ms-isolation-tee': { 'x-ms-attestation-type': 'sevsnpvm', 'x-ms-compliance-status': 'azure-compliant-cvm' },
  'x-ms-runtime': { keys: [{ kid: 'k1', kty: 'RSA' }] },
  'x-ms-nullish': null
}

const allowed = (conditions: unknown[], c: Record<string, unknown> = claims): boolean =>
  evaluateReleasePolicy(parseReleasePolicy(policyWith(conditions)), MAA, c).allowed

t.test('operators, one condition at a time', async (t) => {
  const table: Array<[string, unknown, boolean]> = [
    ['equals string', { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }, true],
    ['equals string mismatch', { claim: 'x-ms-attestation-type', equals: 'tdxvm' }, false],
    ['equals is case-sensitive (hex)', { claim: 'x-ms-sevsnpvm-hostdata', equals: 'AB'.repeat(32) }, false],
    ['equals lowercase hex', { claim: 'x-ms-sevsnpvm-hostdata', equals: 'ab'.repeat(32) }, true],
    ['"false" equals boolean false', { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' }, true],
    ['false equals boolean false', { claim: 'x-ms-sevsnpvm-is-debuggable', equals: false }, true],
    ['"true" does not equal false', { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'true' }, false],
    ['"False" is not "false"', { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'False' }, false],
    ['"0" equals number 0', { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }, true],
    ['0 equals number 0', { claim: 'x-ms-sevsnpvm-vmpl', equals: 0 }, true],
    ['7 equals string "7"', { claim: 'x-ms-sevsnpvm-tee-svn', equals: 7 }, true],
    ['notEquals holds', { claim: 'x-ms-attestation-type', notEquals: 'tdxvm' }, true],
    ['notEquals fails', { claim: 'x-ms-sevsnpvm-vmpl', notEquals: '0' }, false],
    ['notEquals on a missing claim is false', { claim: 'nope', notEquals: 'x' }, false],
    ['greater', { claim: 'x-ms-sevsnpvm-guestsvn', greater: 1 }, true],
    ['greater (equal) fails', { claim: 'x-ms-sevsnpvm-guestsvn', greater: 2 }, false],
    ['greaterOrEquals', { claim: 'x-ms-sevsnpvm-guestsvn', greaterOrEquals: 2 }, true],
    ['greaterOrEquals with string value', { claim: 'x-ms-sevsnpvm-guestsvn', greaterOrEquals: '2' }, true],
    ['less', { claim: 'x-ms-sevsnpvm-guestsvn', less: 3 }, true],
    ['less fails', { claim: 'x-ms-sevsnpvm-guestsvn', less: 2 }, false],
    ['lessOrEquals', { claim: 'x-ms-sevsnpvm-guestsvn', lessOrEquals: 2 }, true],
    ['numeric claim given as a string', { claim: 'x-ms-sevsnpvm-tee-svn', greater: 6 }, true],
    ['numeric operator on a non-number claim is false', { claim: 'x-ms-attestation-type', greater: 1 }, false],
    ['numeric operator with a non-number value is false', { claim: 'x-ms-sevsnpvm-guestsvn', less: 'ten' }, false],
    ['numeric operator on a boolean claim is false', { claim: 'x-ms-sevsnpvm-is-debuggable', less: 1 }, false],
    ['exists true', { claim: 'x-ms-runtime', exists: true }, true],
    ['exists true, missing', { claim: 'nope', exists: true }, false],
    ['exists false, missing', { claim: 'nope', exists: false }, true],
    ['exists false, present', { claim: 'x-ms-attestation-type', exists: false }, false],
    ['exists "true" (string form)', { claim: 'x-ms-runtime', exists: 'true' }, true],
    ['missing claim is false', { claim: 'x-ms-not-there', equals: 'x' }, false],
    ['equals against an object claim is false', { claim: 'x-ms-runtime', equals: '[object Object]' }, false],
    ['equals against a null claim is false', { claim: 'x-ms-nullish', equals: 'null' }, false],
    ['dotted path', { claim: 'x-ms-isolation-tee.x-ms-attestation-type', equals: 'sevsnpvm' }, true],
    ['dotted path mismatch', { claim: 'x-ms-isolation-tee.x-ms-compliance-status', equals: 'azure-compliant-uvm' }, false],
    ['dotted path through a string', { claim: 'x-ms-attestation-type.length', equals: 8 }, false],
    ['arrays are not navigable', { claim: 'x-ms-runtime.keys.0.kid', equals: 'k1' }, false],
    ['prototype members are not claims', { claim: 'constructor', exists: true }, false],
    ['legacy {condition, value}', { claim: 'x-ms-attestation-type', condition: 'equals', value: 'sevsnpvm' }, true],
    ['legacy {condition, value} mismatch', { claim: 'x-ms-attestation-type', condition: 'equals', value: 'x' }, false],
    ['legacy with another operator', { claim: 'x-ms-sevsnpvm-guestsvn', condition: 'greaterOrEquals', value: '1' }, true]
  ]
  for (const [name, condition, expected] of table) t.equal(allowed([condition]), expected, name)
})

t.test('allOf / anyOf nesting', async (t) => {
  const yes = { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }
  const no = { claim: 'x-ms-attestation-type', equals: 'tdxvm' }
  t.equal(allowed([yes, yes]), true, 'allOf all true')
  t.equal(allowed([yes, no]), false, 'allOf one false')
  t.equal(allowed([yes, { anyOf: [no, yes] }]), true, 'nested anyOf in allOf (CVM default policy shape)')
  t.equal(allowed([yes, { anyOf: [no, no] }]), false, 'nested anyOf all false')
  t.equal(allowed([{ anyOf: [no, { allOf: [yes, yes] }] }]), true, 'allOf in anyOf in allOf')
  t.equal(allowed([{ anyOf: [no, { allOf: [yes, no] }] }]), false)
  const anyRoot = parseReleasePolicy(b64url({ version: '1.0.0', anyOf: [{ authority: MAA, anyOf: [no, yes] }] }))
  t.equal(evaluateReleasePolicy(anyRoot, MAA, claims).allowed, true, 'authority-level anyOf')
  const anyRootNo = parseReleasePolicy(b64url({ version: '1.0.0', anyOf: [{ authority: MAA, anyOf: [no] }] }))
  const decision = evaluateReleasePolicy(anyRootNo, MAA, claims)
  t.same(decision, { allowed: false, authority: MAA, reason: `claim x-ms-attestation-type does not satisfy the policy of ${MAA}` })
})

t.test('the canonical ACI policy (string values against typed claims)', async (t) => {
  const policy = parseReleasePolicy(b64url({
    version: '1.0.0',
    anyOf: [{
      authority: MAA,
      allOf: [
        { claim: 'x-ms-sevsnpvm-hostdata', equals: 'ab'.repeat(32) },
        { claim: 'x-ms-compliance-status', equals: 'azure-compliant-uvm' },
        { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
        { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }
      ]
    }]
  }))
  t.same(evaluateReleasePolicy(policy, MAA, claims), { allowed: true, authority: MAA, reason: `claims satisfy the policy of ${MAA}` })
  t.equal(evaluateReleasePolicy(policy, MAA, { ...claims, 'x-ms-sevsnpvm-is-debuggable': true }).allowed, false, 'debuggable denied')
  t.equal(evaluateReleasePolicy(policy, MAA, { ...claims, 'x-ms-sevsnpvm-vmpl': 1 }).allowed, false, 'vmpl 1 denied')
})

t.test('authorities: trailing slash, case, several, none matching', async (t) => {
  const cond = [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }]
  const slash = parseReleasePolicy(b64url({ anyOf: [{ authority: `${MAA}/`, allOf: cond }] }))
  t.equal(evaluateReleasePolicy(slash, MAA, claims).allowed, true, 'policy authority with a trailing slash, iss without')
  t.equal(evaluateReleasePolicy(slash, `${MAA}/`, claims).allowed, true, 'both with')
  t.equal(evaluateReleasePolicy(slash, 'HTTPS://SharedEUS.eus.attest.azure.net', claims).allowed, true, 'scheme and host case-insensitive')
  const other = evaluateReleasePolicy(slash, 'https://sharedwus.wus.attest.azure.net', claims)
  t.same(other, { allowed: false, authority: null, reason: 'no policy authority matches the token issuer' })
  t.equal(evaluateReleasePolicy(slash, 'http://sharedeus.eus.attest.azure.net', claims).allowed, false, 'scheme matters')
  t.equal(evaluateReleasePolicy(slash, `${MAA}:8443`, claims).allowed, false, 'port matters')

  const multi = parseReleasePolicy(b64url({
    version: '1.0.0',
    anyOf: [
      { authority: 'https://sharedwus.wus.attest.azure.net/', allOf: cond },
      { authority: MAA, allOf: [{ claim: 'x-ms-attestation-type', equals: 'tdxvm' }] },
      { authority: `${MAA}/`, allOf: cond }
    ]
  }))
  t.same(policyAuthorities(multi), ['https://sharedwus.wus.attest.azure.net/', MAA, `${MAA}/`])
  t.same(evaluateReleasePolicy(multi, MAA, claims), { allowed: true, authority: `${MAA}/`, reason: `claims satisfy the policy of ${MAA}/` }, 'a later entry for the same issuer may allow')
  t.equal(sameAuthority('https://a.example/path/', 'https://A.EXAMPLE/path'), true)
  t.equal(sameAuthority('https://a.example/Path', 'https://a.example/path'), false, 'paths are case-sensitive')
  t.equal(sameAuthority('not a url/', 'not a url'), true)
})

t.test('version variants', async (t) => {
  const body = { anyOf: [{ authority: MAA, allOf: [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }] }] }
  for (const version of ['1.0.0', '0.2']) {
    const policy = parseReleasePolicy(b64url({ version, ...body }))
    t.equal(policy.version, version)
    t.equal(evaluateReleasePolicy(policy, MAA, claims).allowed, true, `version ${version}`)
  }
  const absent = parseReleasePolicy(b64url(body))
  t.equal(absent.version, null, 'absent version (default CVM policy)')
  t.equal(evaluateReleasePolicy(absent, MAA, claims).allowed, true)
  t.throws(() => parseReleasePolicy(b64url({ version: '2.0', ...body })), RequestInvalid)
  t.throws(() => parseReleasePolicy(b64url({ version: 1, ...body })), RequestInvalid)
})

t.test('data encodings: b64url and std b64, padded or not', async (t) => {
  // A policy whose JSON encodes to both '+'/'/' and '-'/'_' alphabets and needs padding.
  const doc = { version: '1.0.0', anyOf: [{ authority: MAA, allOf: [{ claim: 'x-ms-sevsnpvm-hostdata', equals: '>>>???~~~' }] }] }
  const bytes = Buffer.from(JSON.stringify(doc))
  const std = bytes.toString('base64')
  const url = bytes.toString('base64url')
  for (const [name, data] of [['std padded', std], ['std unpadded', std.replace(/=+$/, '')], ['url unpadded', url], ['url padded', url + '='.repeat((4 - url.length % 4) % 4)]] as const) {
    t.same(parseReleasePolicy(data), releasePolicyFromJson(doc), name)
  }
})

t.test('malformed policies throw RequestInvalid with the place named', async (t) => {
  const good = { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }
  const cases: Array<[string, string, string]> = [
    ['empty data', '', 'data'],
    ['not base64', '!!!', 'data'],
    ['not JSON', Buffer.from('{nope').toString('base64url'), 'data'],
    ['not UTF-8', Buffer.from([0xff, 0xfe, 0x7b]).toString('base64url'), 'data'],
    ['array', b64url([]), '$'],
    ['no anyOf', b64url({ version: '1.0.0' }), '$.anyOf'],
    ['empty anyOf', b64url({ anyOf: [] }), '$.anyOf'],
    ['unknown top-level member', b64url({ anyOf: [{ authority: MAA, allOf: [good] }], allof: [] }), '$'],
    ['authority not https', b64url({ anyOf: [{ authority: 'http://x', allOf: [good] }] }), '$.anyOf[0]'],
    ['authority not a URL', b64url({ anyOf: [{ authority: 'nope', allOf: [good] }] }), '$.anyOf[0]'],
    ['larger than 64 KiB', b64url({ anyOf: [], pad: 'x'.repeat(70_000) }), 'data'],
    ['authority missing', b64url({ anyOf: [{ allOf: [good] }] }), '$.anyOf[0]'],
    ['both allOf and anyOf', b64url({ anyOf: [{ authority: MAA, allOf: [good], anyOf: [good] }] }), '$.anyOf[0]'],
    ['neither allOf nor anyOf', b64url({ anyOf: [{ authority: MAA }] }), '$.anyOf[0]'],
    ['empty allOf', policyWith([]), '$.anyOf[0].allOf'],
    ['condition not an object', policyWith(['x']), '$.anyOf[0].allOf[0]'],
    ['unknown operator', policyWith([{ claim: 'a', matches: 'x' }]), '$.anyOf[0].allOf[0]'],
    ['two operators', policyWith([{ claim: 'a', equals: 'x', notEquals: 'y' }]), '$.anyOf[0].allOf[0]'],
    ['no operator', policyWith([{ claim: 'a' }]), '$.anyOf[0].allOf[0]'],
    ['object value', policyWith([{ claim: 'a', equals: { b: 1 } }]), '$.anyOf[0].allOf[0]'],
    ['array value', policyWith([{ claim: 'a', equals: ['x'] }]), '$.anyOf[0].allOf[0]'],
    ['null value', policyWith([{ claim: 'a', equals: null }]), '$.anyOf[0].allOf[0]'],
    ['exists with a non-boolean', policyWith([{ claim: 'a', exists: 1 }]), '$.anyOf[0].allOf[0]'],
    ['empty claim', policyWith([{ claim: '', equals: 'x' }]), '$.anyOf[0].allOf[0]'],
    ['empty path segment', policyWith([{ claim: 'a..b', equals: 'x' }]), '$.anyOf[0].allOf[0]'],
    ['legacy unknown condition', policyWith([{ claim: 'a', condition: 'like', value: 'x' }]), '$.anyOf[0].allOf[0]'],
    ['legacy extra member', policyWith([{ claim: 'a', condition: 'equals', value: 'x', equals: 'x' }]), '$.anyOf[0].allOf[0]'],
    ['nested group with extra member', policyWith([{ anyOf: [good], x: 1 }]), '$.anyOf[0].allOf[0]'],
    ['nested empty anyOf', policyWith([{ anyOf: [] }]), '$.anyOf[0].allOf[0].anyOf']
  ]
  for (const [name, data, where] of cases) {
    let caught: unknown
    try {
      parseReleasePolicy(data)
    } catch (err) {
      caught = err
    }
    t.ok(caught instanceof RequestInvalid, `${name}: RequestInvalid`)
    t.equal((caught as RequestInvalid | undefined)?.details['where'], where, `${name}: at ${where}`)
  }
  let deep: unknown = good
  for (let i = 0; i < 40; i++) deep = { allOf: [deep] }
  t.throws(() => parseReleasePolicy(policyWith([deep])), /nested too deeply/, 'depth is bounded')
  t.throws(() => parseReleasePolicy(policyWith(Array.from({ length: 1100 }, () => ({ claim: 'a', exists: true })))), /too many conditions/, 'size is bounded')
})
