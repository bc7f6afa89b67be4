// Issue 14 §1: one trust for the process. The extra CA is read and checked once, every upstream
// client comes from one factory (CA roots, proxy routing, metrics), and the builds that take a
// Trust never read SKR_EXTRA_CA_CERTS again.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildAttestation } from '../../../src/app/attestation.ts'
import { buildKeyRelease } from '../../../src/app/release.ts'
import { createTrust, readExtraCa } from '../../../src/app/trust.ts'
import { loadConfig } from '../../../src/config/config.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { FakeAttestationService } from '../../doubles/fake-services.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'

const pki = await createLocalPki({ commonName: 'trust test CA' })
const dir = mkdtempSync(join(tmpdir(), 'skr-trust-'))
const caFile = join(dir, 'ca.pem')
writeFileSync(caFile, pki.caCertPem)

t.test('reads the embedder\'s roots, then SKR_EXTRA_CA_CERTS; refuses an unreadable file or a bad PEM without naming it', async (t) => {
  const trust = await createTrust(loadConfig([], { SKR_EXTRA_CA_CERTS: caFile }), { extraCa: ['-----BEGIN CERTIFICATE-----\n' + pki.caCertPem.split('\n').slice(1).join('\n')] })
  t.equal(trust.extraCa.length, 2)
  t.equal(trust.extraCa[1], pki.caCertPem)
  const roots = trust.trustedRoots()
  t.equal(trust.trustedRoots(), roots, 'read once, then shared')
  t.ok(roots.all().some((c) => c.subject.includes('trust test CA')))
  await trust.close()

  const missing = join(dir, 'no-such-ca.pem')
  await t.rejects(createTrust(loadConfig([], { SKR_EXTRA_CA_CERTS: missing })), { code: 'ERR_CONFIG_INVALID', message: /SKR_EXTRA_CA_CERTS names a file that cannot be read \(ENOENT\)/ })
  const err = await createTrust(loadConfig([], { SKR_EXTRA_CA_CERTS: missing })).then(() => null, (e: unknown) => e as Error)
  t.notOk(err?.message.includes(missing), 'the message does not carry the path')
  const bad = join(dir, 'bad.pem')
  writeFileSync(bad, '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n')
  await t.rejects(createTrust(loadConfig([], { SKR_EXTRA_CA_CERTS: bad })), { code: 'ERR_CONFIG_INVALID' })
  t.same(await readExtraCa(loadConfig([], {}), ['x']), ['x'])
})

t.test('every client from one factory: the trust\'s roots, metrics, closed together', async (t) => {
  let hits = 0
  const server = await startHttpsServer((_req, res) => { hits++; res.end('ok') }, { pki })
  t.teardown(server.close)
  const seen: string[] = []
  const trust = await createTrust(loadConfig([], {}), { extraCa: [pki.caCertPem], observeUpstream: (service) => { seen.push(service) } })
  const maa = trust.upstream('maa', { totalTimeoutMs: 1234 })
  const akv = trust.upstream('akv')
  t.equal(maa.name, 'maa')
  t.equal(maa.policy.totalTimeoutMs, 1234)
  t.equal(akv.policy.totalTimeoutMs, 30_000, 'the default policy otherwise')
  const answer = await akv.request({ method: 'GET', url: server.url })
  t.equal(answer.status, 200, 'the extra root is trusted (the local CA signed the server)')
  t.same(seen, ['akv'], 'the call was recorded')
  await trust.close()
  await trust.close()
  await t.rejects(akv.request({ method: 'GET', url: server.url }), 'a closed client refuses further requests')
  t.equal(hits, 1, 'and sent nothing')
})

t.test('builds given a Trust do not read the CA file again', async (t) => {
  // The trust was made from a readable file; the Config the builds get names a file that no longer exists.
  const readable = join(dir, 'moving-ca.pem')
  writeFileSync(readable, pki.caCertPem)
  const trust = await createTrust(loadConfig([], { SKR_EXTRA_CA_CERTS: readable }))
  const gone = loadConfig([], { SKR_EXTRA_CA_CERTS: join(dir, 'gone.pem'), SKR_ATTESTATION: 'tsm', SKR_TSM_ROOT: join(dir, 'no-tsm') })
  const attestation = await buildAttestation(gone, { trust, root: dir })
  const release = await buildKeyRelease(gone, new FakeAttestationService(), { trust, keyPoolSize: 0 })
  t.equal(attestation.upstreams.maa.name, 'maa')
  await release.close()
  attestation.service.close()
  await trust.close()
  // Without a Trust, each build still reads (and refuses) the file itself.
  await t.rejects(buildKeyRelease(gone, new FakeAttestationService()), { code: 'ERR_CONFIG_INVALID' })
})
