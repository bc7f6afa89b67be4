// Keeps docs/errors.md in step with src/errors.ts (fastify's errors-test idea): every code
// the code can produce is documented with its HTTP status, and nothing documented is stale.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import * as errors from '../../src/errors.ts'
import type * as SidecarErrorModule from '../../src/errors/sidecar-error.ts'
import { parseProxyEnv } from '../../src/http/proxy.ts'
import { Upstream } from '../../src/http/upstream.ts'
import { repoRoot } from '../helpers/vectors.ts'

type Ctor = new (message: string) => errors.SidecarError

function errorClasses (): Array<[string, Ctor]> {
  const found: Array<[string, Ctor]> = []
  for (const [name, value] of Object.entries(errors) as Array<[string, unknown]>) {
    if (typeof value === 'function' && value.prototype instanceof errors.SidecarError) found.push([name, value as Ctor])
  }
  return found
}

t.test('every error class has a unique, well-formed code and an HTTP status', async t => {
  const seen = new Map<string, string>()
  for (const [name, Cls] of errorClasses()) {
    const err = new Cls('x')
    t.match(err.code, /^ERR_[A-Z0-9_]+$/, `${name} code`)
    t.ok(err.statusCode >= 400 && err.statusCode < 600, `${name} status`)
    t.equal(err.name, name, `${name} name`)
    t.notOk(seen.has(err.code), `${err.code} used once (also by ${seen.get(err.code) ?? 'none'})`)
    seen.set(err.code, name)
  }
  t.ok(seen.size >= 20)
})

t.test('docs/errors.md documents exactly the codes in src/errors.ts', async t => {
  const doc = readFileSync(`${repoRoot}/docs/errors.md`, 'utf8')
  const rows = new Map<string, number>()
  for (const m of doc.matchAll(/^\|\s*`(ERR_[A-Z0-9_]+)`\s*\|\s*(\d{3})\s*\|/gm)) rows.set(m[1] as string, Number(m[2]))
  const codes = new Map<string, number>(errorClasses().map(([, Cls]) => { const e = new Cls('x'); return [e.code, e.statusCode] as const }))
  for (const [code, status] of codes) {
    t.equal(rows.get(code), status, `${code} documented with status ${status}`)
  }
  for (const code of rows.keys()) t.ok(codes.has(code), `${code} in the docs exists in the code`)
})

t.test('details are frozen and cause is kept', async t => {
  const cause = new Error('inner')
  const e = new errors.UpstreamUnavailable('maa down', { cause, details: { upstream: 'maa', upstreamStatus: 503 } })
  t.equal(e.cause, cause)
  t.ok(Object.isFrozen(e.details))
  t.same(e.details, { upstream: 'maa', upstreamStatus: 503 })
  t.ok(errors.isSidecarError(e))
  t.notOk(errors.isSidecarError(cause))
})

// The bundle's CLI graph and sidecar graph each hold a copy of the error classes (scripts/bundle.mjs);
// main.ts, in one, must still know an error `skr serve`, in the other, throws (exit 2 for a bad setting).
t.test('isSidecarError knows errors from another copy of the module, and only those', async t => {
  const copy = await import(`../../src/errors/sidecar-error.ts?copy=${Date.now()}`) as typeof SidecarErrorModule
  t.not(copy.SidecarError, errors.SidecarError, 'a second copy of the base class')
  class ForeignConfigInvalid extends copy.SidecarError {
    readonly code = 'ERR_CONFIG_INVALID'
    readonly statusCode = 500
  }
  const foreign = new ForeignConfigInvalid('Port must be a number')
  t.notOk(foreign instanceof errors.SidecarError, 'class identity does not cross copies')
  t.ok(errors.isSidecarError(foreign), 'the mark does')
  t.equal(foreign.code, 'ERR_CONFIG_INVALID')
  t.notOk(Object.keys(foreign).some(k => k.includes('SidecarError')), 'the mark is not an own enumerable member (logs stay as they were)')
  for (const lookalike of [{ code: 'ERR_CONFIG_INVALID', message: 'x' }, Object.assign(new Error('x'), { code: 'ERR_INTERNAL' }), null, 'ERR_INTERNAL']) {
    t.notOk(errors.isSidecarError(lookalike), `not ${JSON.stringify(lookalike)}`)
  }
})

/** The row of docs/errors.md for `code`. */
function docRow (code: string): string {
  const doc = readFileSync(`${repoRoot}/docs/errors.md`, 'utf8')
  return doc.split('\n').find(line => line.startsWith(`| \`${code}\` |`)) ?? ''
}

t.test('the details egress-proxy failures add to ERR_UPSTREAM_UNAVAILABLE are documented', async t => {
  // A proxy on loopback that refuses every CONNECT with 403; the origin is a made-up name it never resolves.
  const proxy = createServer(socket => {
    socket.once('data', () => { socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n') })
    socket.on('error', () => {})
  })
  await new Promise<void>(resolve => { proxy.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { proxy.close() })
  const { port } = proxy.address() as AddressInfo
  const refused = new Upstream({ name: 'akv', proxy: parseProxyEnv({ HTTPS_PROXY: `http://127.0.0.1:${port}` }), policy: { maxRetries: 0 } })
  const unusable = new Upstream({ name: 'akv', proxy: parseProxyEnv({ HTTPS_PROXY: 'socks5://proxy.example:1080' }) })
  t.teardown(async () => { await refused.close(); await unusable.close() })

  const failures: errors.SidecarError[] = []
  for (const upstream of [refused, unusable]) {
    try {
      await upstream.request({ method: 'GET', url: 'https://vault.test/keys' })
      t.fail('the request should fail')
    } catch (err) {
      if (!errors.isSidecarError(err)) throw err
      failures.push(err)
    }
  }
  t.same(failures.map(e => [e.code, e.details['errorCode']]), [
    ['ERR_UPSTREAM_UNAVAILABLE', 'PROXY_REFUSED'],
    ['ERR_UPSTREAM_UNAVAILABLE', 'PROXY_UNUSABLE']
  ])
  const row = docRow('ERR_UPSTREAM_UNAVAILABLE')
  for (const err of failures) {
    t.match(row, `\`${String(err.details['errorCode'])}\``, `${String(err.details['errorCode'])} is documented`)
    // upstream and attempts are every upstream failure's; the rest is what this failure adds.
    for (const key of Object.keys(err.details).filter(k => k !== 'upstream' && k !== 'attempts')) {
      t.match(row, `\`details.${key}\``, `details.${key} of ${String(err.details['errorCode'])} is documented`)
    }
  }
})
