// Bursts and overload end to end, skr in its own process against the emulators: 200 concurrent
// releases all succeed with attestation reuse on (and MAA is asked only a few times), and past
// SKR_MAX_INFLIGHT the surplus is refused at once with 503 ERR_OVERLOADED and Retry-After while
// the rest succeed. Asserts on answers and counts, never on timings.
import t from 'tap'
import { Agent, request } from 'undici'
import {
  createReleasableKey,
  findSecrets,
  startSidecarEnv,
  startTestEnvironment,
  type ApiAnswer,
  type ReleasableKey,
  type SidecarEnv
} from '../helpers/sidecar-env.ts'
import { startHttpsServer } from '../helpers/https-server.ts'
import { MAX_CONNECTIONS_PER_ORIGIN } from '../../src/http/upstream-dispatchers.ts'

const env = await startTestEnvironment()
t.teardown(env.close)
const keys: ReleasableKey[] = []
for (let i = 0; i < 8; i++) keys.push(await createReleasableKey(env, `burst-${i}`))
const secrets = keys.map(k => k.k)

function keyOf (answer: ApiAnswer): string | undefined {
  const text = answer.json?.['key']
  return typeof text === 'string' ? (JSON.parse(text) as { k?: string }).k : undefined
}


/** Fetches MAA's signing keys into the vault emulator's cache, whose misses are not single-flight and are not skr's MAA calls. */
async function warmVaultIssuerCache (s: SidecarEnv): Promise<void> {
  const attested = await s.call('/attest/maa', { maa_endpoint: env.maa.endpoint, runtime_data: Buffer.from('{}').toString('base64') })
  const bearer = await env.bearer.mint({ aud: 'https://vault.azure.net' })
  const agent = new Agent({ connect: { ca: env.pki.caCertPem } })
  try {
    const res = await request(`${env.akv.url}/keys/burst-0/release?api-version=7.4`, {
      dispatcher: agent,
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: JSON.stringify({ target: attested.json?.['token'] })
    })
    await res.body.dump() // a 403 (no wrapping key in this token) is expected: only the key fetch matters
  } finally {
    await agent.close()
  }
}

t.test('a burst of 200 concurrent releases: all succeed, MAA is asked only a few times (reuse on)', async (t) => {
  // The cap is raised so that this case is about the burst, not about shedding.
  const s = await startSidecarEnv({ env, mode: 'process', owner: t, overrides: { SKR_MAX_INFLIGHT: '1000', SKR_MAX_INFLIGHT_PER_DESTINATION: '1000', SKR_REQUEST_TIMEOUT_MS: '30000' } })
  t.teardown(s.close)
  await warmVaultIssuerCache(s)
  const maaBefore = env.maa.requests
  const answers = await Promise.all(Array.from({ length: 200 }, async (_, i) => await s.release(`burst-${i % keys.length}`)))
  const maaCalls = env.maa.requests - maaBefore
  const ok = answers.filter(a => a.status === 200)
  const others = [...new Set(answers.filter(a => a.status !== 200).map(a => `${a.status} ${String(a.json?.['code'])}`))]
  t.equal(ok.length, 200, `all 200 answered 200${others.length === 0 ? '' : ` (also: ${others.join(', ')})`}`)
  t.ok(ok.every(a => keyOf(a) === keys[answers.indexOf(a) % keys.length]?.k), 'each success carries its own key')

  // Reuse is on when two more releases cost no MAA call at all.
  const settled = env.maa.requests
  await s.release('burst-0')
  await s.release('burst-1')
  t.equal(env.maa.requests, settled, 'reuse is on: two more releases cost no MAA call')
  t.ok(maaCalls <= 4, `attestation reused: ${maaCalls} MAA requests for 200 releases`)
  t.same(findSecrets(s.logs, secrets), [], 'no key material or JWT in the logs')
})

