// SIGTERM with releases in flight, on a real `node bin/skr.js serve` child: the releases already
// running finish with their keys, new connections are refused from the moment the signal is
// handled, and the process exits 0 (skr exits 1 when its grace period runs out, so 0 also means
// "within the grace period"). Asserts on answers and exit status, never on timings: the vault holds
// the releases until the test has seen skr refuse a new connection.
import t from 'tap'
import { connect } from 'node:net'
import { Agent, request } from 'undici'
import { spawnSkr } from '../../bench/skr-process.ts'
import { startHttpsServer } from '../helpers/https-server.ts'
import { createReleasableKey, findSecrets, startTestEnvironment, TEST_SHEDDING_OFF, waitFor, type ReleasableKey } from '../helpers/sidecar-env.ts'

const env = await startTestEnvironment()
t.teardown(env.close)
const keys: ReleasableKey[] = []
for (let i = 0; i < 5; i++) keys.push(await createReleasableKey(env, `drain-${i}`))

/** Resolves to the error code of a TCP connect to the port, or 'connected'. */
async function tryConnect (port: number): Promise<string> {
  return await new Promise(resolve => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve('connected') })
    socket.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
  })
}

t.test('SIGTERM during 5 slow releases: they complete, new connections are refused, exit 0', async (t) => {
  const skr = await spawnSkr(env, { owner: t, startTimeoutMs: 120_000, logLevel: 'debug', overrides: { ...TEST_SHEDDING_OFF, SKR_REQUEST_TIMEOUT_MS: '20000' } })
  t.teardown(async () => { await skr.stop(2_000) })
  const agent = new Agent({ connections: 16 })
  t.teardown(async () => { await agent.close() })
  const release = async (kid: string): Promise<{ status: number, text: string }> => {
    const res = await request(`${skr.base}/key/release`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ maa_endpoint: env.maa.endpoint, akv_endpoint: env.akv.endpoint, kid })
    })
    return { status: res.statusCode, text: await res.body.text() }
  }
  t.equal((await release('drain-0')).status, 200, 'warm: attestation and identity token in place')

  // The vault holds every release until `answer()`, and reads `hold` once per release it has
  // accepted: counting the reads tells when all five are inside the vault, in flight at skr.
  let arrived = 0
  let answer = (): void => {}
  const gate = new Promise<void>(resolve => { answer = resolve })
  Object.defineProperty(env.akv.faults, 'hold', { configurable: true, enumerable: true, get: () => { arrived++; return gate } })
  t.teardown(() => { answer(); delete env.akv.faults.hold })
  const inFlight = keys.map(async k => await release(k.name))
  t.ok(await waitFor(() => arrived >= 5, 60_000), 'five releases in flight')

  skr.child.kill('SIGTERM')
  // Until skr has handled the signal (a bound for a busy machine, not a timing check).
  let refused = 'connected'
  for (const until = Date.now() + 60_000; refused === 'connected' && Date.now() < until;) {
    refused = await tryConnect(skr.port)
    if (refused === 'connected') await new Promise(resolve => setTimeout(resolve, 10))
  }
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused while the releases drain')

  // Only now does the vault answer: the five releases finish during the drain, whatever the machine's speed.
  answer()
  const answers = await Promise.all(inFlight)
  delete env.akv.faults.hold
  answers.forEach((a, i) => {
    t.equal(a.status, 200, `in-flight release ${i} completed`)
    const jwk = a.status === 200 ? JSON.parse((JSON.parse(a.text) as { key: string }).key) as { k?: string } : {}
    t.equal(jwk.k, keys[i]?.k, `in-flight release ${i} carries its key`)
  })
  let timer: NodeJS.Timeout | undefined
  const exit = await Promise.race([skr.exited, new Promise<null>(resolve => { timer = setTimeout(() => { resolve(null) }, 15_000) })])
  clearTimeout(timer)
  t.same(exit, { code: 0, signal: null }, 'exited 0 (within the grace period)')
  t.match(skr.output(), /shutting down/, 'logged the shutdown')
  t.same(findSecrets(skr.output().split('\n'), keys.map(k => k.k)), [], 'no key material or JWT in the logs')
})

t.test('SIGTERM while releases wait on a hung vault: at the end of the grace period they are answered 503 ERR_SHUTTING_DOWN, not cut', async (t) => {
  // The vault "hangs": a double that takes requests and never answers (closed, with its
  // connections, at teardown; the emulator's delay knob would keep a timer running past the test).
  let arrived = 0
  const hung = await startHttpsServer(() => { arrived++ }, { pki: env.pki })
  t.teardown(hung.close)
  const hungEndpoint = `localhost:${hung.port}`
  const skr = await spawnSkr(env, {
    owner: t,
    startTimeoutMs: 120_000,
    logLevel: 'info',
    overrides: { ...TEST_SHEDDING_OFF, SKR_REQUEST_TIMEOUT_MS: '60000', SKR_SHUTDOWN_GRACE_MS: '500', SKR_ALLOWED_HOSTS: `${env.maa.endpoint},${env.akv.endpoint},${hungEndpoint}` }
  })
  t.teardown(async () => { await skr.stop(2_000) })
  const agent = new Agent({ connections: 8 })
  t.teardown(async () => { await agent.close() })
  const release = async (kid: string, vault = env.akv.endpoint): Promise<{ status: number, headers: Record<string, unknown>, text: string } | { error: string }> => {
    try {
      const res = await request(`${skr.base}/key/release`, {
        dispatcher: agent,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ maa_endpoint: env.maa.endpoint, akv_endpoint: vault, kid })
      })
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
    } catch (err) {
      return { error: (err as NodeJS.ErrnoException).code ?? String(err) }
    }
  }
  t.same((await release('drain-0') as { status: number }).status, 200, 'warm')
  const waiting = [1, 2, 3].map(async i => await release(`drain-${i}`, hungEndpoint))
  t.ok(await waitFor(() => arrived >= 3, 60_000), 'three releases wait on the vault')

  skr.child.kill('SIGTERM')
  const answers = await Promise.all(waiting)
  for (const a of answers) {
    t.ok('status' in a, `an answer, not a cut connection (${JSON.stringify(a).slice(0, 80)})`)
    if (!('status' in a)) continue
    t.equal(a.status, 503)
    t.equal((JSON.parse(a.text) as { code?: string }).code, 'ERR_SHUTTING_DOWN')
    t.equal(a.headers['retry-after'], '1')
  }
  const exit = await skr.exited
  t.same(exit, { code: 0, signal: null }, 'exited 0')
  t.match(skr.output(), /requests still waiting were answered 503 ERR_SHUTTING_DOWN/)
})
