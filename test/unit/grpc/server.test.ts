// The gRPC key provider through a real grpc-js client on 127.0.0.1:0: every method under
// both service names, health, reflection, the wrap → unwrap round trip, the reference's
// packet from a hand-built fixture, and the status code of every failure class.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { status, type ServiceError } from '@grpc/grpc-js'
import {
  AccessDenied, InternalError, KeyReleaseDenied, RequestInvalid, SnpDeviceUnavailable,
  UpstreamTimeout, UpstreamUnavailable, type SidecarError
} from '../../../src/errors.ts'
import { bindHost, startGrpcServer } from '../../../src/grpc/server.ts'
import { createConnectionGate } from '../../../src/listen/connections.ts'
import { open, receive } from '../../helpers/raw-http.ts'
import { FAKE_COMBINED, FAKE_REPORT, testConfig } from '../../doubles/fake-services.ts'
import {
  callFails, callUnary, connectClients, fixtureKey, FIXTURE_DIR, generateRsaKey, listServices, startHarness,
  tempDir, TEST_ENDPOINTS, writeKeyFiles, type GrpcHarness
} from '../../doubles/grpc-fakes.ts'

const b64 = (data: string | Buffer): string => Buffer.from(data).toString('base64')
const REF_IN = 'key_provider_key_wrap_protocol_input'
const REF_OUT = 'key_provider_key_wrap_protocol_output'
const OCI_IN = 'KeyProviderKeyWrapProtocolInput'
const OCI_OUT = 'KeyProviderKeyWrapProtocolOutput'

function wrapInput (keyPath: string, data: Buffer, agent = 'skr'): Buffer {
  return Buffer.from(JSON.stringify({
    op: 'keywrap',
    keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64(`${agent}:${keyPath}`)] } }, optsdata: b64(data) }
  }))
}

/** Exactly the request examples/skr/aks-kata-cc/unwrap.sh builds with echo. */
function unwrapInput (annotationB64: string, agent = 'skr'): Buffer {
  return Buffer.from(`{"op":"keyunwrap","keywrapparams":{},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["${b64(agent)}"]}},"annotation":"${annotationB64}"}}\n`)
}

function outputJson (response: Record<string, unknown>, field: string): Record<string, Record<string, unknown>> {
  return JSON.parse((response[field] as Buffer).toString('utf8')) as Record<string, Record<string, unknown>>
}

function trailerCode (err: ServiceError): unknown {
  return err.metadata.get('skr-error-code')[0]
}

let h: GrpcHarness
let dir: string
let cleanup: () => Promise<void>
const key = generateRsaKey()
const secret = Buffer.from('a layer key: 0123456789abcdef0123456789abcdef')

t.before(async () => {
  h = await startHarness()
  ;({ dir, cleanup } = await tempDir())
})
t.afterEach(() => {
  h.attestation.mode = { kind: 'ok' }
  h.keyRelease.mode = { kind: 'ok' }
  h.keyRelease.keys.clear()
})
t.teardown(async () => {
  await h.close()
  await cleanup()
})

t.test('SayHello answers like the reference', async t => {
  const res = await callUnary(h.clients.reference, 'SayHello', { name: 'this is a test!' })
  t.same(res, { message: 'Hello this is a test!' })
})

t.test('reflection lists both key provider names, health and reflection (grpcurl list)', async t => {
  const names = await listServices(h.clients.reflection)
  for (const name of ['key_provider.KeyProviderService', 'keyprovider.KeyProviderService', 'grpc.health.v1.Health', 'grpc.reflection.v1alpha.ServerReflection']) {
    t.ok(names.includes(name), name)
  }
})

t.test('health: SERVING for the server and both service names, NOT_FOUND for others', async t => {
  for (const service of ['', 'key_provider.KeyProviderService', 'keyprovider.KeyProviderService']) {
    t.same(await callUnary(h.clients.health, 'Check', { service }), { status: 'SERVING' }, service || '(server)')
  }
  const err = await callFails(h.clients.health, 'Check', { service: 'nope.Service' })
  t.equal(err.code, status.NOT_FOUND)
})

