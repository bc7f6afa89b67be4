// Fault injection end to end: a real sidecar (`node bin/skr.js serve` in a child, as deployed)
// against the MAA, IMDS and AKV emulators with their live fault knobs, plus a TLS-terminating
// double in front of AKV or MAA for resets, restarts and malformed or oversize answers. Every case
// asserts a correct answer or a clear error CODE (never a timing), that no error body or log line
// carries key material or anything JWT-shaped, and that a good release works once the fault is
// cleared. A hang is a double that holds requests until the test lets them go, so a hang case
// waits for skr's deadline and nothing else, and the deadlines are generous (a busy machine, two
// test runs at once): they are there to end a hang, not to time anything.
import t from 'tap'
import http from 'node:http'
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Agent, request } from 'undici'
import type { CorruptJwsMode } from '../../src/emulator/akv-faults.ts'
import { closeServer, listen } from '../../src/emulator/http-util.ts'
import {
  createReleasableKey,
  findSecrets,
  startSidecarEnv,
  startTestEnvironment,
  waitFor,
  type ApiAnswer,
  type SidecarEnv
} from '../helpers/sidecar-env.ts'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const env = await startTestEnvironment()
t.teardown(env.close)
const key = await createReleasableKey(env, 'fault-key')
const errorBodies: string[] = []
const sidecars: SidecarEnv[] = []

// Deadline long enough for the upstream layer's retries (3, backoff <= 1.75 s, or Retry-After 1 s
// each) on a busy machine.
const PATIENT = { SKR_REQUEST_TIMEOUT_MS: '30000' }
// For hangs: what a hung request waits for, and still ample for a whole cold release (identity,
// attestation, vault) on a busy machine, which the same sidecar must do once the hang is over.
const SHORT = { SKR_REQUEST_TIMEOUT_MS: '8000' }
// The MAA emulator's own delay knob (MAA cannot be fronted: its token names its issuer): far
// past SHORT; the abandoned request is cut when the environment closes.
const MAA_HANG_MS = 60_000
// Bounds for waiting on something that should happen soon (not timing checks).
const SOON_MS = 60_000

// Each sidecar runs in its own process (see test/helpers/sidecar-env.ts for why) and stops when
// the test that started it ends; its output stays readable for the final scan.
async function sidecar (owner: Test, overrides: Record<string, string>): Promise<SidecarEnv> {
  const s = await startSidecarEnv({ env, overrides, mode: 'process', owner })
  sidecars.push(s)
  owner.teardown(s.close)
  return s
}

function expectKey (t: Test, answer: ApiAnswer, what: string): void {
  // An error body is safe to show (and scanned later); a 200 body is the key itself.
  if (answer.status !== 200) errorBodies.push(answer.text)
  t.equal(answer.status, 200, `${what}: 200${answer.status === 200 ? '' : ` (got ${answer.text.slice(0, 300)})`}`)
  const jwk = typeof answer.json?.['key'] === 'string' ? JSON.parse(answer.json['key']) as Record<string, unknown> : null
  t.equal(jwk?.['k'], key.k, `${what}: the released key`)
}

function expectError (t: Test, answer: ApiAnswer, status: number | readonly number[], code: string | readonly string[], what: string): void {
  errorBodies.push(answer.text)
  const statuses = typeof status === 'number' ? [status] : status
  const codes = typeof code === 'string' ? [code] : code
  t.ok(statuses.includes(answer.status), `${what}: status ${answer.status} in ${statuses.join('/')}`)
  t.ok(codes.includes(String(answer.json?.['code'])), `${what}: code ${String(answer.json?.['code'])} in ${codes.join('/')}`)
  t.notOk(answer.text.includes(key.k), `${what}: no key material in the error`)
  t.notOk('key' in (answer.json ?? {}), `${what}: no key member`)
}

function clearFaults (): void {
  // Every knob unset (not zeroed): the emulators treat an absent knob as "no fault".
  for (const faults of [env.akv.faults, env.imds.faults, env.maa.faults] as Array<Record<string, unknown>>) {
    for (const name of Object.keys(faults)) Reflect.deleteProperty(faults, name)
  }
}

