// Redaction at every level, proven: the app logs at `trace` into an array while keys are
// released, and no secret (access token, MAA token, JWK private members, runtime data) appears
// in any line, in its own form or re-encoded. Part one uses fake services that log secrets
// under the usual field names through the child logger they are handed (the redact paths'
// job); part two, when the emulated environment is available, does a real release.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { pino } from 'pino'
import { loadConfig } from '../../../src/config/config.ts'
import { loggerOptions } from '../../../src/log.ts'
import { createMetricsRegistry } from '../../../src/observability/registry.ts'
import { buildApp } from '../../../src/server/app.ts'
import { listen } from '../../../src/server/listen.ts'
import { exchange } from '../../helpers/raw-http.ts'
import * as EnvironmentModule from '../../../src/emulator/environment.ts'
import type { AttestationService, AttestationStatus, CombinedEvidence, KeyReleaseRequest, KeyReleaseService } from '../../../src/service/types.ts'
import * as SidecarModule from '../../../src/app/sidecar.ts'
import { FAKE_COMBINED, FAKE_REPORT, testConfig, NO_SHEDDING, TEST_SHEDDING_OFF } from '../../doubles/fake-services.ts'

const PRIVATE_MEMBERS = ['k', 'd', 'p', 'q', 'dp', 'dq', 'qi'] as const

