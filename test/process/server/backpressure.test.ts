// The load-shedding sampler in a process of its own: one that builds, readies, uses and closes an
// app with the real readers exits by itself (the in-process checks: test/unit/server/backpressure.test.ts).
import t from 'tap'
import { pathToFileURL } from 'node:url'
import { runChild } from '../../helpers/child-process.ts'

// A process that builds, readies, uses and closes an app with the real readers must then exit on
// its own: nothing the sampler started (timer, event-loop histogram) keeps the loop alive.
t.test('after app.close() nothing keeps the process alive', async t => {
  const src = (path: string): string => JSON.stringify(pathToFileURL(new URL(path, import.meta.url).pathname).href)
  const script = `
    import Fastify from 'fastify'
    import { registerBackpressure } from ${src('../../../src/server/plugins/backpressure.ts')}
    import { createMetricsRegistry } from ${src('../../../src/observability/registry.ts')}
    const app = Fastify()
    registerBackpressure(app, { sampleIntervalMs: 10 }, createMetricsRegistry({ defaultMetrics: false }))
    app.get('/work', async () => 'ok')
    await app.ready()
    await app.inject({ method: 'GET', url: '/work' })
    await new Promise(resolve => setTimeout(resolve, 50))
    await app.close()
    process.stdout.write(JSON.stringify(process.getActiveResourcesInfo()))
  `
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  // Killed (a signal) if it has not exited by itself after 60 s: a bound for a busy machine.
  const { status: code, signal, stdout, stderr } = await runChild(t, process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), env, timeoutMs: 60_000 })
  t.equal(signal, null, 'exited by itself, not killed after 60 s')
  t.equal(code, 0, stderr)
  t.notMatch(stdout, 'Timeout', `no timer left after close: ${stdout}`)
})