type FrontMode = 'pass' | 'hang' | 'reset-mid-response' | 'stall-mid-body' | 'value-42' | 'non-json' | 'oversize' | 'oversize-chunked'

interface Front {
  /** host:port */
  readonly endpoint: string
  /** http(s)://host:port */
  readonly url: string
  mode: FrontMode
  /** Ends a 'hang': back to 'pass', and the held requests go on to the upstream; resolves once they were answered. */
  release: () => Promise<void>
  stop: () => Promise<void>
  start: () => Promise<void>
}

/**
 * A double standing in for an upstream (AKV unless `target` names another emulator's URL) at its
 * own port, over HTTPS with the environment's TLS CA (so skr trusts it), or plain HTTP like IMDS:
 * it forwards to the emulator, holds requests ('hang') until release(), sends headers and half the
 * answer and then nothing ('stall-mid-body', the connection open until release()), or answers
 * hostile bytes.
 * It can be stopped and started again on the same port, which skr sees as an upstream that went
 * away and came back.
 */
async function startFront (target: string = env.akv.url, options: { plain?: boolean } = {}): Promise<Front> {
  const tls = await env.pki.issue(['127.0.0.1', 'localhost'])
  const upstream = new Agent({ connect: { ca: env.pki.caCertPem } })
  const state = { mode: 'pass' as FrontMode }
  const held: Array<() => void> = []
  const handling = new Set<Promise<void>>()
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = []
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
    if (state.mode === 'hang') await new Promise<void>(resolve => { held.push(resolve) })
    const mode = state.mode
    if (mode === 'value-42' || mode === 'non-json') {
      const text = mode === 'value-42' ? '{"value": 42}' : '<html>502 Bad Gateway</html>'
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
      return
    }
    if (mode === 'oversize' || mode === 'oversize-chunked') {
      const body = Buffer.alloc(10 * 1024 * 1024, 0x41)
      res.writeHead(200, { 'content-type': 'application/json', ...(mode === 'oversize' ? { 'content-length': body.length + 12 } : {}) })
      res.write('{"value": "')
      res.write(body)
      res.end('"}')
      return
    }
    const headers: Record<string, string> = {}
    for (const name of ['authorization', 'content-type', 'accept', 'metadata']) {
      const value = req.headers[name]
      if (typeof value === 'string') headers[name] = value
    }
    const answer = await request(`${target}${req.url ?? '/'}`, { dispatcher: upstream, method: req.method === 'POST' ? 'POST' : 'GET', headers, body: Buffer.concat(chunks) })
    const body = Buffer.from(await answer.body.arrayBuffer())
    const out: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(body.length) }
    const challenge = answer.headers['www-authenticate']
    if (typeof challenge === 'string') out['www-authenticate'] = challenge
    res.writeHead(answer.statusCode, out)
    if (state.mode === 'stall-mid-body') {
      // Headers and half the body, then silence on an open connection: only a timeout ends it.
      res.write(body.subarray(0, Math.floor(body.length / 2)))
      await new Promise<void>(resolve => { held.push(resolve); res.once('close', resolve) })
      res.destroy()
      return
    }
    if (state.mode === 'reset-mid-response') {
      // Headers and half the body, then the connection dies: a reset in the middle of a response.
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => { res.socket?.destroy() })
      return
    }
    res.end(body)
  }
  let server: http.Server | https.Server | null = null
  let port = 0
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const done = handle(req, res).catch(() => { res.destroy() })
    handling.add(done)
    void done.finally(() => { handling.delete(done) })
  }
  const start = async (): Promise<void> => {
    const s = options.plain === true ? http.createServer(onRequest) : https.createServer({ cert: tls.certPem, key: tls.keyPem }, onRequest)
    port = (await listen(s, { port })).port
    server = s
  }
  const stop = async (): Promise<void> => {
    const s = server
    server = null
    if (s === null) return
    await closeServer(s)
  }
  const release = async (): Promise<void> => {
    state.mode = 'pass'
    for (const go of held.splice(0)) go()
    await Promise.all([...handling])
  }
  await start()
  t.teardown(async () => { await release(); await stop(); await upstream.close() })
  return {
    get endpoint () { return `127.0.0.1:${port}` },
    get url () { return `${options.plain === true ? 'http' : 'https'}://127.0.0.1:${port}` },
    get mode () { return state.mode },
    set mode (m: FrontMode) { state.mode = m },
    release,
    stop,
    start
  }
}

