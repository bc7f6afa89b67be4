import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync, chmodSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { IdentityUnavailable } from '../../src/errors.ts'
import { CENSOR, createLogger, loggerOptions, REDACT_LIMITS, REDACT_PATHS, redactChildBindings, redactSecrets, SECRET_KEYS } from '../../src/log.ts'
import { createMetricsRegistry } from '../../src/observability/registry.ts'
import { buildApp } from '../../src/server/app.ts'
import { FakeAttestationService, FakeKeyReleaseService, testConfig, NO_SHEDDING } from '../doubles/fake-services.ts'

// The destination writes asynchronously; flush() can call back before a write queued by another
// logger on the same file lands, so wait (boundedly) for the text instead of trusting the callback.
async function fileContains (file: string, re: RegExp): Promise<string> {
  let text = ''
  for (let i = 0; i < 200; i++) {
    text = readFileSync(file, 'utf8')
    if (re.test(text)) break
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return text
}

t.test('LogFile is appended to, created 0600, parent directories made', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-log-'))
  const file = join(dir, 'nested', 'skr.log')
  const log = createLogger('info', file)
  log.info({ kid: 'k1', access_token: 'secret-token-value' }, 'hello')
  const text = await fileContains(file, /"msg":"hello"/)
  t.match(text, /"msg":"hello"/)
  t.match(text, /"kid":"k1"/)
  t.notMatch(text, /secret-token-value/, 'redacted')
  t.equal(statSync(file).mode & 0o777, 0o600, 'only skr\'s user can read the log')
  t.equal(statSync(join(dir, 'nested')).mode & 0o077, 0, 'nor list the directory it made')
  const again = createLogger('info', file)
  again.info('second')
  t.match(await fileContains(file, /second/), /hello[\s\S]*second/, 'appended, not truncated')
  again.child({ ctx: { access_token: 'nested-binding-secret' } }).info('child of the process logger')
  const withChild = await fileContains(file, /child of the process logger/)
  t.notMatch(withChild, /nested-binding-secret/, 'the process logger walks child bindings (redactChildBindings)')
})

t.test('an existing LogFile readable by others is narrowed to 0640 at most; 0600 and 0640 are kept', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-log-'))
  for (const [before, after] of [[0o644, 0o640], [0o666, 0o640], [0o660, 0o640], [0o600, 0o600], [0o640, 0o640], [0o604, 0o600]] as const) {
    const file = join(dir, `skr-${before.toString(8)}.log`)
    writeFileSync(file, '')
    chmodSync(file, before)
    createLogger('info', file).info('x')
    t.equal(statSync(file).mode & 0o777, after, `${before.toString(8)} -> ${after.toString(8)}`)
  }
})

t.test('an unwritable LogFile is ERR_CONFIG_INVALID, not a crash', { skip: process.getuid?.() === 0 ? 'root can write anywhere; the directory case below still runs' : false }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-log-'))
  const file = join(dir, 'ro.log')
  writeFileSync(file, '')
  chmodSync(file, 0o444)
  t.throws(() => createLogger('info', file), { code: 'ERR_CONFIG_INVALID', message: /LogFile cannot be opened for appending \(EACCES\)/ })
})

t.test('a LogFile that is a directory is ERR_CONFIG_INVALID', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-log-'))
  t.throws(() => createLogger('info', dir), { code: 'ERR_CONFIG_INVALID', message: /LogFile cannot be opened for appending \(EISDIR\)/ })
})

t.test('redaction covers headers and JWK private members', async t => {
  for (const p of ['req.headers.authorization', 'req.headers.cookie', 'access_token', 'd', 'k', 'maaToken']) t.ok(REDACT_PATHS.includes(p), p)
  t.notOk(REDACT_PATHS.some(p => p.includes('*')), 'no wildcard paths (slow in pino 10): redactSecrets covers the levels below')
  for (const k of ['access_token', 'accessToken', 'maaToken', 'd', 'k', 'qi']) {
    t.ok(SECRET_KEYS.includes(k), k)
    t.same(redactSecrets({ x: { [k]: 'v' }, y: 1 }), { x: { [k]: CENSOR }, y: 1 }, `*.${k}, whatever its value`)
  }
})

