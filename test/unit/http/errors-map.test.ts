import t from 'tap'
import { deadlineError, isTlsCertificateError, mapTransportError, statusError } from '../../../src/http/errors-map.ts'
import { vaultError } from '../../../src/ops/vault-client.ts'

const ctx = { upstream: 'kds' as const, host: 'kdsintf.amd.com', attempts: 3 }
const e = (code: string): Error => Object.assign(new Error('boom'), { code })

t.test('transport codes → code, retryability and message', async (t) => {
  const table: Array<[string, string, boolean, string]> = [
    ['UND_ERR_CONNECT_TIMEOUT', 'ERR_UPSTREAM_TIMEOUT', true, 'connect timed out'],
    ['UND_ERR_HEADERS_TIMEOUT', 'ERR_UPSTREAM_TIMEOUT', true, 'no response headers in time'],
    ['UND_ERR_BODY_TIMEOUT', 'ERR_UPSTREAM_TIMEOUT', true, 'response body stalled'],
    ['ECONNREFUSED', 'ERR_UPSTREAM_UNAVAILABLE', true, 'connection refused'],
    ['ECONNRESET', 'ERR_UPSTREAM_UNAVAILABLE', true, 'connection reset'],
    // NXDOMAIN: the name does not exist; not retried, and not a retryable 503 for the caller either.
    ['ENOTFOUND', 'ERR_UPSTREAM_NOT_FOUND', false, 'host name not found'],
    ['EAI_AGAIN', 'ERR_UPSTREAM_UNAVAILABLE', true, 'DNS lookup failed temporarily'],
    ['UND_ERR_SOCKET', 'ERR_UPSTREAM_UNAVAILABLE', true, 'connection closed by the server'],
    ['EPIPE', 'ERR_UPSTREAM_UNAVAILABLE', true, 'connection closed while sending'],
    ['CERT_HAS_EXPIRED', 'ERR_UPSTREAM_UNAVAILABLE', false, 'TLS certificate rejected'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_UPSTREAM_UNAVAILABLE', false, 'TLS certificate rejected'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_UPSTREAM_UNAVAILABLE', false, 'TLS certificate rejected'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_UPSTREAM_UNAVAILABLE', false, 'TLS certificate rejected'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'ERR_UPSTREAM_UNAVAILABLE', false, 'TLS certificate rejected'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_UPSTREAM_UNAVAILABLE', false, 'TLS handshake failed'],
    ['HPE_INVALID_CONSTANT', 'ERR_UPSTREAM_RESPONSE_INVALID', false, 'malformed HTTP response'],
    ['EWHATEVER', 'ERR_UPSTREAM_UNAVAILABLE', false, 'request failed']
  ]
  for (const [errno, code, retryable, what] of table) {
    const m = mapTransportError(e(errno), ctx)
    t.equal(m.error.code, code, errno)
    t.equal(m.retryable, retryable, `${errno} retryable`)
    t.equal(m.errorCode, errno)
    t.equal(m.error.message, `kds kdsintf.amd.com: ${what} (${errno}) after 3 attempts`)
    t.same(m.error.details, { upstream: 'kds', host: 'kdsintf.amd.com', errorCode: errno, attempts: 3 })
  }
})

t.test('codes are found in AggregateError parts and causes; none at all is UNKNOWN', async (t) => {
  const agg = new AggregateError([new Error('no code'), e('ECONNREFUSED')], 'all failed')
  t.equal(mapTransportError(agg, ctx).errorCode, 'ECONNREFUSED')
  t.equal(mapTransportError(new Error('wrapped', { cause: e('ECONNRESET') }), ctx).errorCode, 'ECONNRESET')
  const none = mapTransportError('a string', { ...ctx, attempts: 1 })
  t.equal(none.errorCode, 'UNKNOWN')
  t.equal(none.retryable, false)
  t.equal(none.error.message, 'kds kdsintf.amd.com: request failed (UNKNOWN) after 1 attempt')
})

t.test('deadlineError', async (t) => {
  const err = deadlineError(ctx, 30000)
  t.equal(err.code, 'ERR_UPSTREAM_TIMEOUT')
  t.equal(err.message, 'kds kdsintf.amd.com: no answer within the 30000 ms deadline after 3 attempts')
  t.same(err.details, { upstream: 'kds', host: 'kdsintf.amd.com', errorCode: 'TOTAL_DEADLINE', attempts: 3 })
})