// First, while no sidecar in this process has fetched an identity token yet.
t.test('IMDS token 500: 503 ERR_IDENTITY_UNAVAILABLE (it names the identity), then recovery', async (t) => {
  t.teardown(clearFaults)
  env.imds.faults.tokenStatus = 500
  const s = await sidecar(t, PATIENT)
  // Not ERR_UPSTREAM_UNAVAILABLE: the identity layer wraps every token failure so the operator
  // is told to check the identity, which is the thing to act on.
  expectError(t, await s.release(key.name), 503, 'ERR_IDENTITY_UNAVAILABLE', 'IMDS 500')
  clearFaults()
  expectKey(t, await s.release(key.name), 'after IMDS recovered')
})

t.test('IMDS token 429 (throttled) and 400 (identity not found): 503 ERR_IDENTITY_UNAVAILABLE, then recovery', async (t) => {
  t.teardown(clearFaults)
  // A fresh sidecar per status: once a token is cached, IMDS is not asked again.
  for (const status of [429, 400]) {
    const s = await sidecar(t, PATIENT)
    env.imds.faults.tokenStatus = status
    const before = env.imds.tokenRequests
    expectError(t, await s.release(key.name), 503, 'ERR_IDENTITY_UNAVAILABLE', `IMDS ${status}`)
    t.ok(env.imds.tokenRequests > before, `IMDS ${status}: the token endpoint was asked`)
    clearFaults()
    expectKey(t, await s.release(key.name), `after IMDS ${status}`)
  }
})

t.test('IMDS token endpoint hangs: the request ends at its deadline (504), then recovers', async (t) => {
  // IMDS behind a double that holds the token request (skr finds IMDS through the authority host).
  const front = await startFront(env.imds.url, { plain: true })
  const s = await sidecar(t, { ...SHORT, AZURE_POD_IDENTITY_AUTHORITY_HOST: front.url })
  front.mode = 'hang'
  expectError(t, await s.release(key.name), [503, 504], ['ERR_UPSTREAM_TIMEOUT', 'ERR_IDENTITY_UNAVAILABLE'], 'IMDS hang')
  // The token fetch already under way finishes once the hang ends; the next release then succeeds.
  await front.release()
  expectKey(t, await s.release(key.name), 'after the IMDS hang')
})

t.test('THIM 500 at start-up: skr starts, /status answers, a request recovers once THIM is back', async (t) => {
  t.teardown(clearFaults)
  env.imds.faults.thimStatus = 500
  const before = env.imds.thimRequests
  const s = await sidecar(t, PATIENT)
  const status = await s.call('/status')
  t.equal(status.status, 200, '/status 200 while THIM fails')
  t.equal(status.json?.['message'], 'Status OK')
  t.ok(await waitFor(() => env.imds.thimRequests > before, SOON_MS), 'the start-up chain fetch reached THIM')
  // While THIM is down the chain is missing: a clear 503, not a hang or a 500.
  expectError(t, await s.release(key.name), 503, ['ERR_COLLATERAL_UNAVAILABLE', 'ERR_UPSTREAM_UNAVAILABLE'], 'release while THIM is down')
  clearFaults()
  expectKey(t, await s.release(key.name), 'after THIM recovered')
})