/** A logger with the real options at trace, writing into `lines`. */
function capture (): { log: Logger, lines: string[] } {
  const lines: string[] = []
  return { log: pino(loggerOptions('trace'), { write (line: string) { lines.push(line) } }), lines }
}

/** A unique secret: if any of it reaches the output, the test sees it. */
function secret (label: string): string {
  return `${label}${randomBytes(16).toString('hex')}`
}

/** The parsed line whose msg is `msg`. */
function lineWith (lines: readonly string[], msg: string): Record<string, unknown> {
  const line = lines.find(l => l.includes(`"msg":"${msg}"`))
  if (line === undefined) throw new Error(`no line ${msg}`)
  return JSON.parse(line) as Record<string, unknown>
}

/** The value at `path` inside a parsed line; undefined when absent. */
function at (value: unknown, ...path: Array<string | number>): unknown {
  return path.reduce<unknown>((v, k) => typeof v === 'object' && v !== null ? (v as Record<string | number, unknown>)[k] : undefined, value)
}

t.test('secrets at depth 1, 2, 3, in arrays and in Error causes never reach the output; their siblings do', async t => {
  const s = {
    depth1: secret('D1'),
    depth2: secret('D2'),
    depth3: secret('D3'),
    array: secret('AR'),
    nestedArray: randomBytes(32).toString('base64url'),
    cause: secret('CA'),
    enumerableCause: secret('EC'),
    causeUnderDetails: secret('CD'),
    aggregate: secret('AG'),
    binding: secret('BI')
  }
  const { log, lines } = capture()
  log.info({ upstream: { access_token: s.depth1, status: 401 } }, 'depth 1')
  log.info({ details: { upstream: { accessToken: s.depth2, upstreamStatus: 401 } } }, 'depth 2')
  log.info({ a: { b: { c: { token: s.depth3, kept: 'sibling-3' } } } }, 'depth 3')
  log.info({
    attempts: [{ status: 500 }, { status: 200, headers: { authorization: `Bearer ${s.array}`, 'x-ms-request-id': 'rid-1' } }],
    keys: [[{ kid: 'kid-1', jwk: { kty: 'RSA', n: 'public-n' } }, { kid: 'kid-2', d: s.nestedArray }]]
  }, 'arrays')
  // A cause set by the constructor is not enumerable: pino prints an Error cause's message and
  // stack only, and an object cause not at all; redactSecrets censors it anyway.
  log.error({ err: new IdentityUnavailable('identity failed', { cause: { access_token: s.cause, status: 400 }, details: { identity: 'managed identity' } }) }, 'constructor cause')
  // One assigned afterwards is enumerable, and pino's err serializer prints it.
  log.error({ err: Object.assign(new Error('assigned'), { cause: { upstream: { client_assertion: s.enumerableCause, error: 'invalid_client' } } }) }, 'assigned cause')
  // An SDK error with its response, under another key: JSON prints its enumerable members.
  const sdkError = Object.assign(new Error('sdk'), { statusCode: 400, errorResponse: { error: 'invalid_grant', refresh: { token: s.causeUnderDetails } } })
  log.warn({ details: { cause: new Error('outer', { cause: sdkError }), inner: sdkError } }, 'cause under details')
  log.error({ err: new AggregateError([Object.assign(new Error('one'), { details: { maaToken: s.aggregate, attempt: 1 } })], 'all failed') }, 'aggregate')
  log.child({ access_token: s.binding, component: 'test' }).info('child binding')

  const text = lines.join('')
  for (const [name, value] of Object.entries(s)) t.notOk(text.includes(value), `${name}: no byte of the secret is logged`)

  t.same(at(lineWith(lines, 'depth 1'), 'upstream'), { access_token: CENSOR, status: 401 })
  t.same(at(lineWith(lines, 'depth 2'), 'details'), { upstream: { accessToken: CENSOR, upstreamStatus: 401 } })
  t.same(at(lineWith(lines, 'depth 3'), 'a'), { b: { c: { token: CENSOR, kept: 'sibling-3' } } })
  const arrays = lineWith(lines, 'arrays')
  t.same(arrays['attempts'], [{ status: 500 }, { status: 200, headers: { authorization: CENSOR, 'x-ms-request-id': 'rid-1' } }])
  t.same(arrays['keys'], [[{ kid: 'kid-1', jwk: CENSOR }, { kid: 'kid-2', d: CENSOR }]])
  const ctor = at(lineWith(lines, 'constructor cause'), 'err')
  t.match(ctor, { type: 'IdentityUnavailable', code: 'ERR_IDENTITY_UNAVAILABLE', details: { identity: 'managed identity' }, message: 'identity failed' })
  const assigned = at(lineWith(lines, 'assigned cause'), 'err')
  t.match(assigned, { type: 'Error', message: 'assigned' })
  t.same(at(assigned, 'cause'), { upstream: { client_assertion: CENSOR, error: 'invalid_client' } })
  t.same(at(lineWith(lines, 'cause under details'), 'details', 'inner'), { statusCode: 400, errorResponse: { error: 'invalid_grant', refresh: { token: CENSOR } } })
  t.same(at(lineWith(lines, 'aggregate'), 'err', 'aggregateErrors', 0, 'details'), { maaToken: CENSOR, attempt: 1 })
  t.match(lineWith(lines, 'child binding'), { access_token: CENSOR, component: 'test' }, 'bindings get the top-level paths')
})

