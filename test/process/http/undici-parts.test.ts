// src/http/undici-parts.ts takes undici's dispatchers from its lib/ files rather than its index,
// so an upstream call does not evaluate fetch, WebSocket and the rest, nor make Node load its own
// bundled undici. These tests fail when an undici upgrade moves those files or changes what they
// export, and when something brings the whole of undici back onto skr's path.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import * as index from 'undici'
import * as parts from '../../../src/http/undici-parts.ts'
import { runChild } from '../../helpers/child-process.ts'

const PARTS = fileURLToPath(new URL('../../../src/http/undici-parts.ts', import.meta.url))

t.test('each part is the index\'s export of the same name, and dispatchers have its request API', async t => {
  t.equal(parts.Agent, index.Agent)
  t.equal(parts.Pool, index.Pool)
  t.equal(parts.ProxyAgent, index.ProxyAgent)
  for (const method of ['request', 'stream', 'pipeline', 'upgrade', 'connect'] as const) {
    t.equal(typeof parts.Agent.prototype[method], 'function', `Agent.prototype.${method}`)
  }
})

// In a process of its own: tap and this file load undici's index themselves.
const PROBE = `
// node:http through getBuiltinModule: an ES module import of it loads Node's undici by itself.
const { createServer } = process.getBuiltinModule('node:http')
import { createRequire } from 'node:module'
const { Agent } = await import(${JSON.stringify(PARTS)})
const server = createServer((req, res) => { res.end(req.method + ' ' + req.url) })
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
const agent = new Agent()
const res = await agent.request({ origin: 'http://127.0.0.1:' + server.address().port, path: '/a?b=1', method: 'GET' })
const body = await res.body.text()
await agent.close()
server.close()
const loaded = Object.keys(createRequire(import.meta.url).cache).filter(p => p.includes('/node_modules/undici/')).map(p => p.slice(p.indexOf('/node_modules/undici/') + 21))
process.stdout.write(JSON.stringify({ status: res.statusCode, body, loaded, nodeUndici: process.moduleLoadList.filter(m => m.includes('deps/undici')) }))
`

t.test('a request through the parts loads neither undici\'s fetch nor Node\'s own undici', async t => {
  const run = await runChild(t, process.execPath, ['--input-type=module', '-e', PROBE], { env: { PATH: process.env['PATH'] ?? '' } })
  t.equal(run.status, 0, run.stderr)
  const out = JSON.parse(run.stdout) as { status: number, body: string, loaded: string[], nodeUndici: string[] }
  t.same({ status: out.status, body: out.body }, { status: 200, body: 'GET /a?b=1' }, 'the request went out as asked')
  t.ok(out.loaded.includes('lib/dispatcher/agent.js'), `undici's files were loaded through require's cache: ${out.loaded.length}`)
  t.same(out.loaded.filter(p => p === 'index.js' || p.startsWith('lib/web/') || p.startsWith('lib/mock/') || p.startsWith('lib/cache/')), [], 'not its index, fetch, WebSocket, mocks or caches')
  t.same(out.nodeUndici, [], 'and Node did not load its own copy of undici')
})
