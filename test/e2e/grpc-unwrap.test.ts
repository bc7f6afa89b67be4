// End to end through the real release path: `skr wrap` with the public half of an RSA-HSM key
// held by the AKV emulator, then gRPC UnWrapKey (as unwrap.sh sends it) → simulated SEV-SNP
// report → MAA emulator token → IMDS identity → AKV release → verified JWS → RSA-OAEP-SHA256
// decrypt. All on loopback; nothing is faked inside skr.
import t from 'tap'
import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { status } from '@grpc/grpc-js'
import { buildAttestation } from '../../src/app/attestation.ts'
import { run as wrapCommand } from '../../src/cli/wrap.ts'
import { loadConfig } from '../../src/config/config.ts'
import { startEmulatedEnvironment } from '../../src/emulator/environment.ts'
import { startGrpcServer } from '../../src/grpc/server.ts'
import { buildKeyRelease } from '../../src/app/release.ts'
import { callFails, callUnary, connectClients, tempDir } from '../doubles/grpc-fakes.ts'

const b64 = (data: string | Buffer): string => Buffer.from(data).toString('base64')

function unwrapRequest (annotationB64: string): Buffer {
  return Buffer.from(`{"op":"keyunwrap","keywrapparams":{},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["${b64('skr')}"]}},"annotation":"${annotationB64}"}}`)
}

async function silently<T> (work: () => Promise<T>): Promise<T> {
  const original = process.stderr.write.bind(process.stderr)
  process.stderr.write = (() => true) as typeof process.stderr.write
  try {
    return await work()
  } finally {
    process.stderr.write = original
  }
}

t.test('wrap with the vault key’s public half, unwrap through skr’s gRPC key provider', async t => {
  const env = await startEmulatedEnvironment()
  t.teardown(env.close)
  const encode = (policy: Record<string, unknown>): string => Buffer.from(JSON.stringify(policy)).toString('base64url')
  const otherHostData = createHash('sha256').update('package policy\n# another group\n').digest('hex')
  const keys: Record<string, string> = { 'grpc-key': env.hostData, 'grpc-other': otherHostData }
  for (const [name, hostData] of Object.entries(keys)) {
    await env.akv.store.createKey(name, { kty: 'RSA-HSM', size: 2048, exportable: true, releasePolicy: { data: encode(env.releasePolicy(hostData)), immutable: false } })
  }

  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  for (const name of Object.keys(keys)) {
    const material = env.akv.store.get(name)?.material as KeyObject
    await writeFile(join(dir, `${name}-pub.pem`), createPublicKey(material).export({ type: 'spki', format: 'pem' }))
    await writeFile(join(dir, `${name}-info.json`), JSON.stringify({
      public_key_path: join(dir, `${name}-pub.pem`), kms_endpoint: env.akv.endpoint, attester_endpoint: env.maa.endpoint
    }))
  }
  const secret = Buffer.from('the layer key, 32 bytes long....')
  await writeFile(join(dir, 'plaintext'), secret)

  // @azure/identity reads the IMDS redirect from the process environment itself.
  const previousAuthority = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = env.imds.url
  t.teardown(() => {
    if (previousAuthority === undefined) delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
    else process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = previousAuthority
  })
  const config = loadConfig([], { ...env.skrEnv(0), ServerType: 'grpc' })
  const extraCa = [...env.extraCa]
  const attestation = await buildAttestation(config, { extraCa })
  const keyRelease = await buildKeyRelease(config, attestation.service, { extraCa })
  const server = await startGrpcServer({ config, attestation: attestation.service, keyRelease, port: 0 })
  const clients = connectClients(server.address)
  t.teardown(async () => {
    clients.close()
    await server.close(0)
    attestation.service.close()
    await keyRelease.close()
    await Promise.allSettled(Object.values(attestation.upstreams).map(async u => { await u.close() }))
  })
  await attestation.ready

  for (const name of Object.keys(keys)) {
    const code = await silently(async () => await wrapCommand(['-infile', join(dir, 'plaintext'), '-keypath', join(dir, name), '-outfile', join(dir, `${name}.wrapped`)], {}))
    t.equal(code, 0, `skr wrap ${name}`)
  }

  const wrapped = await readFile(join(dir, 'grpc-key.wrapped'), 'utf8')
  const res = await callUnary(clients.reference, 'UnWrapKey', { key_provider_key_wrap_protocol_input: unwrapRequest(wrapped) })
  const out = JSON.parse((res.key_provider_key_wrap_protocol_output as Buffer).toString()) as { keyunwrapresults: { optsdata: string } }
  t.same(Buffer.from(out.keyunwrapresults.optsdata, 'base64'), secret, 'released through AKV and unwrapped')

  const viaCoco = await callUnary(clients.ocicrypt, 'UnWrapKey', { KeyProviderKeyWrapProtocolInput: unwrapRequest(wrapped) })
  const cocoOut = JSON.parse((viaCoco.KeyProviderKeyWrapProtocolOutput as Buffer).toString()) as { keyunwrapresults: { optsdata: number[] } }
  t.same(Buffer.from(cocoOut.keyunwrapresults.optsdata), secret, 'and under the ocicrypt name')

  const denied = await callFails(clients.reference, 'UnWrapKey', { key_provider_key_wrap_protocol_input: unwrapRequest(await readFile(join(dir, 'grpc-other.wrapped'), 'utf8')) })
  t.equal(denied.code, status.PERMISSION_DENIED, 'a key bound to another policy is refused')
  t.match(denied.details, /^ERR_KEY_RELEASE_DENIED: /)

  const packet = JSON.parse(Buffer.from(wrapped, 'base64').toString()) as Record<string, unknown>
  const unknown = b64(JSON.stringify({ ...packet, kid: 'no-such-key' }))
  const missing = await callFails(clients.reference, 'UnWrapKey', { key_provider_key_wrap_protocol_input: unwrapRequest(unknown) })
  t.equal(missing.code, status.NOT_FOUND, 'unknown kid')
})