// Egress-proxy credentials, passwords and OAuth client secrets and refresh tokens: each spelling
// is censored at depth 1 and 3 by redactSecrets, and at the top level and in a child logger's
// bindings (which only the literal paths cover), whatever its value.
const NEW_SECRET_NAMES = [
  'proxy-authorization', 'Proxy-Authorization', 'proxyAuthorization', 'password',
  'refresh_token', 'refreshToken', 'client_secret', 'clientSecret'
]

t.test('proxy credentials, passwords, client secrets and refresh tokens are censored at every depth', async t => {
  const { log, lines } = capture()
  const values = new Map<string, string>()
  for (const name of NEW_SECRET_NAMES) {
    t.ok(SECRET_KEYS.includes(name), `${name} is a secret key`)
    t.ok(REDACT_PATHS.includes(name), `${name} is a top-level path`)
    const v = (label: string): string => {
      const value = secret(`${label}-${name}-`)
      values.set(`${label} ${name}`, value)
      return value
    }
    log.info({ [name]: v('d0'), kid: 'k0' }, `${name} depth 0`)
    log.info({ upstream: { [name]: v('d1'), status: 407 } }, `${name} depth 1`)
    log.info({ a: { b: { c: { [name]: v('d3'), kept: 'sibling-3' } } } }, `${name} depth 3`)
    // Short, spaced or numeric values too: these are names, not JWK members judged by their value.
    log.info({ a: { b: { c: { [name]: 42 } } } }, `${name} number`)
    log.child({ [name]: v('binding'), component: 'test' }).info(`${name} binding`)

    t.match(lineWith(lines, `${name} depth 0`), { [name]: CENSOR, kid: 'k0' })
    t.same(at(lineWith(lines, `${name} depth 1`), 'upstream'), { [name]: CENSOR, status: 407 })
    t.same(at(lineWith(lines, `${name} depth 3`), 'a'), { b: { c: { [name]: CENSOR, kept: 'sibling-3' } } })
    t.same(at(lineWith(lines, `${name} number`), 'a', 'b', 'c'), { [name]: CENSOR })
    t.match(lineWith(lines, `${name} binding`), { [name]: CENSOR, component: 'test' })
    t.same(redactSecrets({ x: { [name]: 'v' }, y: 1 }), { x: { [name]: CENSOR }, y: 1 }, `redactSecrets: *.${name}`)
  }
  // The request as fastify's serializer leaves it: a child bound to it gets only the literal path.
  const header = secret('req-header-')
  values.set('req.headers', header)
  t.ok(REDACT_PATHS.includes('req.headers["proxy-authorization"]'))
  log.child({ req: { method: 'GET', headers: { 'proxy-authorization': `Basic ${header}`, host: 'localhost' } } }).info('req binding')
  t.same(at(lineWith(lines, 'req binding'), 'req', 'headers'), { 'proxy-authorization': CENSOR, host: 'localhost' })

  const text = lines.join('')
  for (const [where, value] of values) t.notOk(text.includes(value), `${where}: no byte of the secret is logged`)
})