t.test('GetReport hashes the hex string itself (reference quirk) and answers lowercase hex', async t => {
  const res = await callUnary(h.clients.reference, 'GetReport', { report_data_hex_string: 'ABcd01' })
  t.same(res, { report_hex_string: FAKE_REPORT.toString('hex') })
  const call = h.attestation.calls.at(-1)
  t.same(call?.runtimeData, Buffer.from('ABcd01', 'utf8'), 'the characters, not the bytes they spell')
  await callUnary(h.clients.reference, 'GetReport', { report_data_hex_string: '' })
  t.same(h.attestation.calls.at(-1)?.runtimeData, Buffer.alloc(0), 'empty is allowed, as in the README example')
})

t.test('GetReport takes any string, as the reference does: its own test suite sends base64 text', async t => {
  // tests/skr/test.py in the reference sends base64 text; the reference hashes the string's bytes.
  for (const text of ['aGVsbG8gd29ybGQ=', 'not hex!', 'ünïcode ✓']) {
    const res = await callUnary(h.clients.reference, 'GetReport', { report_data_hex_string: text })
    t.same(res, { report_hex_string: FAKE_REPORT.toString('hex') }, JSON.stringify(text))
    t.same(h.attestation.calls.at(-1)?.runtimeData, Buffer.from(text, 'utf8'), 'the string\'s UTF-8 bytes are hashed')
  }
})

t.test('GetReport: no device → FAILED_PRECONDITION', async t => {
  h.attestation.mode = { kind: 'fail', error: new SnpDeviceUnavailable('no /dev/sev-guest, no configfs-tsm') }
  const none = await callFails(h.clients.reference, 'GetReport', { report_data_hex_string: '00' })
  t.equal(none.code, status.FAILED_PRECONDITION)
  t.equal(trailerCode(none), 'ERR_SNP_DEVICE_UNAVAILABLE')
  t.equal(none.details, 'ERR_SNP_DEVICE_UNAVAILABLE: attestation device unavailable', 'fixed text for server-side failures')
})

t.test('GetAttestationData maps the combined evidence; bad base64 → INVALID_ARGUMENT; upstream down → UNAVAILABLE', async t => {
  const res = await callUnary(h.clients.reference, 'GetAttestationData', { b64_runtime_data_string: b64('nonce') })
  t.same(res, {
    endorsed_tcb: FAKE_COMBINED.endorsedTcb,
    certs: FAKE_COMBINED.endorsements,
    attestation_report: FAKE_COMBINED.evidence,
    uvm_reference_info: FAKE_COMBINED.uvmEndorsements
  })
  t.same(h.attestation.calls.at(-1)?.runtimeData, Buffer.from('nonce'))
  const bad = await callFails(h.clients.reference, 'GetAttestationData', { b64_runtime_data_string: '%%%' })
  t.equal(bad.code, status.INVALID_ARGUMENT)
  h.attestation.mode = { kind: 'fail', error: new UpstreamUnavailable('THIM unreachable') }
  const down = await callFails(h.clients.reference, 'GetAttestationData', { b64_runtime_data_string: '' })
  t.equal(down.code, status.UNAVAILABLE)
})

t.test('WrapKey → UnWrapKey round trip under the reference name, in its exact JSON', async t => {
  const keyPath = await writeKeyFiles(dir, 'roundtrip', key)
  h.keyRelease.keys.set('roundtrip', key.privateJwk)
  const wrapped = await callUnary(h.clients.reference, 'WrapKey', { [REF_IN]: wrapInput(keyPath, secret) })
  const wrapText = (wrapped[REF_OUT] as Buffer).toString('utf8')
  t.match(wrapText, /^\{"keywrapresults":\{"annotation":"[A-Za-z0-9+/]+=*"\},"keyunwrapresults":\{"optsdata":null\}\}$/)
  const annotationB64 = outputJson(wrapped, REF_OUT).keywrapresults?.annotation as string
  const packet = JSON.parse(Buffer.from(annotationB64, 'base64').toString()) as Record<string, unknown>
  t.same(Object.keys(packet), ['kid', 'wrapped_data', 'wrap_type', 'kms_endpoint', 'attester_endpoint'])
  t.match(packet, { kid: 'roundtrip', wrap_type: 'rsa_3072', kms_endpoint: TEST_ENDPOINTS.kms, attester_endpoint: TEST_ENDPOINTS.attester })

  const unwrapped = await callUnary(h.clients.reference, 'UnWrapKey', { [REF_IN]: unwrapInput(annotationB64) })
  t.equal((unwrapped[REF_OUT] as Buffer).toString(), `{"keywrapresults":{"annotation":null},"keyunwrapresults":{"optsdata":"${b64(secret)}"}}`)
  t.same(h.keyRelease.calls.at(-1)?.request, { maaEndpoint: TEST_ENDPOINTS.attester, akvEndpoint: TEST_ENDPOINTS.kms, kid: 'roundtrip' },
    'released through KeyReleaseService with the packet endpoints')
})

