import t from 'tap'
import { isAzureVaultHost, staticTokenCredential, vaultError } from '../../../src/ops/import-key.ts'
import { AccessDenied } from '../../../src/errors.ts'

t.test('challenge-resource verification stays on for Azure vault hosts only', async t => {
  for (const host of ['myvault.vault.azure.net', 'MyHsm.managedhsm.azure.net', 'x.vault.azure.cn', 'x.managedhsm.usgovcloudapi.net:443']) t.ok(isAzureVaultHost(host), host)
  for (const host of ['127.0.0.1:8443', 'localhost', 'vault.azure.net', 'evil-vault.azure.net.example.com', 'akv.internal']) t.notOk(isAzureVaultHost(host), host)
})

t.test('staticTokenCredential returns the token with a future expiry', async t => {
  const token = await staticTokenCredential('tok').getToken('https://vault.azure.net/.default')
  t.equal(token?.token, 'tok')
  t.ok((token?.expiresOnTimestamp ?? 0) > Date.now())
})

t.test('vaultError maps SDK failures and never carries tokens', async t => {
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'
  const rest = (statusCode: number, code: string, message: string): unknown => Object.assign(new Error('x'), { name: 'RestError', statusCode, details: { error: { code, message } } })
  t.match(vaultError(rest(401, 'Unauthorized', jwt), 'v'), { code: 'ERR_ACCESS_DENIED', message: /401/ })
  t.match(vaultError(rest(403, 'Forbidden', 'Caller is not authorized'), 'v'), { code: 'ERR_ACCESS_DENIED', message: /Forbidden: Caller is not authorized/ })
  const bad = vaultError(rest(400, 'BadParameter', `policy ${jwt}\nsecond line`), 'v')
  t.match(bad, { code: 'ERR_UPSTREAM_REJECTED', message: /400 BadParameter: policy \[redacted\] second line/, details: { upstreamStatus: 400, upstreamCode: 'BadParameter' } })
  t.notOk(bad.message.includes(jwt))
  t.match(vaultError(rest(409, 'Conflict', 'x'.repeat(500)), 'v'), { message: /x{200}…/ })
  t.match(vaultError(rest(503, 'ServiceUnavailable', ''), 'v'), { code: 'ERR_UPSTREAM_UNAVAILABLE', message: /503/ })
  t.match(vaultError(rest(429, '', ''), 'v'), { code: 'ERR_UPSTREAM_UNAVAILABLE', message: /no message/ })
  t.match(vaultError(Object.assign(new Error('aborted'), { name: 'AbortError' }), 'v'), { code: 'ERR_UPSTREAM_TIMEOUT' })
  t.match(vaultError(Object.assign(new Error('no identity'), { name: 'CredentialUnavailableError' }), 'v'), { code: 'ERR_IDENTITY_UNAVAILABLE', message: /no identity/ })
  t.match(vaultError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }), 'v'), { code: 'ERR_UPSTREAM_UNAVAILABLE', message: /ECONNREFUSED/ })
  t.match(vaultError(Object.assign(new Error('tls'), { cause: { code: 'SELF_SIGNED_CERT_IN_CHAIN' } }), 'v'), { message: /SKR_EXTRA_CA_CERTS/ })
  const mine = new AccessDenied('already mapped')
  t.equal(vaultError(mine, 'v'), mine)
})