t.test('past the in-flight cap: 503 ERR_OVERLOADED with Retry-After for the surplus, 200 for the rest', async (t) => {
  const [cap, burst] = [4, 20]
  const s = await startSidecarEnv({ env, mode: 'process', owner: t, overrides: { SKR_MAX_INFLIGHT: String(cap), SKR_REQUEST_TIMEOUT_MS: '20000' } })
  t.teardown(s.close)
  t.equal((await s.release('burst-0')).status, 200, 'warm: attestation and token in place')
  env.akv.faults.delayMs = 1_000
  t.teardown(() => { delete env.akv.faults.delayMs })
  const answers = await Promise.all(Array.from({ length: burst }, async (_, i) => await s.release(`burst-${i % keys.length}`)))
  delete env.akv.faults.delayMs
  const ok = answers.filter(a => a.status === 200)
  const shed = answers.filter(a => a.status === 503)
  t.equal(ok.length + shed.length, burst, 'every answer is 200 or 503')
  t.ok(ok.length >= cap, `${ok.length} succeeded (at least the cap's worth)`)
  t.ok(shed.length >= 1, `${shed.length} were shed`)
  t.ok(shed.every(a => a.json?.['code'] === 'ERR_OVERLOADED'), 'shed answers say ERR_OVERLOADED')
  t.ok(shed.every(a => /^\d+$/.test(String(a.headers['retry-after']))), 'shed answers carry Retry-After in seconds')
  t.ok(ok.every(a => keyOf(a) !== undefined), 'the rest carry keys')
  t.same(findSecrets(shed.map(a => a.text), secrets), [], 'no key material in the 503s')
  t.equal((await s.release('burst-0')).status, 200, 'healthy once the burst is over')
})

t.test('one hung vault cannot starve the others: releases to a healthy vault keep succeeding, the hung ones end in 504', async (t) => {
  // A vault skr trusts that takes requests and never answers, which callers are allowed to name.
  let reachedHungVault = 0
  const hung = await startHttpsServer(() => { reachedHungVault++ }, { pki: env.pki })
  t.teardown(hung.close)
  // Named `localhost` so that it is another host than the healthy vault at 127.0.0.1 (admission
  // is per host, whatever the port).
  const hungEndpoint = `localhost:${hung.port}`
  const s = await startSidecarEnv({
    env,
    mode: 'process',
    owner: t,
    overrides: {
      SKR_ALLOWED_HOSTS: `${env.maa.endpoint},${env.akv.endpoint},${hungEndpoint}`,
      // The defaults (256 in flight, 64 per destination). The deadline ends the hung releases; it
      // is long enough for the healthy ones on a busy machine, and short enough for a quick test.
      SKR_REQUEST_TIMEOUT_MS: '10000'
    }
  })
  t.teardown(s.close)
  t.equal((await s.release('burst-0')).status, 200, 'warm')

  // 70 releases aimed at the hung vault: they used to take all 64 in-flight slots.
  // Distinct kids, so that none is coalesced with another (identical releases share one upstream call).
  const attack = Array.from({ length: 70 }, async (_, i) => await s.release(`hung-${i}`, hungEndpoint))
  // Wait until the hung vault holds its whole share: each admitted release has reached it, or (past
  // the per-origin connection cap) waits in the client's queue for a connection to it.
  for (const until = Date.now() + 60_000; reachedHungVault < Math.min(64, MAX_CONNECTIONS_PER_ORIGIN) && Date.now() < until;) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(reachedHungVault, Math.min(64, MAX_CONNECTIONS_PER_ORIGIN), 'the hung vault holds its share of connections')
  const healthy = await Promise.all(Array.from({ length: 8 }, async (_, i) => await s.release(`burst-${i % keys.length}`)))
  t.same(healthy.map(a => a.status), Array(8).fill(200), 'releases from the healthy vault succeed while the other hangs')
  t.ok(healthy.every(a => keyOf(a) !== undefined), 'with their keys')

  const attacked = await Promise.all(attack)
  const byCode = attacked.reduce<Record<string, number>>((acc, a) => {
    const code = `${a.status} ${String(a.json?.['code'])}`
    acc[code] = (acc[code] ?? 0) + 1
    return acc
  }, {})
  t.same(Object.keys(byCode).sort(), ['503 ERR_OVERLOADED', '504 ERR_UPSTREAM_TIMEOUT'], `the hung releases: ${JSON.stringify(byCode)}`)
  t.equal(byCode['503 ERR_OVERLOADED'], 6, 'past its share of 64, the hung vault\'s surplus is refused at once')
  t.match((await s.call('/metrics')).text, /skr_http_shed_total\{reason="destination"\} 6/)
  t.equal((await s.release('burst-2')).status, 200, 'and the healthy vault is still served afterwards')
})