t.test('the ocicrypt / CoCo name: same methods, byte fields as arrays (serde Vec<u8>), interchangeable packets', async t => {
  const keyPath = await writeKeyFiles(dir, 'coco', key)
  h.keyRelease.keys.set('coco', key.privateJwk)
  const wrapped = await callUnary(h.clients.ocicrypt, 'WrapKey', { [OCI_IN]: wrapInput(keyPath, secret) })
  const out = outputJson(wrapped, OCI_OUT)
  t.same(Object.keys(out), ['keywrapresults'])
  const annotation = Buffer.from(out.keywrapresults?.annotation as number[])
  // ocicrypt sends the annotation back base64-encoded (ocicrypt-rs: base64::encode(annotation)).
  const unwrapped = await callUnary(h.clients.ocicrypt, 'UnWrapKey', { [OCI_IN]: unwrapInput(annotation.toString('base64')) })
  t.same(outputJson(unwrapped, OCI_OUT), { keyunwrapresults: { optsdata: [...secret] } })
  // A packet wrapped under one name unwraps under the other.
  const viaRef = await callUnary(h.clients.reference, 'UnWrapKey', { [REF_IN]: unwrapInput(annotation.toString('base64')) })
  t.equal(outputJson(viaRef, REF_OUT).keyunwrapresults?.optsdata, b64(secret))
})

t.test('interchange: the hand-built reference packet (fixture) unwraps to the fixture plaintext', async t => {
  const fixture = await fixtureKey()
  h.keyRelease.keys.set('testkey000', fixture.privateJwk)
  const wrappedFile = await readFile(join(FIXTURE_DIR, 'wrapped'), 'utf8')
  const res = await callUnary(h.clients.reference, 'UnWrapKey', { [REF_IN]: unwrapInput(wrappedFile) })
  const optsdata = outputJson(res, REF_OUT).keyunwrapresults?.optsdata as string
  t.same(Buffer.from(optsdata, 'base64'), await readFile(join(FIXTURE_DIR, 'plaintext')))
  t.same(h.keyRelease.calls.at(-1)?.request, {
    maaEndpoint: 'sharedeus2.eus2.attest.azure.net', akvEndpoint: 'accmhsm.managedhsm.azure.net', kid: 'testkey000'
  })
})

t.test('UnWrapKey: every bad-input class answers INVALID_ARGUMENT before any release', async t => {
  const goodPacket = b64(JSON.stringify({ kid: 'k', wrapped_data: b64('x'), kms_endpoint: 'v.vault.azure.net', attester_endpoint: 'm.attest.azure.net' }))
  const cases: Array<[string, Buffer, RegExp]> = [
    ['ill-formed JSON', Buffer.from('{"op":"keyunwrap",'), /key provider input is not valid JSON/],
    ['not an object', Buffer.from('[1,2]'), /must be a JSON object/],
    ['wrong agent name', unwrapInput(goodPacket, 'kbs'), /unexpected attestation agent/],
    ['no agent parameter', Buffer.from(JSON.stringify({ keyunwrapparams: { dc: { Parameters: {} }, annotation: goodPacket } })), /attestation-agent must be specified/],
    ['agent of the wrong type', Buffer.from(JSON.stringify({ keyunwrapparams: { dc: { Parameters: { 'attestation-agent': 'c2ty' } } } })), /must be an array/],
    ['non-base64 annotation', unwrapInput('not*base64!'), /annotation is not base64/],
    ['annotation missing', unwrapInput(''), /annotation is missing/],
    ['annotation not JSON', unwrapInput(b64('kid=k')), /annotation packet is not valid JSON/],
    ['annotation without kms_endpoint', unwrapInput(b64(JSON.stringify({ kid: 'k', wrapped_data: b64('x'), attester_endpoint: 'm' }))), /has no kms_endpoint/],
    ['annotation with a URL path endpoint', unwrapInput(b64(JSON.stringify({ kid: 'k', wrapped_data: b64('x'), kms_endpoint: 'https://v.vault.azure.net/keys', attester_endpoint: 'm' }))), /annotation.kms_endpoint must be a host name/],
    ['op contradicting the method', Buffer.from(JSON.stringify({ op: 'keywrap', keyunwrapparams: { dc: { Parameters: { 'attestation-agent': ['c2ty'] } }, annotation: goodPacket } })), /op must be "keyunwrap"/]
  ]
  const before = h.keyRelease.calls.length
  for (const [name, input, message] of cases) {
    for (const [client, field] of [[h.clients.reference, REF_IN], [h.clients.ocicrypt, OCI_IN]] as const) {
      const err = await callFails(client, 'UnWrapKey', { [field]: input })
      t.equal(err.code, status.INVALID_ARGUMENT, `${name} (${field})`)
      t.match(err.details, message, `${name} message`)
      t.equal(trailerCode(err), 'ERR_REQUEST_INVALID')
    }
  }
  t.equal(h.keyRelease.calls.length, before, 'nothing was released')
})

