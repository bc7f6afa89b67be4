import t from 'tap'
import { join } from 'node:path'
import { loadConfig } from '../../../src/config/config.ts'
import { securityContextEnv } from '../../../src/config/security-context-env.ts'
import { emptySecurityContext, findSecurityContextDir, loadSecurityContext } from '../../../src/uvm/security-context.ts'
import { needsVectors, vectorsDir, vectorText } from '../../helpers/vectors.ts'

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64')
const POLICY = 'package policy\n\napi_svn := "0.10.0"\n'
const COSE = Buffer.from([0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x40, 0x40])
const KATA = ['opt', 'confidential-containers', 'share', 'kata-containers']

t.test('the genuine ACI security-context files load', needsVectors(), async (t) => {
  const dir = join(vectorsDir, 'azure-aci-milan', 'security-context-other-chip')
  const ctx = await loadSecurityContext({ env: { UVM_SECURITY_CONTEXT_DIR: dir } })
  t.equal(ctx.dir, dir)
  t.same(ctx.sources, { securityPolicy: 'file', hostAmdCert: 'file', referenceInfo: 'file' })
  t.match(ctx.securityPolicy?.toString('utf8'), /^package policy\n/)
  t.equal(ctx.securityPolicyBase64, vectorText('azure-aci-milan', 'security-context-other-chip', 'security-policy-base64').trim())
  t.equal(ctx.hostAmdCert?.source, 'security-context')
  t.equal(typeof ctx.hostAmdCert?.tcbm, 'bigint')
  t.match(ctx.hostAmdCert?.vcekPem, /^-----BEGIN CERTIFICATE-----\n/)
  t.equal(ctx.referenceInfo?.[0], 0xd2, 'COSE_Sign1 tag')
  t.equal(ctx.referenceInfo?.[1], 0x84)
  t.equal(Buffer.from(ctx.referenceInfoBase64 ?? '', 'base64').equals(ctx.referenceInfo ?? Buffer.alloc(0)), true)
})

t.test('discovery: env dir (under root), first security-context-* dir, Kata dir, or none', async (t) => {
  const root = t.testdir({
    'security-context-0': 'a file, not a directory',
    'security-context-b': {},
    'security-context-a': {},
    custom: {},
    opt: { 'confidential-containers': { share: { 'kata-containers': {} } } }
  })
  t.equal(await findSecurityContextDir({ env: { UVM_SECURITY_CONTEXT_DIR: '/custom' }, root }), join(root, 'custom'))
  t.equal(await findSecurityContextDir({ env: { UVM_SECURITY_CONTEXT_DIR: ' ' }, root }), join(root, 'security-context-a'), 'blank means unset')
  t.equal(await findSecurityContextDir({ env: {}, root }), join(root, 'security-context-a'), 'sorted, directories only')

  const kataOnly = t.testdir({ opt: { 'confidential-containers': { share: { 'kata-containers': {} } } }, 'security-context-x': 'file' })
  t.equal(await findSecurityContextDir({ env: {}, root: kataOnly }), join(kataOnly, ...KATA))

  const empty = t.testdir({})
  t.equal(await findSecurityContextDir({ env: {}, root: empty }), null)
  t.equal(await findSecurityContextDir({ env: {}, root: join(empty, 'missing') }), null, 'unreadable root')
})

t.test('files win, whitespace is tolerated, env fills the gaps', async (t) => {
  const wrapped = b64(POLICY).replace(/(.{8})/g, '$1\n') + '\n'
  const root = t.testdir({ 'security-context-1': { 'security-policy-base64': wrapped, 'reference-info-base64': '  \n' } })
  const ctx = await loadSecurityContext({
    root,
    env: { UVM_SECURITY_POLICY: b64('ignored'), UVM_REFERENCE_INFO: ` ${b64(COSE)}\n` }
  })
  t.equal(ctx.dir, join(root, 'security-context-1'))
  t.equal(ctx.securityPolicy?.toString(), POLICY)
  t.equal(ctx.securityPolicyBase64, b64(POLICY), 'normalised base64')
  t.same(ctx.referenceInfo, COSE, 'an empty file falls back to the variable')
  t.same(ctx.sources, { securityPolicy: 'file', hostAmdCert: 'absent', referenceInfo: 'env' })
  t.equal(ctx.hostAmdCert, null)
})

