// Splits a warm release's latency into the AKV round trip and skr's own work, at an emulated
// round trip (default 20 ms): `node scripts/node24.mjs bench/warm-overhead.ts [rttMs] [count]`.
// skr runs in-process here (TypeScript sources, tap-free), so absolute numbers differ from
// bench/run.ts; the split is the point: the AKV time comes from skr's own /metrics histogram.
import { startSidecarEnv, startTestEnvironment, createReleasableKey } from '../test/helpers/sidecar-env.ts'

const rttMs = Number(process.argv[2] ?? 20)
const count = Number(process.argv[3] ?? 100)

async function akvSeconds (skr: Awaited<ReturnType<typeof startSidecarEnv>>): Promise<{ sum: number, count: number }> {
  const text = (await skr.call('/metrics')).text
  const value = (suffix: string): number => Number(text.split('\n').find(l => l.startsWith(`skr_upstream_request_duration_seconds_${suffix}{service="akv",status="200"}`))?.split(' ')[1] ?? 0)
  return { sum: value('sum'), count: value('count') }
}

const env = await startTestEnvironment()
const skr = await startSidecarEnv({ env, logLevel: 'error' })
try {
  await createReleasableKey(env, 'warm')
  for (let i = 0; i < 20; i++) await skr.release('warm')
  env.akv.faults.delayMs = rttMs
  const before = await akvSeconds(skr)
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const started = performance.now()
    const res = await skr.release('warm')
    if (res.status !== 200) throw new Error(`release answered ${res.status}`)
    times.push(performance.now() - started)
  }
  const after = await akvSeconds(skr)
  times.sort((a, b) => a - b)
  const akvMs = (after.sum - before.sum) / (after.count - before.count) * 1000
  const p50 = times[Math.floor(count / 2)] ?? NaN
  console.log(`emulated RTT ${rttMs} ms, ${count} warm releases`)
  console.log(`  release p50 ${p50.toFixed(2)} ms (p10 ${times[Math.floor(count / 10)]?.toFixed(2)}, p90 ${times[Math.floor(count * 0.9)]?.toFixed(2)})`)
  console.log(`  AKV call mean ${akvMs.toFixed(2)} ms (the emulated RTT plus the emulator's own token check, wrapping and JWS signing)`)
  console.log(`  skr's own work ~${(p50 - akvMs).toFixed(2)} ms (HTTP in and out, JWS and chain check, unwrap)`)
} finally {
  await skr.close()
  await env.close()
}