t.test('UnWrapKey: release failures keep their meaning as gRPC codes (never UNKNOWN)', async t => {
  const keyPath = await writeKeyFiles(dir, 'failures', key)
  const wrapped = await callUnary(h.clients.reference, 'WrapKey', { [REF_IN]: wrapInput(keyPath, secret) })
  const annotation = outputJson(wrapped, REF_OUT).keywrapresults?.annotation as string
  const unwrap = async (): Promise<ServiceError> => await callFails(h.clients.reference, 'UnWrapKey', { [REF_IN]: unwrapInput(annotation) })

  const unknownKid = await unwrap()
  t.equal(unknownKid.code, status.NOT_FOUND, 'unknown kid → NOT_FOUND')
  t.equal(trailerCode(unknownKid), 'ERR_KEY_NOT_FOUND')

  h.keyRelease.keys.set('failures', key.privateJwk)
  const table: Array<[string, SidecarError | Error, status]> = [
    ['release denied', new KeyReleaseDenied('release policy not met'), status.PERMISSION_DENIED],
    ['credentials refused', new AccessDenied('vault said 401'), status.PERMISSION_DENIED],
    ['upstream down', new UpstreamUnavailable('maa unreachable'), status.UNAVAILABLE],
    ['upstream timeout', new UpstreamTimeout('akv too slow'), status.DEADLINE_EXCEEDED],
    ['a bug', new TypeError('x is undefined'), status.INTERNAL]
  ]
  for (const [name, error, code] of table) {
    h.keyRelease.mode = { kind: 'fail', error }
    const err = await unwrap()
    t.equal(err.code, code, name)
    t.not(err.code, status.UNKNOWN)
  }
  h.keyRelease.mode = { kind: 'fail', error: new TypeError('secret internals') }
  t.equal((await unwrap()).details, 'ERR_INTERNAL: internal error', 'unknown errors say nothing')

  h.keyRelease.mode = { kind: 'ok' }
  h.keyRelease.keys.set('failures', { kty: 'oct', k: b64('0123456789abcdef') })
  const notRsa = await unwrap()
  t.equal(notRsa.code, status.FAILED_PRECONDITION, 'released key not RSA → FAILED_PRECONDITION')
  t.match(notRsa.details, /not an RSA private key \(kty oct\)/)

  h.keyRelease.keys.set('failures', generateRsaKey().privateJwk)
  const wrongKey = await unwrap()
  t.equal(wrongKey.code, status.INVALID_ARGUMENT, 'another key → INVALID_ARGUMENT')
  t.notMatch(wrongKey.details, annotation.slice(0, 40))
})