t.test('AKV faults on one sidecar', async (t) => {
  const s = await sidecar(t, PATIENT)
  // The short-deadline sidecar reaches the vault through a double that can hold its requests.
  const hold = await startFront()
  const short = await sidecar(t, { ...SHORT, SKR_ALLOWED_HOSTS: `${env.maa.endpoint},${hold.endpoint}` })
  t.teardown(clearFaults)
  expectKey(t, await s.release(key.name), 'baseline')

  await t.test('latency below the deadline: success', async (t) => {
    env.akv.faults.delayMs = 400
    expectKey(t, await s.release(key.name), 'AKV +400 ms')
    clearFaults()
  })

  await t.test('hang past SKR_REQUEST_TIMEOUT_MS: 504 ERR_UPSTREAM_TIMEOUT', async (t) => {
    expectKey(t, await short.release(key.name, hold.endpoint), 'short-deadline sidecar baseline')
    const seen = env.akv.requests.length
    hold.mode = 'hang'
    expectError(t, await short.release(key.name, hold.endpoint), 504, 'ERR_UPSTREAM_TIMEOUT', 'AKV hang')
    // The abandoned request goes on to the emulator now, here, not in the middle of the next case
    // (it would read that case's faults).
    await hold.release()
    t.ok(env.akv.requests.length > seen, 'the hung request ended at the emulator')
    expectKey(t, await short.release(key.name, hold.endpoint), 'after the hang')
  })

  await t.test('answer stalls after its headers and half its body: 504 ERR_UPSTREAM_TIMEOUT, then recovery', async (t) => {
    hold.mode = 'stall-mid-body'
    expectError(t, await short.release(key.name, hold.endpoint), 504, 'ERR_UPSTREAM_TIMEOUT', 'AKV body stall')
    await hold.release()
    expectKey(t, await short.release(key.name, hold.endpoint), 'after the stall')
  })

  await t.test('429 with Retry-After, cleared mid-way: retried to success', async (t) => {
    env.akv.faults.status = 429
    env.akv.faults.retryAfter = '1'
    const seen = env.akv.requests.length
    const pending = s.release(key.name)
    t.ok(await waitFor(() => env.akv.requests.slice(seen).some(r => r.status === 429), SOON_MS), 'a 429 was answered')
    clearFaults()
    expectKey(t, await pending, '429 then cleared')
    t.ok(env.akv.requests.slice(seen).filter(r => r.path.endsWith('/release')).length >= 2, 'the release was retried')
  })

  await t.test('persistent 429, with and without Retry-After: 503 ERR_UPSTREAM_UNAVAILABLE', async (t) => {
    env.akv.faults.status = 429
    expectError(t, await s.release(key.name), 503, 'ERR_UPSTREAM_UNAVAILABLE', '429 without Retry-After')
    env.akv.faults.retryAfter = '1'
    expectError(t, await s.release(key.name), 503, 'ERR_UPSTREAM_UNAVAILABLE', '429 with Retry-After: 1')
    clearFaults()
    expectKey(t, await s.release(key.name), 'after 429')
  })

  await t.test('401 (token refused): 403 ERR_ACCESS_DENIED, not retried, then recovery', async (t) => {
    const seen = env.akv.requests.length
    env.akv.faults.status = 401
    expectError(t, await s.release(key.name), 403, 'ERR_ACCESS_DENIED', 'AKV 401')
    t.equal(env.akv.requests.slice(seen).filter(r => r.status === 401).length, 1, 'one request: a 401 is never retried')
    clearFaults()
    expectKey(t, await s.release(key.name), 'after 401')
  })

  await t.test('403 (RBAC) and 404: 403 ERR_ACCESS_DENIED / ERR_KEY_NOT_FOUND, not retried', async (t) => {
    for (const [status, code] of [[403, 'ERR_ACCESS_DENIED'], [404, 'ERR_KEY_NOT_FOUND']] as const) {
      const seen = env.akv.requests.length
      env.akv.faults.status = status
      expectError(t, await s.release(key.name), 403, code, `AKV ${status}`)
      t.equal(env.akv.requests.slice(seen).filter(r => r.status === status).length, 1, `AKV ${status}: one request, never retried`)
    }
    clearFaults()
    expectKey(t, await s.release(key.name), 'after 403 and 404')
  })

  await t.test('500 and 503: 503 ERR_UPSTREAM_UNAVAILABLE, the body naming the step, the vault, its status and code', async (t) => {
    for (const [status, code] of [[500, 'InternalServerError'], [503, 'ServiceUnavailable']] as const) {
      env.akv.faults.status = status
      const answer = await s.release(key.name)
      expectError(t, answer, 503, 'ERR_UPSTREAM_UNAVAILABLE', `AKV ${status}`)
      t.equal(answer.json?.['error'], `upstream unavailable (step: release, upstream: akv ${env.akv.endpoint}, status ${status}, code ${code})`, `AKV ${status}: the public facts`)
      t.notMatch(answer.text, /temporarily|internal error|attempts/, `AKV ${status}: not the vault's message, nor skr's`)
    }
    clearFaults()
    expectKey(t, await s.release(key.name), 'after 5xx')
  })

  await t.test('every corruptJws mode: 403 or 502, never a key', async (t) => {
    const expected: Record<CorruptJwsMode, [number, string]> = {
      signature: [403, 'ERR_RELEASE_UNVERIFIED'],
      'x5c-untrusted': [403, 'ERR_RELEASE_UNVERIFIED'],
      'wrong-kid': [403, 'ERR_RELEASE_UNVERIFIED'],
      'wrong-enc': [403, 'ERR_RELEASE_UNVERIFIED'],
      'truncate-ciphertext': [502, 'ERR_KEY_UNWRAP_FAILED'],
      'alg-none': [403, 'ERR_RELEASE_UNVERIFIED'],
      'wrong-host': [403, 'ERR_RELEASE_UNVERIFIED']
    }
    for (const [mode, [status, code]] of Object.entries(expected) as Array<[CorruptJwsMode, [number, string]]>) {
      env.akv.faults.corruptJws = mode
      expectError(t, await s.release(key.name), status, code, `corruptJws ${mode}`)
    }
    clearFaults()
    expectKey(t, await s.release(key.name), 'after hostile answers')
  })
})

