// Attestation reuse end to end over real HTTPS on loopback: simulated SEV-SNP → the MAA emulator →
// IMDS → the AKV emulator, wired by buildAttestation and buildKeyRelease as `skr serve` wires
// them. Counts upstream requests (never timings): with reuse on, 20 releases need one MAA
// attestation; with SKR_ATTESTATION_TTL_SECONDS=0, one each, as the reference.
import t from 'tap'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildAttestation } from '../../../src/app/attestation.ts'
import { loadConfig } from '../../../src/config/config.ts'
import { startEmulatedEnvironment } from '../../../src/emulator/environment.ts'
import { buildKeyRelease } from '../../../src/app/release.ts'
import type { BuildKeyReleaseOptions } from '../../../src/app/release.ts'

const env = await startEmulatedEnvironment({ cacheDir: join(tmpdir(), 'skr-test-emulated-chain') })
t.teardown(env.close)
// @azure/identity reads the IMDS redirect itself (once per process): this file runs in its own process.
process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = env.imds.url

const config = loadConfig([], env.skrEnv())
const attestation = await buildAttestation(config, { extraCa: [...env.extraCa] })
t.teardown(async () => {
  attestation.service.close()
  await Promise.all(Object.values(attestation.upstreams).map(async (u) => { await u.close() }))
})
await attestation.ready

const policy = { exportable: true, releasePolicy: { data: Buffer.from(JSON.stringify(env.releasePolicy())).toString('base64url') } }
const key = await env.akv.store.createKey('reuse-key', { kty: 'oct-HSM', size: 256, ...policy })
await env.akv.store.createKey('second-key', { kty: 'oct-HSM', size: 256, ...policy })
const maa = env.maa.endpoint
const vault = env.akv.endpoint

const releaseCalls = (): number => env.akv.requests.filter((r) => r.path.includes('/release')).length

async function build (options: BuildKeyReleaseOptions): Promise<Awaited<ReturnType<typeof buildKeyRelease>>> {
  const built = await buildKeyRelease(config, attestation.service, { extraCa: [...env.extraCa], ...options })
  t.teardown(built.close)
  return built
}

t.test('reuse on (default TTL): 20 sequential releases → 1 MAA attestation, 20 AKV releases', async (t) => {
  // The emulator counts every path: one release first, on another instance, so the one-time
  // signing-key fetches (skr's and the vault emulator's GET /certs) are out of the count.
  await (await build({ attestationTtlSeconds: 0, keyPoolSize: 0 })).release({ maaEndpoint: maa, akvEndpoint: vault, kid: 'reuse-key' })
  // The signer chain of the vault's JWS is verified once: every release must get the same roots
  // array, or signer-chain-cache.ts empties itself each time and rebuilds the chain on the hot path.
  const chainLookups: boolean[] = []
  const metrics = { cacheResult: (cache: string, hit: boolean) => { if (cache === 'signer_chain') chainLookups.push(hit) }, setPoolDepth: () => {} }
  const skr = await build({ keyPoolSize: 2, metrics })
  const maaBefore = env.maa.requests
  const akvBefore = releaseCalls()
  const tokensBefore = env.imds.tokenRequests
  for (let i = 0; i < 20; i++) {
    const jwk = await skr.release({ maaEndpoint: maa, akvEndpoint: vault, kid: 'reuse-key' })
    t.equal(jwk['k'], (key.material as Buffer).toString('base64url'), `release ${i + 1}`)
  }
  t.equal(env.maa.requests - maaBefore, 1, 'one attestation')
  t.equal(releaseCalls() - akvBefore, 20, 'every release is still judged by the vault')
  t.ok(env.imds.tokenRequests - tokensBefore <= 1, 'the AAD token is cached too')
  t.same(chainLookups, [false, ...Array<boolean>(19).fill(true)], 'the release signer chain is verified once, then cached')
})

t.test('TTL 0: 20 sequential releases → 20 MAA attestations, as the reference', async (t) => {
  const skr = await build({ attestationTtlSeconds: 0, keyPoolSize: 0 })
  const maaBefore = env.maa.requests
  const akvBefore = releaseCalls()
  for (let i = 0; i < 20; i++) await skr.release({ maaEndpoint: maa, akvEndpoint: vault, kid: 'reuse-key' })
  t.equal(env.maa.requests - maaBefore, 20)
  t.equal(releaseCalls() - akvBefore, 20)
})

t.test('batch with TTL 0: one attestation for all kids; a missing key is a per-kid error', async (t) => {
  const skr = await build({ attestationTtlSeconds: 0 })
  const maaBefore = env.maa.requests
  const result = await skr.releaseMany({ maaEndpoint: maa, akvEndpoint: vault, kids: ['reuse-key', 'second-key', 'no-such-key'] })
  t.same(Object.keys(result.keys), ['reuse-key', 'second-key'])
  t.match(result.errors['no-such-key'], { code: 'ERR_KEY_NOT_FOUND' })
  t.equal(env.maa.requests - maaBefore, 1)
})

t.test('concurrent identical releases share one AKV call', async (t) => {
  const skr = await build({})
  await skr.release({ maaEndpoint: maa, akvEndpoint: vault, kid: 'second-key' })
  const akvBefore = releaseCalls()
  const maaBefore = env.maa.requests
  const jwks = await Promise.all(Array.from({ length: 10 }, async () => await skr.release({ maaEndpoint: maa, akvEndpoint: vault, kid: 'second-key' })))
  t.ok(jwks.every((j) => j['k'] === jwks[0]?.['k']))
  t.equal(releaseCalls() - akvBefore, 1)
  t.equal(env.maa.requests - maaBefore, 0)
})

t.test('settings are checked', async (t) => {
  await t.rejects(buildKeyRelease(config, attestation.service, { attestationTtlSeconds: -1 }), { code: 'ERR_CONFIG_INVALID', message: /SKR_ATTESTATION_TTL_SECONDS/ })
  await t.rejects(buildKeyRelease(config, attestation.service, { keyPoolSize: 1.5 }), { code: 'ERR_CONFIG_INVALID', message: /SKR_KEY_POOL_SIZE/ })
  await t.rejects(buildKeyRelease(config, attestation.service, { maxBatch: 0 }), { code: 'ERR_CONFIG_INVALID', message: /maxBatch/ })
})