t.test('WrapKey: bad requests and unusable key files', async t => {
  const keyPath = await writeKeyFiles(dir, 'wrapcases', key)
  const cases: Array<[string, Buffer, status, RegExp]> = [
    ['no key path', Buffer.from(JSON.stringify({ keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64('skr')] } } } })), status.INVALID_ARGUMENT, /key path is not provided/],
    ['wrong agent', wrapInput(keyPath, secret, 'aa'), status.INVALID_ARGUMENT, /unexpected attestation agent/],
    ['optsdata not base64', Buffer.from(JSON.stringify({ keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64(`skr:${keyPath}`)] } }, optsdata: '***' } })), status.INVALID_ARGUMENT, /optsdata is not base64/],
    ['too much data for RSA-OAEP', wrapInput(keyPath, Buffer.alloc(300)), status.INVALID_ARGUMENT, /wraps at most 190/],
    ['no key info file', wrapInput(join(dir, 'missing'), secret), status.FAILED_PRECONDITION, /key info file .*missing-info\.json not found/]
  ]
  for (const [name, input, code, message] of cases) {
    const err = await callFails(h.clients.reference, 'WrapKey', { [REF_IN]: input })
    t.equal(err.code, code, name)
    t.match(err.details, message, `${name} message`)
  }
  // Agent name is case-insensitive, as the reference's strings.EqualFold.
  const ok = await callUnary(h.clients.reference, 'WrapKey', { [REF_IN]: wrapInput(keyPath, secret, 'SKR') })
  t.ok(ok[REF_OUT])
})

t.test('a hung release: the client deadline ends it and the service sees its signal abort', async t => {
  h.keyRelease.keys.set('k', key.privateJwk)
  h.keyRelease.mode = { kind: 'hang', honourSignal: true }
  const packet = b64(JSON.stringify({ kid: 'k', wrapped_data: b64('x'), kms_endpoint: 'v.vault.azure.net', attester_endpoint: 'm.attest.azure.net' }))
  const err = await callFails(h.clients.reference, 'UnWrapKey', { [REF_IN]: unwrapInput(packet) }, new Date(Date.now() + 200))
  t.equal(err.code, status.DEADLINE_EXCEEDED)
  const signal = h.keyRelease.calls.at(-1)?.signal
  await new Promise<void>(resolve => { if (signal?.aborted === true) resolve(); else signal?.addEventListener('abort', () => { resolve() }) })
  t.equal(signal?.aborted, true)
})

t.test('a service ignoring its signal cannot hold a call past SKR_REQUEST_TIMEOUT_MS', async t => {
  const short = await startHarness({ env: { SKR_REQUEST_TIMEOUT_MS: '50' } })
  t.teardown(short.close)
  short.attestation.mode = { kind: 'hang', honourSignal: false }
  const err = await callFails(short.clients.reference, 'GetAttestationData', { b64_runtime_data_string: '' })
  t.equal(err.code, status.DEADLINE_EXCEEDED)
  t.equal(trailerCode(err), 'ERR_UPSTREAM_TIMEOUT')
})

t.test('logs never carry the secret, the wrapped data or private key members', async t => {
  const keyPath = await writeKeyFiles(dir, 'logcheck', key)
  h.keyRelease.keys.set('logcheck', key.privateJwk)
  const wrapped = await callUnary(h.clients.reference, 'WrapKey', { [REF_IN]: wrapInput(keyPath, secret) })
  const annotation = outputJson(wrapped, REF_OUT).keywrapresults?.annotation as string
  await callUnary(h.clients.reference, 'UnWrapKey', { [REF_IN]: unwrapInput(annotation) })
  const logs = h.logText.join('')
  t.match(logs, /unwrap requested/)
  for (const needle of [secret.toString(), b64(secret), annotation.slice(0, 32), String(key.privateJwk.d).slice(0, 32)]) {
    t.notOk(logs.includes(needle), 'secret-free logs')
  }
})

t.test('close reports NOT_SERVING to health watchers, then stops', async t => {
  const own = await startHarness()
  const watch = (own.clients.health as unknown as { Watch: (req: unknown) => NodeJS.EventEmitter & { cancel: () => void } }).Watch({ service: '' })
  const statuses: string[] = []
  const notServing = new Promise<void>(resolve => {
    watch.on('data', (msg: { status: string }) => {
      statuses.push(msg.status)
      if (msg.status === 'SERVING') void own.server.close(50)
      if (msg.status === 'NOT_SERVING') resolve()
    })
    watch.on('error', () => {})
  })
  await notServing
  watch.cancel()
  await own.close()
  t.same(statuses, ['SERVING', 'NOT_SERVING'])
})