t.test('MAA faults (a fresh sidecar each, so the first release must attest; reuse off)', async (t) => {
  t.teardown(clearFaults)
  // Started before any fault is set: a sidecar attests on its first release, not at start-up.
  const [s500, s503, hung] = await Promise.all([
    sidecar(t, { ...PATIENT, SKR_ATTESTATION_TTL_SECONDS: '0' }),
    sidecar(t, { ...PATIENT, SKR_ATTESTATION_TTL_SECONDS: '0' }),
    sidecar(t, { ...SHORT, SKR_ATTESTATION_TTL_SECONDS: '0' })
  ])
  for (const [status, s] of [[500, s500], [503, s503], [429, s500]] as const) {
    env.maa.faults.status = status
    expectError(t, await s.release(key.name), 503, 'ERR_UPSTREAM_UNAVAILABLE', `MAA ${status}`)
    clearFaults()
    expectKey(t, await s.release(key.name), `after MAA ${status}`)
  }
  env.maa.faults.delayMs = MAA_HANG_MS
  expectError(t, await hung.release(key.name), 504, 'ERR_UPSTREAM_TIMEOUT', 'MAA hang')
  clearFaults()
  expectKey(t, await hung.release(key.name), 'after the MAA hang')
})

t.test('MAA 400 and 401: 502 ERR_UPSTREAM_REJECTED / 403 ERR_ACCESS_DENIED, one request each (not retried)', async (t) => {
  t.teardown(clearFaults)
  const s = await sidecar(t, { ...PATIENT, SKR_ATTESTATION_TTL_SECONDS: '0' })
  for (const [status, answer, code] of [[400, 502, 'ERR_UPSTREAM_REJECTED'], [401, 403, 'ERR_ACCESS_DENIED']] as const) {
    env.maa.faults.status = status
    const before = env.maa.requests
    expectError(t, await s.release(key.name), answer, code, `MAA ${status}`)
    t.equal(env.maa.requests - before, 1, `MAA ${status}: asked once`)
    clearFaults()
    expectKey(t, await s.release(key.name), `after MAA ${status}`)
  }
})