t.test('unpadded base64 is accepted', async (t) => {
  const ctx = await loadSecurityContext({ env: { UVM_SECURITY_POLICY: 'QUJDRA' }, root: t.testdir({}) })
  t.equal(ctx.securityPolicy?.toString(), 'ABCD')
})

t.test('no directory and no env: everything absent', async (t) => {
  const ctx = await loadSecurityContext({ env: {}, root: t.testdir({}) })
  t.same(ctx, emptySecurityContext())
})

t.test('securityContextEnv: the UVM_* settings of the config, unset ones undefined', async (t) => {
  t.same(securityContextEnv(loadConfig([], { UVM_SECURITY_CONTEXT_DIR: '/ctx', UVM_SECURITY_POLICY: 'cG9saWN5' })), {
    UVM_SECURITY_CONTEXT_DIR: '/ctx',
    UVM_SECURITY_POLICY: 'cG9saWN5',
    UVM_HOST_AMD_CERTIFICATE: undefined,
    UVM_REFERENCE_INFO: undefined
  })
})

t.test('host cert from the env variable', needsVectors(), async (t) => {
  const thim = vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json')
  const ctx = await loadSecurityContext({ env: { UVM_HOST_AMD_CERTIFICATE: b64(thim) }, root: t.testdir({}) })
  t.equal(ctx.sources.hostAmdCert, 'env')
  t.equal(ctx.hostAmdCert?.tcbm, 0x7308000000000003n)
  t.equal(ctx.hostAmdCert?.cacheControlSeconds, 86400)
})

t.test('malformed items → ERR_COLLATERAL_UNAVAILABLE naming the file or variable, never the contents', async (t) => {
  const secret = 'S3CRET-CONTENT'
  const cases: Array<[Record<string, string>, Record<string, string>, RegExp]> = [
    [{ 'security-policy-base64': `${secret}!!` }, {}, /^security context file .*security-policy-base64 is not base64 \(16 characters\)$/],
    [{}, { UVM_SECURITY_POLICY: `*${secret}` }, /^environment variable UVM_SECURITY_POLICY is not base64/],
    [{}, { UVM_SECURITY_POLICY: 'QUJDRA=' }, /UVM_SECURITY_POLICY is not base64/],
    [{}, { UVM_SECURITY_POLICY: 'QQ====' }, /UVM_SECURITY_POLICY is not base64 \(6 characters\)/],
    [{ 'host-amd-cert-base64': b64(`not json ${secret}`) }, {}, /host-amd-cert-base64 does not decode to JSON$/],
    [{}, { UVM_HOST_AMD_CERTIFICATE: b64(JSON.stringify({ vcekCert: secret })) },
      /^environment variable UVM_HOST_AMD_CERTIFICATE is not a THIM document: THIM document field vcekCert is not valid PEM/],
    [{ 'reference-info-base64': b64(`{"x":"${secret}"}`) }, {}, /reference-info-base64 is not a COSE_Sign1 message \(first byte 0x7b, want 0xd2 or 0x84\)$/]
  ]
  for (const [files, env, message] of cases) {
    const root = t.testdir({ 'security-context-z': files })
    const err = await loadSecurityContext({ env, root }).catch((e: unknown) => e)
    t.match(err, { code: 'ERR_COLLATERAL_UNAVAILABLE', statusCode: 503, message }, String(message))
    t.notMatch(JSON.stringify({ m: (err as Error).message, d: (err as { details?: unknown }).details }), new RegExp(secret))
  }
})

t.test('an unreadable item is an error, not silently absent', async (t) => {
  const root = t.testdir({ 'security-context-q': { 'security-policy-base64': { 'a-directory': 'x' } } })
  await t.rejects(loadSecurityContext({ env: {}, root }), {
    code: 'ERR_COLLATERAL_UNAVAILABLE',
    message: /cannot read security context file .*security-policy-base64: EISDIR/,
    details: { errno: 'EISDIR' }
  })
})
