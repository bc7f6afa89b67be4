import t from 'tap'
import { loadConfig } from '../../../src/config/config.ts'
import { createMetricsRegistry } from '../../../src/observability/registry.ts'
import { buildKeyRelease, identityConfigOf } from '../../../src/app/release.ts'
import { FakeAttestationService } from '../../doubles/fake-services.ts'

const args = (clientId: string): string => Buffer.from(JSON.stringify({ identity: { client_id: clientId } })).toString('base64')

t.test('identity selection: workload identity only with all three AZURE_* values', async (t) => {
  const wi = identityConfigOf(loadConfig([], { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't', AZURE_FEDERATED_TOKEN_FILE: '/f', AZURE_AUTHORITY_HOST: 'https://login.example' }), ['CA'])
  t.same(wi, { managedIdentityClientId: 'c', workload: { clientId: 'c', tenantId: 't', tokenFile: '/f' }, authorityHost: 'https://login.example', extraCa: ['CA'] })
  const partial = identityConfigOf(loadConfig([], { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't' }))
  t.equal(partial.workload, null)
  t.equal(partial.managedIdentityClientId, 'c', 'AZURE_CLIENT_ID names the managed identity')
  t.equal(identityConfigOf(loadConfig([], { AZURE_CLIENT_ID: 'env', SkrSideCarArgs: args('args') })).managedIdentityClientId, 'args', 'SkrSideCarArgs identity.client_id wins')
  t.equal(identityConfigOf(loadConfig([], {})).managedIdentityClientId, null, 'system-assigned')
})

t.test('builds, reports the identity kind, closes; a bad CA file or authority host is ERR_CONFIG_INVALID', async (t) => {
  const built = await buildKeyRelease(loadConfig([], {}), new FakeAttestationService())
  t.type(built.release, 'function')
  await built.close()
  await t.rejects(buildKeyRelease(loadConfig([], { SKR_EXTRA_CA_CERTS: '/nonexistent/ca.pem' }), new FakeAttestationService()),
    { code: 'ERR_CONFIG_INVALID', message: /SKR_EXTRA_CA_CERTS/ })
  await t.rejects(buildKeyRelease(loadConfig([], { AZURE_AUTHORITY_HOST: 'http://login.example' }), new FakeAttestationService()),
    { code: 'ERR_CONFIG_INVALID', message: /AZURE_AUTHORITY_HOST/ })
  const tokens = { kind: 'workload identity' as const, getToken: async () => 'x' }
  const injected = await buildKeyRelease(loadConfig([], {}), new FakeAttestationService(), { tokens })
  await injected.close()
})

t.test('a partly configured workload identity is detected (and logged at warn by buildKeyRelease)', async t => {
  const { partialWorkloadIdentity } = await import('../../../src/app/release.ts')
  const { loadConfig } = await import('../../../src/config/config.ts')
  t.equal(partialWorkloadIdentity(loadConfig([], {})), null, 'nothing set: managed identity')
  t.equal(partialWorkloadIdentity(loadConfig([], { AZURE_CLIENT_ID: 'c' })), null, 'client id alone picks a managed identity')
  t.equal(partialWorkloadIdentity(loadConfig([], { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't', AZURE_FEDERATED_TOKEN_FILE: '/f' })), null, 'complete')
  t.same(partialWorkloadIdentity(loadConfig([], { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't' })), { set: ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID'], missing: ['AZURE_FEDERATED_TOKEN_FILE'] })
  t.same(partialWorkloadIdentity(loadConfig([], { AZURE_FEDERATED_TOKEN_FILE: '/f', AZURE_TENANT_ID: ' ' })), { set: ['AZURE_FEDERATED_TOKEN_FILE'], missing: ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID'] }, 'blank counts as missing')
})

t.test('a configured CA file without a valid certificate fails the build, before any root is parsed', async t => {
  const dir = t.testdir({ 'bad.pem': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'none.pem': 'no pem here\n' })
  for (const file of ['bad.pem', 'none.pem']) {
    await t.rejects(buildKeyRelease(loadConfig([], { SKR_EXTRA_CA_CERTS: `${dir}/${file}` }), new FakeAttestationService()),
      { code: 'ERR_CONFIG_INVALID' }, file)
  }
})

t.test('deferWarmUp: the wrapping-key pool fills only after start()', async t => {
  const depths: number[] = []
  const metrics = { cacheResult: () => {}, setPoolDepth: (_pool: string, depth: number) => { depths.push(depth) } }
  const built = await buildKeyRelease(loadConfig([], {}), new FakeAttestationService(), { deferWarmUp: true, keyPoolSize: 1, metrics })
  t.teardown(built.close)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(depths, [0], 'nothing generated while deferred')
  built.start()
  built.start()
  for (let i = 0; i < 200 && !depths.includes(1); i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.ok(depths.includes(1), 'a key is pooled after start()')
})

t.test('the built identity records its token cache into the metrics it is given', async t => {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  // A tenant id the SDK refuses: the token request fails offline, after the cache lookup (a miss).
  const config = loadConfig([], { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 'bad tenant!', AZURE_FEDERATED_TOKEN_FILE: '/nonexistent/token' })
  const built = await buildKeyRelease(config, new FakeAttestationService(), { keyPoolSize: 0, attestationTtlSeconds: 0, metrics })
  t.teardown(built.close)
  await t.rejects(built.release({ maaEndpoint: 'sharedeus.eus.attest.azure.net', akvEndpoint: 'myvault.vault.azure.net', kid: 'mykey' }), { code: 'ERR_IDENTITY_UNAVAILABLE' })
  const lines = (await metrics.render()).split('\n').filter(line => line.startsWith('skr_cache_lookups_total{cache="aad_token"') && !line.endsWith(' 0'))
  t.same(lines, ['skr_cache_lookups_total{cache="aad_token",result="miss"} 1'])
})

t.test('the AKV upstream is routed by the configuration\'s proxy settings (config.proxy)', async t => {
  const config = loadConfig([], { HTTPS_PROXY: 'socks5://proxy.corp:1080' })
  const tokens = { kind: 'managed identity' as const, getToken: async () => 'aad-token' }
  const built = await buildKeyRelease(config, new FakeAttestationService(), { tokens, keyPoolSize: 0, attestationTtlSeconds: 0 })
  t.teardown(built.close)
  // The unusable HTTPS_PROXY fails the vault call before anything is sent: no network is involved.
  await t.rejects(built.release({ maaEndpoint: 'sharedeus.eus.attest.azure.net', akvEndpoint: 'myvault.vault.azure.net', kid: 'mykey' }),
    { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'akv', errorCode: 'PROXY_UNUSABLE', proxyVariable: 'HTTPS_PROXY' } })
})