t.test('MAA behind a double: resets, malformed and oversize answers (reuse off)', async (t) => {
  const front = await startFront(env.maa.url)
  // The double is a host of its own: the operator allows it next to the emulated vault.
  const s = await sidecar(t, { ...PATIENT, SKR_ATTESTATION_TTL_SECONDS: '0', SKR_ALLOWED_HOSTS: `${front.endpoint},${env.maa.endpoint},${env.akv.endpoint}` })
  const release = async (): Promise<ApiAnswer> => await s.call('/key/release', { maa_endpoint: front.endpoint, akv_endpoint: env.akv.endpoint, kid: key.name })
  // Relayed faithfully, the emulator's token names the emulator as its issuer, not the endpoint skr called.
  expectError(t, await release(), 502, 'ERR_MAA_TOKEN_INVALID', 'a token relayed from another MAA')
  front.mode = 'reset-mid-response'
  expectError(t, await release(), 503, 'ERR_UPSTREAM_UNAVAILABLE', 'MAA resets')
  for (const mode of ['value-42', 'non-json', 'oversize', 'oversize-chunked'] as const) {
    front.mode = mode
    expectError(t, await release(), 502, 'ERR_UPSTREAM_RESPONSE_INVALID', `MAA ${mode}`)
  }
  front.mode = 'pass'
  expectKey(t, await s.release(key.name), 'after hostile MAA answers, at the real MAA')
})

t.test('AKV behind a double: resets, restart on the same port, malformed and oversize answers', async (t) => {
  const front = await startFront()
  const s = await sidecar(t, { ...PATIENT, SKR_ALLOWED_HOSTS: `${env.maa.endpoint},${front.endpoint}` })
  const release = async (): Promise<ApiAnswer> => await s.release(key.name, front.endpoint)
  expectKey(t, await release(), 'through the double')

  await t.test('connection reset mid-response: retried; persistent → 503, cleared mid-way → success', async (t) => {
    front.mode = 'reset-mid-response'
    expectError(t, await release(), 503, 'ERR_UPSTREAM_UNAVAILABLE', 'persistent resets')
    const seen = env.akv.requests.length
    const pending = release()
    t.ok(await waitFor(() => env.akv.requests.length > seen, SOON_MS), 'a reset happened')
    front.mode = 'pass'
    expectKey(t, await pending, 'reset then cleared')
  })

  await t.test('vault gone (connection refused) then back on the same port', async (t) => {
    await front.stop()
    expectError(t, await release(), 503, 'ERR_UPSTREAM_UNAVAILABLE', 'vault down')
    await front.start()
    expectKey(t, await release(), 'vault back')
  })

  await t.test('malformed and oversize 200 answers: 502 ERR_UPSTREAM_RESPONSE_INVALID', async (t) => {
    for (const mode of ['value-42', 'non-json', 'oversize', 'oversize-chunked'] as const) {
      front.mode = mode
      expectError(t, await release(), 502, 'ERR_UPSTREAM_RESPONSE_INVALID', mode)
    }
    front.mode = 'pass'
    expectKey(t, await release(), 'after malformed answers')
  })
})

t.test('a storm of 50 failing releases poisons nothing (reuse on)', async (t) => {
  t.teardown(clearFaults)
  const s = await sidecar(t, { ...PATIENT, SKR_ATTESTATION_TTL_SECONDS: '300' })
  expectKey(t, await s.release(key.name), 'before the storm')
  for (const fault of [{ status: 503 }, { status: 403 }, { corruptJws: 'signature' as const }]) {
    Object.assign(env.akv.faults, fault)
    const answers = await Promise.all(Array.from({ length: 50 }, async () => await s.release(key.name)))
    const statuses = new Set(answers.map(a => a.status))
    for (const a of answers) errorBodies.push(a.text)
    t.notOk(statuses.has(200), `${JSON.stringify(fault)}: no release succeeded during the storm`)
    t.ok(answers.every(a => typeof a.json?.['code'] === 'string' && !a.text.includes(key.k)), `${JSON.stringify(fault)}: 50 clear errors (${[...statuses].join(', ')})`)
    clearFaults()
    expectKey(t, await s.release(key.name), `the next good request after ${JSON.stringify(fault)}`)
  }
})

t.test('no key material or JWT-shaped text in any error body or log line', async (t) => {
  const logs = sidecars.flatMap(s => s.logs)
  t.ok(logs.length > 0, `${logs.length} log lines captured`)
  t.ok(errorBodies.length > 0, `${errorBodies.length} error bodies captured`)
  t.same(findSecrets(errorBodies, [key.k]), [], 'error bodies are clean')
  t.same(findSecrets(logs, [key.k]), [], 'logs are clean')
})