t.test('JWK member names deep down: key material and JWKs are censored, ordinary values are not', async t => {
  const material = randomBytes(32).toString('base64url')
  const { log, lines } = capture()
  log.info({ stats: { window: { d: 3, k: 'north', p: true, q: null, dp: 'a short phrase', qi: 12.5 } } }, 'ordinary')
  log.info({ a: { b: { k: material, d: Buffer.from('raw key bytes'), kid: 'kid-1' } } }, 'material')
  log.info({ a: { b: { kty: 'oct', k: 'tiny', alg: 'A256KW' } } }, 'jwk')
  log.info({ d: 5, a: { k: 1 } }, 'shallow')
  t.same(at(lineWith(lines, 'ordinary'), 'stats'), { window: { d: 3, k: 'north', p: true, q: null, dp: 'a short phrase', qi: 12.5 } })
  t.same(at(lineWith(lines, 'material'), 'a'), { b: { k: CENSOR, d: CENSOR, kid: 'kid-1' } })
  t.same(at(lineWith(lines, 'jwk'), 'a'), { b: { kty: 'oct', k: CENSOR, alg: 'A256KW' } })
  t.match(lineWith(lines, 'shallow'), { d: CENSOR, a: { k: CENSOR } }, 'the top two levels censor them whatever the value, as always')
  t.notOk(lines.join('').includes(material))
})

t.test('redactSecrets copies on write, and fails closed past its bounds', async t => {
  const clean = { kid: 'k1', details: { upstreamStatus: 503 }, list: [1, 'two', { three: 3 }] }
  t.equal(redactSecrets(clean), clean, 'nothing to censor: the same object, not a copy')
  const dirty = { kid: 'k1', details: { upstream: { token: 'sekret', n: 1 } }, other: { n: 2 } }
  const before = structuredClone(dirty)
  const out = redactSecrets(dirty) as typeof dirty
  t.same(dirty, before, 'the input is not changed')
  t.same(out.details.upstream, { token: CENSOR, n: 1 })
  t.equal(out.other, dirty.other, 'untouched branches are shared')

  let deep: Record<string, unknown> = { token: 'too-deep-secret', n: 1 }
  for (let i = 0; i < REDACT_LIMITS.maxDepth + 2; i++) deep = { next: deep }
  t.notMatch(JSON.stringify(redactSecrets(deep)), /too-deep-secret|"n":1/, 'beyond maxDepth nothing is logged unscanned')
  t.match(JSON.stringify(redactSecrets(deep)), '[redacted: nested too deep]')

  const wide = Object.fromEntries(Array.from({ length: REDACT_LIMITS.maxEntries + 1 }, (_, i) => [`f${i}`, i]))
  const { log, lines } = capture()
  log.info({ kid: 'k2', wide: { ...wide, token: 'wide-secret' } }, 'wide member')
  log.info({ kid: 'k3', list: Array.from({ length: REDACT_LIMITS.maxEntries }, () => ({ token: 'wide-array-secret' })) }, 'wide array')
  for (const msg of ['wide member', 'wide array']) {
    const line = lineWith(lines, msg)
    t.same([line['redaction'], line['kid'], line['wide'], line['list']], ['[redacted: too large]', undefined, undefined, undefined], `${msg}: the line is replaced whole`)
    t.equal(line['level'], 'info', 'level and msg are kept')
  }
  t.notMatch(lines.join(''), /wide-secret|wide-array-secret/)
  t.equal(lineWith(lines, 'wide member')['msg'], 'wide member')

  const cyclic: Record<string, unknown> = { token: 'cyclic-secret', n: 1 }
  cyclic.self = cyclic
  t.same(redactSecrets({ cyclic }), { cyclic: { token: CENSOR, n: 1, self: '[Circular]' } }, 'a cycle cannot lead back to the original')
  const err = Object.assign(new IdentityUnavailable('x'), { extra: { token: 'error-secret' } })
  const copy = redactSecrets({ err }) as { err: IdentityUnavailable & { extra: unknown } }
  t.ok(copy.err instanceof IdentityUnavailable, 'an Error copy keeps its class')
  t.equal(copy.err.stack, err.stack)
  t.same(copy.err.extra, { token: CENSOR })
  t.same(err.extra, { token: 'error-secret' }, 'the thrown error is not changed')

  log.info({ kid: 'k4', get broken (): string { throw new Error('getter') } }, 'throwing getter')
  t.equal(lineWith(lines, 'throwing getter')['redaction'], '[redacted: unreadable]', 'a throwing getter does not break logging')
})

