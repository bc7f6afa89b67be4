import t from 'tap'
import { releasePolicyFromJson } from '../../../src/akv/release-policy.ts'
import { evaluateReleasePolicy } from '../../../src/akv/release-policy-evaluate.ts'
import { sevSnpClaims } from '../../../src/emulator/maa-claims.ts'
import {
  authorityOf, buildReleasePolicy, encodeReleasePolicy, hostDataOf, normaliseHostData, parseExtraClaim, parsePolicyDocument,
  pinsHostData, securityPolicyFromFile
} from '../../../src/ops/release-policy-builder.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

const HD = 'ab'.repeat(32)

t.test('the ACI preset is the reference canonical policy (importkeyconfig.json), string values included', async t => {
  const policy = buildReleasePolicy({ maaEndpoint: 'sharedeus.eus.attest.azure.net', platform: 'aci', hostData: HD.toUpperCase() })
  t.same(policy, {
    version: '1.0.0',
    anyOf: [{
      authority: 'https://sharedeus.eus.attest.azure.net',
      allOf: [
        { claim: 'x-ms-sevsnpvm-hostdata', equals: HD },
        { claim: 'x-ms-compliance-status', equals: 'azure-compliant-uvm' },
        { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
        { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }
      ]
    }]
  })
  t.equal(encodeReleasePolicy(policy).toString(), JSON.stringify(policy), 'compact JSON as the reference marshals it')
  t.ok(pinsHostData(policy))
})

t.test('AKS preset, knobs and extra claims', async t => {
  const aks = buildReleasePolicy({ maaEndpoint: 'https://myattest.weu.attest.azure.net/', platform: 'aks', hostData: null })
  t.same(aks.anyOf[0], {
    authority: 'https://myattest.weu.attest.azure.net',
    allOf: [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }, { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' }]
  })
  t.notOk(pinsHostData(aks))
  const custom = buildReleasePolicy({
    maaEndpoint: '127.0.0.1:8443', platform: 'aci', hostData: `0x${HD}`, compliance: null, debugCheck: false, vmpl: null,
    extraClaims: [{ claim: 'x-ms-sevsnpvm-guestsvn', equals: '2' }]
  })
  t.same(custom.anyOf[0]?.allOf.map((c) => c.claim), ['x-ms-sevsnpvm-hostdata', 'x-ms-sevsnpvm-guestsvn'])
  t.equal(custom.anyOf[0]?.authority, 'https://127.0.0.1:8443')
})

t.test('mistakes are ConfigInvalid with a message', async t => {
  t.throws(() => buildReleasePolicy({ maaEndpoint: 'x.attest.azure.net', platform: 'aci', hostData: null }), { code: 'ERR_CONFIG_INVALID', message: /needs the host data/ })
  t.throws(() => buildReleasePolicy({ maaEndpoint: 'http://x', platform: 'aci', hostData: HD }), { code: 'ERR_CONFIG_INVALID', message: /only https/ })
  t.throws(() => buildReleasePolicy({ maaEndpoint: 'x', platform: 'aci', hostData: 'abc' }), { message: /64 hex digits/ })
  t.throws(() => buildReleasePolicy({ maaEndpoint: 'x', platform: 'aci', hostData: HD, extraClaims: [{ claim: 'x-ms-sevsnpvm-vmpl', equals: '1' }] }), { message: /already in the policy/ })
  t.same(buildReleasePolicy({ maaEndpoint: 'x', platform: 'aks', hostData: null, debugCheck: false }).anyOf[0]?.allOf, [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }], 'the AKS floor (the reference example)')
  t.throws(() => buildReleasePolicy({ maaEndpoint: 'x', platform: 'aci', hostData: HD, vmpl: 7 }), { message: /vmpl/ })
  t.throws(() => buildReleasePolicy({ maaEndpoint: 'x', platform: 'gke' as 'aci', hostData: HD }), { message: /aci or aks/ })
  t.throws(() => parseExtraClaim('novalue'), { message: /name=value/ })
  t.throws(() => parseExtraClaim('bad name=1'), { message: /name=value/ })
  t.same(parseExtraClaim('a.b=c=d'), { claim: 'a.b', equals: 'c=d' })
  t.same(parseExtraClaim('x='), { claim: 'x', equals: '' })
  t.equal(normaliseHostData(` 0X${HD.toUpperCase()} `), HD)
  t.equal(authorityOf('HTTPS://Shared.Attest.Azure.Net/'), 'https://shared.attest.azure.net')
})

t.test('security policy files: base64 is decoded, raw Rego is hashed as is', needsVectors(), async t => {
  const b64 = vector('azure-aci-milan', 'uvm_security_policy.base64')
  const decoded = securityPolicyFromFile(Buffer.concat([b64, Buffer.from('\n')]))
  t.equal(decoded.encoding, 'base64')
  const report = parseReport(vector('azure-aci-milan', 'snp_report.bin'))
  t.equal(hostDataOf(decoded.bytes), report.hostData.toString('hex'), 'sha256 of the decoded policy is the report HOST_DATA')
  const rego = Buffer.from('package policy\n\napi_version := "0.10.0"\n')
  t.same(securityPolicyFromFile(rego), { bytes: rego, encoding: 'raw' })
  t.equal(securityPolicyFromFile(Buffer.from(Buffer.from([0xff, 0xfe, 0x00, 0x01]).toString('base64'))).encoding, 'raw', 'base64 of non-text is not a policy')
})

t.test('parsePolicyDocument: a light shape check', async t => {
  t.same(parsePolicyDocument('{"anyOf":[{"authority":"https://a","allOf":[{"claim":"c","equals":"v"}]}]}').anyOf, [{ authority: 'https://a', allOf: [{ claim: 'c', equals: 'v' }] }])
  t.ok(parsePolicyDocument('{"version":"1.0.0","anyOf":[{"authority":"https://a","anyOf":[{"allOf":[{"claim":"c","equals":"v"}]}]}]}'))
  for (const [text, msg] of [
    ['{', /not JSON/], ['[]', /JSON object/], ['{"anyOf":[]}', /non-empty/], ['{"anyOf":[1]}', /must be an object/],
    ['{"anyOf":[{"authority":"http://a","allOf":[]}]}', /https URL/], ['{"anyOf":[{"authority":"https://a"}]}', /allOf or anyOf/],
    ['{"anyOf":[{"authority":"https://a","allOf":[{"x":1}]}]}', /claim, allOf or anyOf/], ['{"anyOf":[{"authority":"https://a","allOf":[{"claim":""}]}]}', /non-empty string/]
  ] as const) {
    t.throws(() => parsePolicyDocument(text), { code: 'ERR_CONFIG_INVALID', message: msg }, text)
  }
})

t.test('the AKV emulator releases under the built policy only for a matching claim set', needsVectors(), async t => {
  const issuer = 'https://sharedeus.eus.attest.azure.net'
  const report = parseReport(vector('azure-aci-milan', 'snp_report.bin'), { generation: 'Milan' })
  const claimsOf = (r: typeof report, endorsed: boolean): Record<string, unknown> => sevSnpClaims({
    report: r, generation: 'Milan', runtime: null, initTime: null, nonce: null,
    endorsement: endorsed ? { guestSvn: null, launchMeasurement: r.measurement.toString('hex') } : null
  }, { issuer, now: new Date('2024-06-01T00:00:00Z'), lifetimeSeconds: 3600, jti: 'j' })
  const hostData = hostDataOf(securityPolicyFromFile(vector('azure-aci-milan', 'uvm_security_policy.base64')).bytes)
  const policy = releasePolicyFromJson(JSON.parse(encodeReleasePolicy(buildReleasePolicy({ maaEndpoint: 'sharedeus.eus.attest.azure.net', platform: 'aci', hostData })).toString()))
  t.ok(evaluateReleasePolicy(policy, issuer, claimsOf(report, true)).allowed, 'genuine ACI claims are accepted (typed booleans/numbers vs string values)')
  t.notOk(evaluateReleasePolicy(policy, 'https://other.attest.azure.net', claimsOf(report, true)).allowed, 'another issuer')
  t.match(evaluateReleasePolicy(policy, issuer, claimsOf(report, false)), { allowed: false, reason: /x-ms-compliance-status/ }, 'no validated UVM endorsement')
  const otherHost = hostDataOf(securityPolicyFromFile(vector('azure-aci-milan', 'security-context-other-chip', 'security-policy-base64')).bytes)
  const otherPolicy = releasePolicyFromJson(buildReleasePolicy({ maaEndpoint: issuer, platform: 'aci', hostData: otherHost }))
  t.match(evaluateReleasePolicy(otherPolicy, issuer, claimsOf(report, true)), { allowed: false, reason: /hostdata/ }, 'another container group')
  const debug = parseReport(vector('gsg-milan-debug', 'attestation.bin'), { generation: 'Milan' })
  const debugPolicy = releasePolicyFromJson(buildReleasePolicy({ maaEndpoint: issuer, platform: 'aci', hostData: debug.hostData.toString('hex') }))
  t.match(evaluateReleasePolicy(debugPolicy, issuer, claimsOf(debug, true)), { allowed: false, reason: /is-debuggable/ }, 'a debuggable guest')
  const aks = releasePolicyFromJson(buildReleasePolicy({ maaEndpoint: issuer, platform: 'aks', hostData }))
  t.ok(evaluateReleasePolicy(aks, issuer, claimsOf(report, false)).allowed, 'the AKS preset needs no compliance claim')
  t.ok(vectorText('azure-aci-milan', 'uvm_security_policy.base64').length > 0)
})
