import t from 'tap'
import { hostnameOf, resourceFor, scopeOf, VAULT_RESOURCES } from '../../../src/identity/resource.ts'

t.test('resource by endpoint: every cloud, both services, and the reference fallback', async (t) => {
  const table: Array<[string, 'vault' | 'mhsm', string]> = [
    ['myvault.vault.azure.net', 'vault', 'https://vault.azure.net'],
    ['MyVault.Vault.Azure.Net', 'vault', 'https://vault.azure.net'],
    ['myvault.vault.azure.net:443', 'vault', 'https://vault.azure.net'],
    ['myvault.vault.azure.net.', 'vault', 'https://vault.azure.net'],
    ['myhsm.managedhsm.azure.net', 'mhsm', 'https://managedhsm.azure.net'],
    ['myvault.vault.azure.cn', 'vault', 'https://vault.azure.cn'],
    ['myhsm.managedhsm.azure.cn', 'mhsm', 'https://managedhsm.azure.cn'],
    ['myvault.vault.usgovcloudapi.net', 'vault', 'https://vault.usgovcloudapi.net'],
    ['myhsm.managedhsm.usgovcloudapi.net', 'mhsm', 'https://managedhsm.usgovcloudapi.net'],
    // Unknown hosts: 'managedhsm' anywhere → mHSM (reference rule), else vault; public cloud.
    ['127.0.0.1:8443', 'vault', 'https://vault.azure.net'],
    ['localhost', 'vault', 'https://vault.azure.net'],
    ['managedhsm-emulator.local:9000', 'mhsm', 'https://managedhsm.azure.net'],
    ['[::1]:8443', 'vault', 'https://vault.azure.net'],
    // A look-alike suffix is not the real domain.
    ['evilvault.azure.net.example.com', 'vault', 'https://vault.azure.net'],
    ['notvault.azure.cn', 'vault', 'https://vault.azure.net']
  ]
  for (const [endpoint, kind, resource] of table) {
    t.same(resourceFor(endpoint), { kind, resource, scope: `${resource}/.default` }, endpoint)
  }
})

t.test('table and helpers', async (t) => {
  t.equal(VAULT_RESOURCES.length, 6)
  t.ok(Object.isFrozen(VAULT_RESOURCES) && VAULT_RESOURCES.every((e) => Object.isFrozen(e)))
  t.equal(scopeOf('https://vault.azure.net/'), 'https://vault.azure.net/.default')
  t.equal(hostnameOf('[::1]:80'), '[::1]')
  t.equal(hostnameOf('A.B:1'), 'a.b')
  t.throws(() => hostnameOf(1 as unknown as string), TypeError)
})