t.test('fastify logs each request\'s path, never its query string (a caller\'s token may be there)', async t => {
  const token = secret('QS')
  const { log, lines } = capture()
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease: new FakeKeyReleaseService(), logger: log, metrics: createMetricsRegistry({ defaultMetrics: false }), backpressure: NO_SHEDDING })
  t.teardown(() => app.close())
  const body = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' }
  t.equal((await app.inject({ method: 'POST', url: `/key/release?access_token=${token}`, payload: body })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: `/status?token=${token}&x=1` })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: `/no/such/route?code=${token}` })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/status' })).statusCode, 200)

  t.notOk(lines.join('').includes(token), 'no byte of the query string is logged')
  const urls = lines.map(line => at(JSON.parse(line), 'req', 'url')).filter(url => url !== undefined)
  t.same(urls, ['/key/release?[redacted]', '/status?[redacted]', '/no/such/route?[redacted]', '/status'], 'the path is kept, and that there was a query')
  // The same path covers a `req` logged by anyone with these options (a binding included).
  log.child({ req: { method: 'GET', url: `/x?${token}` } }).info({ req: { method: 'GET', url: `/y?${token}` } }, 'req with a query')
  t.notOk(lines.join('').includes(token))
  t.match(lineWith(lines, 'req with a query'), { req: { method: 'GET', url: '/y?[redacted]' } })
})

t.test('child bindings: nested secrets censored, through every generation, other bindings kept', async (t) => {
  const lines: string[] = []
  const root = redactChildBindings(pino(loggerOptions('trace'), { write (line: string) { lines.push(line) } }))
  const token = secret('nested-binding')
  const deep = secret('grandchild-binding')
  const child = root.child({ component: 'outer', ctx: { upstream: { access_token: token, status: 200 } } })
  child.info('child line')
  child.child({ reqId: 'r-1', more: { a: { client_secret: deep } } }).info('grandchild line')
  const text = lines.join('')
  t.notOk(text.includes(token), 'no byte of a nested binding secret')
  t.notOk(text.includes(deep), 'nor of a grandchild\'s')
  t.same(at(lineWith(lines, 'child line'), 'ctx'), { upstream: { access_token: CENSOR, status: 200 } })
  const grand = lineWith(lines, 'grandchild line')
  t.match(grand, { component: 'outer', reqId: 'r-1', service: 'skr' }, 'a grandchild keeps its parents\' bindings')
  t.same(at(grand, 'more'), { a: { client_secret: CENSOR } })
  t.same(at(grand, 'ctx'), { upstream: { access_token: CENSOR, status: 200 } })
  // Without it (a plain pino logger with the same options) the nested value is printed: the reason for the wrapper.
  const plain: string[] = []
  pino(loggerOptions('trace'), { write (line: string) { plain.push(line) } }).child({ ctx: { access_token: token } }).info('plain')
  t.ok(plain.join('').includes(token), 'pino alone does not walk bindings')
})
