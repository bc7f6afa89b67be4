// Probes and scrapes do not write info-level lines: the exec probe (`skr healthcheck`, GET
// /status) runs every few seconds and Prometheus scrapes /metrics, and fastify's two lines per
// request ("incoming request", "request completed") at info drowned a LogLevel=info log. Those
// lines are debug for /status, /livez, /readyz and /metrics; every other route, an unknown path,
// and a failure keep their level. Checked by scanning the lines the app really writes.
import t from 'tap'
import { QUIET_ROUTES } from '../../../src/server/request-logging.ts'
import { createHarness } from '../../doubles/fake-services.ts'

const INFO = 30
const DEBUG = 20
// skr's log lines carry the level as a label (src/log.ts); pino's numbers, to compare them.
const RANK: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, warning: 40, error: 50, fatal: 60, panic: 60 }

interface Line { level: number, msg: string, req?: { url?: string }, reqId?: string }

function parsed (logs: Array<Record<string, unknown>>): Line[] {
  return logs.map(l => ({ ...l, level: typeof l.level === 'number' ? l.level : RANK[String(l.level)] ?? 0 }) as unknown as Line)
}

function requestLines (logs: Array<Record<string, unknown>>): Line[] {
  return parsed(logs).filter(l => l.msg === 'incoming request' || l.msg === 'request completed')
}

t.test('probe and scrape routes log their requests at debug only', async t => {
  const h = createHarness()
  t.teardown(() => h.app.close())
  t.same([...QUIET_ROUTES].sort(), ['/livez', '/metrics', '/readyz', '/status'], 'the probes the manifests use (healthcheck GETs /status), the other probes, and scrapes')
  for (let i = 0; i < 3; i++) {
    for (const url of QUIET_ROUTES) t.equal((await h.app.inject({ method: 'GET', url })).statusCode, 200, url)
  }
  const lines = requestLines(h.logs)
  t.equal(lines.length, 3 * QUIET_ROUTES.size * 2, 'still logged, two lines per request')
  t.same(lines.filter(l => l.level >= INFO), [], 'none at info or above')
  t.ok(lines.every(l => l.level === DEBUG), 'all at debug')
})

t.test('other routes, unknown paths and failures keep fastify\'s levels', async t => {
  const h = createHarness()
  t.teardown(() => h.app.close())
  await h.app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
  await h.app.inject({ method: 'GET', url: '/nowhere' })
  const byId = new Map<string, Line[]>()
  for (const line of requestLines(h.logs)) byId.set(line.reqId ?? '', [...(byId.get(line.reqId ?? '') ?? []), line])
  t.equal(byId.size, 2)
  for (const lines of byId.values()) t.same(lines.map(l => l.level), [INFO, INFO], `${lines[0]?.req?.url ?? 'a request'}: both lines at info`)

  h.attestation.problems = ['no SEV-SNP device']
  const before = h.logs.length
  t.equal((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503)
  t.same(requestLines(h.logs.slice(before)).map(l => l.level), [DEBUG, DEBUG], 'a not-ready answer is an answer: debug too')
})

t.test('at LogLevel=info a probe writes nothing at all', async t => {
  const h = createHarness({ LogLevel: 'info' })
  t.teardown(() => h.app.close())
  const before = parsed(h.logs).filter(l => l.level >= INFO).length
  for (const url of QUIET_ROUTES) await h.app.inject({ method: 'GET', url })
  t.equal(parsed(h.logs).filter(l => l.level >= INFO).length, before)
})