t.test('statusError: retryable statuses → unavailable, others → rejected; body never copied raw', async (t) => {
  const body = Buffer.from(JSON.stringify({ error: { code: 'Throttled', message: 'slow down', innererror: { code: 'Inner' } }, secret: 'do-not-leak' }))
  const u = statusError(ctx, 429, body)
  t.equal(u.code, 'ERR_UPSTREAM_UNAVAILABLE')
  t.equal(u.message, 'kds kdsintf.amd.com: HTTP 429 (Throttled) after 3 attempts')
  t.same(u.details, { upstream: 'kds', host: 'kdsintf.amd.com', upstreamStatus: 429, attempts: 3, upstreamCode: 'Throttled', upstreamMessage: 'slow down', upstreamInnerCode: 'Inner' })
  const r = statusError({ ...ctx, attempts: 1 }, 404, Buffer.from('<html>nope</html>'), 'the VCEK')
  t.equal(r.code, 'ERR_UPSTREAM_REJECTED')
  t.equal(r.statusCode, 502)
  t.equal(r.message, 'kds kdsintf.amd.com: unexpected HTTP 404 for the VCEK')
  t.equal(r.details.upstreamStatus, 404)
  t.notMatch(JSON.stringify({ m: u.message, d: u.details }), /do-not-leak/)
  t.notMatch(JSON.stringify({ m: r.message, d: r.details }), /nope/)
})

t.test('ENOTFOUND is 502 ERR_UPSTREAM_NOT_FOUND, final; EAI_AGAIN stays a retryable 503', async (t) => {
  const nx = mapTransportError(e('ENOTFOUND'), { upstream: 'akv', host: 'myvaultt.vault.azure.net', attempts: 1 })
  t.equal(nx.error.code, 'ERR_UPSTREAM_NOT_FOUND')
  t.equal(nx.error.statusCode, 502, 'not 503: a client that retries 503 would retry it forever')
  t.equal(nx.retryable, false)
  t.equal(nx.error.message, 'akv myvaultt.vault.azure.net: host name not found (ENOTFOUND) after 1 attempt')
  const again = mapTransportError(e('EAI_AGAIN'), { upstream: 'akv', host: 'myvault.vault.azure.net', attempts: 1 })
  t.equal(again.error.code, 'ERR_UPSTREAM_UNAVAILABLE')
  t.equal(again.error.statusCode, 503)
  t.equal(again.retryable, true)
  // Happy-eyeballs and wrapped errors carry the code inside.
  t.equal(mapTransportError(new AggregateError([e('ENOTFOUND')]), ctx).error.code, 'ERR_UPSTREAM_NOT_FOUND')
})

t.test('through a proxy: messages name it, details say viaProxy (never its address)', async (t) => {
  const via = { upstream: 'akv' as const, host: 'myvault.vault.azure.net', attempts: 2, proxy: 'http://10.0.0.4:3128' }
  const m = mapTransportError(e('ECONNREFUSED'), via)
  t.equal(m.error.message, 'akv myvault.vault.azure.net via proxy http://10.0.0.4:3128: connection refused (ECONNREFUSED) after 2 attempts')
  t.same(m.error.details, { upstream: 'akv', host: 'myvault.vault.azure.net', viaProxy: true, errorCode: 'ECONNREFUSED', attempts: 2 })
  t.equal(statusError(via, 503, Buffer.alloc(0)).message, 'akv myvault.vault.azure.net via proxy http://10.0.0.4:3128: HTTP 503 after 2 attempts')
  t.notMatch(JSON.stringify(deadlineError(via, 1000).details), /10\.0\.0\.4/)
})

// The upstream retry decision and the vault commands' SKR_EXTRA_CA_CERTS hint once had two lists
// (the hint's lacked UNABLE_TO_GET_ISSUER_CERT, HOSTNAME_MISMATCH, INVALID_CA …): both must agree.
t.test('one TLS certificate list: never retried upstream, always hinted by the vault commands', async (t) => {
  const certificate = [
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
    'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED',
    'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'CERT_CHAIN_TOO_LONG'
  ]
  for (const code of certificate) {
    t.ok(isTlsCertificateError(code), code)
    const mapped = mapTransportError(e(code), ctx)
    t.equal(mapped.retryable, false, `${code} not retried`)
    t.match(mapped.error.message, /TLS certificate rejected/, code)
    t.match(vaultError(Object.assign(new Error('tls'), { cause: { code } }), 'v').message, /TLS certificate is not trusted \(set SKR_EXTRA_CA_CERTS/, code)
  }
  for (const code of ['ECONNRESET', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_TLS_HANDSHAKE_TIMEOUT', 'UND_ERR_PRX_TLS', 'EWHATEVER']) {
    t.notOk(isTlsCertificateError(code), code)
    t.notMatch(mapTransportError(e(code), ctx).error.message, /TLS certificate rejected/, code)
    t.notMatch(vaultError(Object.assign(new Error('x'), { code }), 'v').message, /SKR_EXTRA_CA_CERTS/, code)
  }
})