t.test('binding: localhost pins 127.0.0.1, non-loopback needs the opt-in', async t => {
  t.equal(bindHost('localhost'), '127.0.0.1')
  t.equal(bindHost('::1'), '[::1]')
  t.equal(bindHost('[::1]'), '[::1]')
  t.equal(bindHost('127.0.0.2'), '127.0.0.2')
  const config = { ...testConfig(), host: '0.0.0.0', allowNonLoopback: false }
  await t.rejects(startGrpcServer({ config, attestation: h.attestation, keyRelease: h.keyRelease, port: 0 }), { code: 'ERR_CONFIG_INVALID' })
  const taken = await startGrpcServer({ config: testConfig(), attestation: h.attestation, keyRelease: h.keyRelease, port: h.server.port })
    .then(async s => { await s.close(0); return null }, (err: unknown) => err)
  t.match(taken, { code: 'ERR_LISTEN_FAILED', details: { errno: 'EADDRINUSE', port: h.server.port } }, 'a port in use is a start-up error')
  t.match((taken as Error).message, new RegExp(`^gRPC port ${h.server.port} on 127\\.0\\.0\\.1 is in use \\(EADDRINUSE\\): another skr or the reference sidecar\\? .*set Port / --port`), 'naming the setting to change')
})

t.test('RequestInvalid and InternalError classes round-trip through the status map', async t => {
  h.attestation.mode = { kind: 'fail', error: new RequestInvalid('bad thing') }
  t.equal((await callFails(h.clients.reference, 'GetReport', { report_data_hex_string: '' })).details, 'ERR_REQUEST_INVALID: bad thing')
  h.attestation.mode = { kind: 'fail', error: new InternalError('secret detail') }
  t.equal((await callFails(h.clients.reference, 'GetReport', { report_data_hex_string: '' })).details, 'ERR_INTERNAL: internal error')
})

t.test('close: a call still waiting when the grace period ends gets UNAVAILABLE ERR_SHUTTING_DOWN, not a cut stream', async t => {
  const own = await startHarness()
  const { dir: ownDir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const keyPath = await writeKeyFiles(ownDir, 'stopped', key)
  const wrapped = await callUnary(own.clients.reference, 'WrapKey', { [REF_IN]: wrapInput(keyPath, secret) })
  const annotation = outputJson(wrapped, REF_OUT).keywrapresults?.annotation as string
  own.keyRelease.keys.set('stopped', key.privateJwk)
  own.keyRelease.mode = { kind: 'hang', honourSignal: true }
  const waiting = callFails(own.clients.reference, 'UnWrapKey', { [REF_IN]: unwrapInput(annotation) })
  while (own.keyRelease.calls.length === 0) await new Promise(resolve => setTimeout(resolve, 5))
  const closed = own.server.close(50)
  const err = await waiting
  t.equal(err.code, status.UNAVAILABLE)
  t.equal(trailerCode(err), 'ERR_SHUTTING_DOWN')
  t.match(err.details, /^ERR_SHUTTING_DOWN: /)
  await closed
  own.clients.close()
})

t.test('gRPC connections count under the sidecar\'s connection gate', async t => {
  const gate = createConnectionGate({ maxConnections: 3, timers: { idleConnectionTimeoutMs: 60_000, busyTimeoutMs: 60_000, nextRequestTimeoutMs: 60_000 } })
  const own = await startGrpcServer({ config: testConfig({ ServerType: 'grpc' }), attestation: h.attestation, keyRelease: h.keyRelease, port: 0, gate })
  t.teardown(async () => { await own.close(0) })
  const raw = await Promise.all(Array.from({ length: 5 }, async () => await open({ port: own.port })))
  t.teardown(() => { for (const s of raw) s.destroy() })
  const ends = await Promise.all(raw.map(async s => await receive(s, { withinMs: 2_000, untilClosed: true })))
  t.equal(ends.filter(e => e.closed).length, 2, 'two past the cap of three were closed at once')
  t.equal(gate.open, 3)
  for (const s of raw) s.destroy()
  while (gate.open > 0) await new Promise(resolve => setTimeout(resolve, 10))
  const clients = connectClients(own.address)
  t.teardown(() => { clients.close() })
  t.same(await callUnary(clients.reference, 'SayHello', { name: 'gate' }), { message: 'Hello gate' }, 'calls are served once there is room')
  t.equal(gate.open, 1)
})