/** Every form a secret could take in a log line: as is, base64/base64url of its text, and (for base64url values) of its bytes. */
function forms (secret: string): string[] {
  const out = new Set([secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url')])
  if (/^[A-Za-z0-9_-]+$/.test(secret)) {
    const bytes = Buffer.from(secret, 'base64url')
    out.add(bytes.toString('base64').replace(/=+$/, ''))
    out.add(bytes.toString('hex'))
  }
  // Drop trailing padding so a re-encoding inside a longer string still matches.
  return [...out].map(f => f.replace(/=+$/, '')).filter(f => f.length >= 8)
}

function capture (): { logger: Logger; lines: string[] } {
  const lines: string[] = []
  const logger = pino(loggerOptions('trace'), { write (line: string) { lines.push(line) } })
  return { logger, lines }
}

/** Each secret (by name) some form of which appears in the log. */
function leaks (lines: readonly string[], secrets: Readonly<Record<string, string>>): string[] {
  const all = lines.join('')
  return Object.entries(secrets).filter(([, secret]) => forms(secret).some(form => all.includes(form))).map(([name]) => name)
}

/** Paths of JWK private members in parsed log lines whose value is not the censor. */
function unredactedMembers (lines: readonly string[]): string[] {
  const found: string[] = []
  const walk = (value: unknown, path: string): void => {
    if (Array.isArray(value)) { value.forEach((v, i) => { walk(v, `${path}[${i}]`) }); return }
    if (typeof value !== 'object' || value === null) return
    for (const [key, v] of Object.entries(value)) {
      if ((PRIVATE_MEMBERS as readonly string[]).includes(key) && typeof v === 'string' && v !== '[redacted]') found.push(`${path}.${key}`)
      walk(v, `${path}.${key}`)
    }
  }
  lines.forEach((line, i) => { walk(JSON.parse(line), `line ${i}`) })
  return found
}

t.test('the scanners find secrets in every form', async t => {
  const secret = randomBytes(24).toString('base64url')
  const bytes = Buffer.from(secret, 'base64url')
  for (const line of [secret, bytes.toString('base64'), bytes.toString('hex'), Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url')]) {
    t.same(leaks([`{"msg":"prefix ${line} suffix"}`], { secret }), ['secret'], line)
  }
  t.same(leaks(['{"msg":"nothing here"}'], { secret }), [])
  t.same(unredactedMembers(['{"a":{"jwk":{"d":"x","k":"[redacted]"}}}']), ['line 0.a.jwk.d'])
})

t.test('fake services logging secrets at trace: nothing secret reaches the log', async t => {
  const jwk: Record<string, string> = { kty: 'RSA', n: 'public-modulus-is-fine', e: 'AQAB' }
  for (const m of PRIVATE_MEMBERS) jwk[m] = randomBytes(24).toString('base64url')
  const accessToken = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"caller-access-token":"' + randomBytes(8).toString('hex') + '"}').toString('base64url')}.CALLERSIG${randomBytes(8).toString('hex')}`
  const maaToken = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"maa":"' + randomBytes(8).toString('hex') + '"}').toString('base64url')}.MAASIG${randomBytes(8).toString('hex')}`
  const aadToken = `eyJ0eXAiOiJKV1QifQ.${Buffer.from('{"aad":"' + randomBytes(8).toString('hex') + '"}').toString('base64url')}.AADSIG${randomBytes(8).toString('hex')}`
  const runtimeMarker = `RUNTIME-MARKER-${randomBytes(8).toString('hex')}`
  const wrappingPrivate = randomBytes(24).toString('base64url')

  const { logger, lines } = capture()
  const log = logger.child({ component: 'fake' })

  const keyRelease: KeyReleaseService = {
    async release (request: KeyReleaseRequest) {
      log.trace({ accessToken: request.accessToken, request }, 'release: caller token')
      log.trace({ headers: { authorization: `Bearer ${aadToken}` }, token: aadToken }, 'release: vault request')
      log.debug({ maaToken, body: { target: maaToken, access_token: aadToken } }, 'release: attested')
      log.trace({ key: jwk, jwk, released: jwk }, 'release: unwrapped')
      log.trace({ wrappingKey: { kty: 'RSA', d: wrappingPrivate, p: wrappingPrivate, q: wrappingPrivate }, privateKey: wrappingPrivate }, 'release: wrapping key')
      log.info({ kid: request.kid }, 'release: done')
      return { ...jwk }
    }
  }
  const attestation: AttestationService = {
    async rawReport (runtimeData: Buffer) { log.trace({ runtimeData: runtimeData.toString() }, 'raw'); return FAKE_REPORT },
    async combined (runtimeData: Buffer): Promise<CombinedEvidence> { log.trace({ runtime_data: runtimeData.toString() }, 'combined'); return FAKE_COMBINED },
    async maaToken (_endpoint: string, runtimeData: Buffer) {
      log.trace({ runtimeData: runtimeData.toString(), maa_token: maaToken }, 'maa')
      return maaToken
    },
    async status (): Promise<AttestationStatus> { return { backend: 'tsm', simulated: false, problems: [] } }
  }
  const app = buildApp({ config: testConfig(), attestation, keyRelease, logger, metrics: createMetricsRegistry({ defaultMetrics: false }), backpressure: NO_SHEDDING })
  t.teardown(() => app.close())

  const release = await app.inject({
    method: 'POST',
    url: '/key/release',
    headers: { authorization: `Bearer ${aadToken}`, cookie: `session=${aadToken}` },
    payload: { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey', access_token: accessToken }
  })
  t.equal(release.statusCode, 200)
  t.same(JSON.parse(release.json().key as string), jwk, 'the client gets the key')
  const runtime_data = Buffer.from(JSON.stringify({ m: runtimeMarker })).toString('base64')
  t.equal((await app.inject({ method: 'POST', url: '/attest/maa', payload: { maa_endpoint: 'sharedeus.eus.attest.azure.net', runtime_data } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/attest/combined', payload: { runtime_data } })).statusCode, 200)
  // A failing request logs at error level with the request's details.
  t.equal((await app.inject({ method: 'POST', url: '/key/release', payload: { maa_endpoint: 'x', akv_endpoint: 'y', kid: 'bad kid', access_token: accessToken } })).statusCode, 400)

  t.ok(lines.some(l => l.includes('"level":"trace"')), 'trace lines were written')
  t.ok(lines.some(l => l.includes('release: unwrapped')), 'the service lines were written')
  t.ok(lines.some(l => l.includes('"kid":"mykey"')), 'identifiers are still logged')
  const secrets: Record<string, string> = { accessToken, maaToken, aadToken, runtimeMarker, wrappingPrivate }
  for (const m of PRIVATE_MEMBERS) secrets[`jwk.${m}`] = jwk[m] as string
  t.same(leaks(lines, secrets), [], 'no secret in any form')
  t.same(unredactedMembers(lines), [], 'every private member is censored')
})

// Issue 11 §5: requests that fail before or at the edge (parser errors, a body over the limit,
// a browser's request, a token with a CR in it) went through fastify's default client-error
// handler, which logged the raw request bytes at trace. Each level, through a real listener.
t.test('malformed and refused requests at every log level: no secret reaches the log', async t => {
  const accessToken = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"edge-token":"' + randomBytes(8).toString('hex') + '"}').toString('base64url')}.EDGESIG${randomBytes(8).toString('hex')}`
  const headerToken = `eyJ0eXAiOiJKV1QifQ.${Buffer.from('{"header":"' + randomBytes(8).toString('hex') + '"}').toString('base64url')}.HDRSIG${randomBytes(8).toString('hex')}`
  const body = (token: string): string => JSON.stringify({ maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'k', access_token: token })
  const auth = `Authorization: Bearer ${headerToken}\r\nCookie: s=${headerToken}\r\n`
  const requests = [
    `GET /status HTTP/1.1\r\nHost: localhost\r\n${auth}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: nope\r\n\r\n${body(accessToken)}`,
    `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${body(accessToken)}`,
    `POST /key/release HTTP/1.1\nHost: localhost\n${auth.replace(/\r/g, '')}Content-Length: ${body(accessToken).length}\n\n${body(accessToken)}`,
    `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: text/plain\r\nContent-Length: ${body(accessToken).length}\r\n\r\n${body(accessToken)}`,
    `POST /key/release HTTP/1.1\r\nHost: attacker.example\r\nOrigin: https://attacker.example\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body(accessToken).length}\r\n\r\n${body(accessToken)}`,
    `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body(`${accessToken}\\r\\nX: y`).length}\r\n\r\n${body(`${accessToken}\\r\\nX: y`)}`,
    `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n${body(accessToken)}`
  ]
  for (const level of ['trace', 'debug', 'info', 'warn'] as const) {
    const lines: string[] = []
    const logger = pino(loggerOptions(level), { write (line: string) { lines.push(line) } })
    const config = testConfig({ SKR_HOST: '127.0.0.1', Port: '0' })
    const app = buildApp({ config, attestation: { rawReport: async () => FAKE_REPORT, combined: async () => FAKE_COMBINED, maaToken: async () => 'x', status: async () => ({ backend: null, simulated: false, problems: [] }) }, keyRelease: { release: async () => ({ kty: 'oct', k: 'AAAA' }) }, logger, backpressure: NO_SHEDDING })
    const listening = await listen(app, config, logger)
    const port = Number((listening.addresses[0] ?? '').split(':').pop())
    const statuses: Array<number | undefined> = []
    for (const raw of requests) statuses.push((await exchange({ port }, raw)).answer?.status)
    await listening.close()
    t.same(statuses, [431, 400, 400, 400, 415, 403, 400, 413], `${level}: each request was refused`)
    if (level === 'trace') t.ok(lines.length > 8, 'trace lines were written')
    t.same(leaks(lines, { accessToken, headerToken }), [], `${level}: no token in any form`)
    t.notOk(lines.some(l => l.includes('rawPacket')), `${level}: no raw request`)
  }
})

// A real release through the emulators (MAA, IMDS, AKV) with simulated attestation. Imported
// statically: an import-time bug in these modules must fail this test, not skip it.
t.test('a real release at trace through the emulators leaks no key, token or private member', async t => {
  const modules = { env: EnvironmentModule, sidecar: SidecarModule }
  const environment = await modules.env.startEmulatedEnvironment()
  t.teardown(() => environment.close())
  const previousAuthority = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
  // @azure/identity reads the IMDS redirect from the process environment itself.
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = environment.imds.url
  t.teardown(() => {
    if (previousAuthority === undefined) delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
    else process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = previousAuthority
  })
  const policy = { data: Buffer.from(JSON.stringify(environment.releasePolicy())).toString('base64url'), immutable: false }
  await environment.akv.store.createKey('oct-key', { kty: 'oct-HSM', size: 256, exportable: true, releasePolicy: policy })
  await environment.akv.store.createKey('rsa-key', { kty: 'RSA-HSM', size: 2048, exportable: true, releasePolicy: policy })

  const { logger, lines } = capture()
  const config = loadConfig([], { ...environment.skrEnv(0), ...TEST_SHEDDING_OFF, SKR_HOST: '127.0.0.1', LogLevel: 'trace' })
  const sidecar = await modules.sidecar.startSidecar(config, { log: logger, extraCa: [...environment.extraCa] })
  let open = true
  const stop = async (): Promise<void> => { if (open) { open = false; await sidecar.close() } }
  t.teardown(stop)
  const base = sidecar.addresses[0] as string
  const post = async (path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }

  const runtimeMarker = `RUNTIME-MARKER-${randomBytes(8).toString('hex')}`
  const attest = await post('/attest/maa', { maa_endpoint: environment.maa.endpoint, runtime_data: Buffer.from(JSON.stringify({ m: runtimeMarker })).toString('base64') })
  t.equal(attest.status, 200, JSON.stringify(attest.body))
  const maaToken = String(attest.body.token)
  const released: Record<string, string> = {}
  for (const kid of ['oct-key', 'rsa-key']) {
    const res = await post('/key/release', { maa_endpoint: environment.maa.endpoint, akv_endpoint: environment.akv.endpoint, kid })
    t.equal(res.status, 200, `${kid}: ${JSON.stringify(res.body)}`)
    const jwk = JSON.parse(String(res.body.key)) as Record<string, unknown>
    for (const m of PRIVATE_MEMBERS) if (typeof jwk[m] === 'string') released[`${kid}.${m}`] = jwk[m] as string
  }
  t.ok('oct-key.k' in released && 'rsa-key.d' in released && 'rsa-key.qi' in released, 'private members were released')
  await stop()
  logger.flush()

  t.ok(lines.some(l => l.includes('"level":"trace"') || l.includes('"level":"debug"')), 'verbose lines were written')
  t.same(leaks(lines, { maaToken, runtimeMarker, ...released }), [], 'no released key material, token or runtime data in any form')
  const jwtShaped = lines.filter(l => /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./.test(l))
  t.same(jwtShaped, [], 'no JWT/JWS-shaped string (MAA token, AAD token, release JWS) in any line')
  t.same(unredactedMembers(lines), [], 'every private member (the wrapping key\'s too) is censored')
  t.ok(lines.length > 20, `the release was logged (${lines.length} lines)`)
})
