import t from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import type { AccessToken, GetTokenOptions } from '@azure/identity'
import { AuthenticationError, CredentialUnavailableError } from '@azure/identity'
import { createCredential, createTokenSource, identityError, credentialPlan, createIdentityTokenSource } from '../../../src/identity/token-source.ts'
import { IdentityUnavailable } from '../../../src/errors.ts'

const VAULT = 'https://vault.azure.net'
const HSM = 'https://managedhsm.azure.net'
const SECRET = 'eyJhbGciOiJSUzI1NiJ9.eyJzZWNyZXQiOiJ0b2tlbiJ9.c2lnbmF0dXJlLXNlY3JldA'

/** A credential double: answers from a script, counts and records calls. */
function fakeCredential (answer: (scope: string, n: number) => Promise<AccessToken | null>): {
  getToken: (scopes: string | string[], options?: GetTokenOptions) => Promise<AccessToken | null>
  calls: string[]
} {
  const calls: string[] = []
  return {
    calls,
    getToken: async (scopes) => {
      const scope = Array.isArray(scopes) ? scopes.join(' ') : scopes
      calls.push(scope)
      return await answer(scope, calls.length)
    }
  }
}

function clock (start = Date.UTC(2025, 0, 1)): { now: () => Date, advance: (ms: number) => void } {
  let t = start
  return { now: () => new Date(t), advance: (ms) => { t += ms } }
}

t.test('caches per resource until 5 minutes before expiry (injected clock)', async (t) => {
  const c = clock()
  const cred = fakeCredential(async (scope, n) => ({ token: `${scope}#${n}`, expiresOnTimestamp: c.now().getTime() + 60 * 60_000 }))
  const source = createTokenSource({ credential: cred, kind: 'managed identity', now: c.now })
  t.equal(source.kind, 'managed identity')
  t.equal(await source.getToken(VAULT), `${VAULT}/.default#1`, 'the SDK gets the /.default scope')
  t.equal(await source.getToken(`${VAULT}/`), `${VAULT}/.default#1`, 'cache hit (trailing slash is the same resource)')
  t.equal(await source.getToken(HSM), `${HSM}/.default#2`, 'another resource is another entry')
  c.advance(54 * 60_000 + 59_000)
  t.equal(await source.getToken(VAULT), `${VAULT}/.default#1`, 'still cached 5 min + 1 s before expiry')
  c.advance(1000)
  t.equal(await source.getToken(VAULT), `${VAULT}/.default#3`, 'refreshed exactly 5 min before expiry')
  t.equal(await source.getToken(VAULT), `${VAULT}/.default#3`)
  t.same(cred.calls, [`${VAULT}/.default`, `${HSM}/.default`, `${VAULT}/.default`])
})

/** A cache-metrics double: every cacheResult call as 'cache:hit' or 'cache:miss', in order. */
function cacheRecorder (): { seen: string[], metrics: { cacheResult: (cache: string, hit: boolean) => void } } {
  const seen: string[] = []
  return { seen, metrics: { cacheResult (cache, hit) { seen.push(`${cache}:${hit ? 'hit' : 'miss'}`) } } }
}

t.test('every lookup is recorded as an aad_token hit or miss: fetch, reuse, refresh, expiry', async (t) => {
  const c = clock()
  const cred = fakeCredential(async (_scope, n) => ({ token: `tok${n}`, expiresOnTimestamp: c.now().getTime() + 60 * 60_000 }))
  const { seen, metrics } = cacheRecorder()
  const source = createTokenSource({ credential: cred, kind: 'managed identity', now: c.now, metrics })
  t.equal(await source.getToken(VAULT), 'tok1')
  t.equal(await source.getToken(VAULT), 'tok1')
  t.same(seen, ['aad_token:miss', 'aad_token:hit'], 'two requests: one miss (fetched), then one hit')
  t.equal(await source.getToken(HSM), 'tok2')
  t.same(seen.slice(2), ['aad_token:miss'], 'another resource is its own miss')
  c.advance(55 * 60_000)
  t.equal(await source.getToken(VAULT), 'tok3')
  t.same(seen.slice(3), ['aad_token:miss'], 'inside the refresh margin: a miss')
  c.advance(2 * 60 * 60_000)
  t.equal(await source.getToken(VAULT), 'tok4')
  t.equal(await source.getToken(VAULT), 'tok4')
  t.same(seen.slice(4), ['aad_token:miss', 'aad_token:hit'], 'an expired token is a miss, its replacement a hit')
  t.equal(cred.calls.length, 4, 'one fetch per miss')
})

t.test('cache metrics: joiners of a fetch under way and failed fetches are misses; bad arguments record nothing', async (t) => {
  let release: (() => void) | undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  let n = 0
  const cred = fakeCredential(async () => {
    if (++n === 1) throw new CredentialUnavailableError('ManagedIdentityCredential: Network unreachable.')
    await gate
    return { token: 'tok', expiresOnTimestamp: Date.now() + 3_600_000 }
  })
  const { seen, metrics } = cacheRecorder()
  const source = createTokenSource({ credential: cred, kind: 'managed identity', metrics })
  await t.rejects(source.getToken(VAULT), { code: 'ERR_IDENTITY_UNAVAILABLE' })
  t.same(seen, ['aad_token:miss'], 'a failed fetch was a miss')
  const all = Promise.all([source.getToken(VAULT), source.getToken(VAULT), source.getToken(VAULT)])
  release?.()
  t.same(await all, ['tok', 'tok', 'tok'])
  t.same(seen.slice(1), ['aad_token:miss', 'aad_token:miss', 'aad_token:miss'], 'callers that waited for the shared fetch were not served from the cache')
  t.equal(cred.calls.length, 2)
  await t.rejects(source.getToken('http://vault.azure.net'), TypeError)
  t.equal(seen.length, 4, 'a programming error is no lookup')
})

t.test('single-flight: concurrent callers share one fetch', async (t) => {
  let release: (() => void) | undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  const cred = fakeCredential(async (_scope, n) => { await gate; return { token: `tok${n}`, expiresOnTimestamp: Date.now() + 3_600_000 } })
  const source = createTokenSource({ credential: cred, kind: 'managed identity' })
  const all = Promise.all(Array.from({ length: 10 }, async () => await source.getToken(VAULT)))
  release?.()
  t.same(await all, Array(10).fill('tok1'))
  t.equal(cred.calls.length, 1)
})

t.test('a failure caches nothing: the next call fetches again', async (t) => {
  const cred = fakeCredential(async (_scope, n) => {
    if (n === 1) throw new CredentialUnavailableError('ManagedIdentityCredential: Network unreachable.')
    return { token: 'good', expiresOnTimestamp: Date.now() + 3_600_000 }
  })
  const source = createTokenSource({ credential: cred, kind: 'managed identity', hint: 'is the identity assigned to the container group? client_id abc' })
  await t.rejects(source.getToken(VAULT), { code: 'ERR_IDENTITY_UNAVAILABLE', statusCode: 503 })
  t.equal(await source.getToken(VAULT), 'good')
  t.equal(cred.calls.length, 2)
})

t.test('an empty or null answer is a failure, not a token', async (t) => {
  const answers: Array<AccessToken | null> = [null, { token: '', expiresOnTimestamp: Date.now() + 1000 }, { token: 'x', expiresOnTimestamp: Number.NaN }]
  const cred = fakeCredential(async (_s, n) => answers[n - 1] ?? null)
  const source = createTokenSource({ credential: cred, kind: 'workload identity' })
  for (let i = 0; i < answers.length; i++) {
    await t.rejects(source.getToken(VAULT), { code: 'ERR_IDENTITY_UNAVAILABLE', message: /^workload identity token request failed: the credential returned no token/ })
  }
})

t.test('SDK and MSAL errors map to IdentityUnavailable naming the identity, the answer and what to check', async (t) => {
  // The shapes observed from @azure/identity 4.13.1 (see docs/protocols.md#identity-sdk).
  const msalServer = Object.assign(new Error(`invalid_request: Error(s): Not Available - Timestamp: Not Available - Description: Identity not found ${SECRET} - Correlation ID: Not Available - Trace ID: Not Available`), {
    name: 'ServerError', errorCode: 'invalid_request', status: 400
  })
  const mi = new CredentialUnavailableError(`ManagedIdentityCredential: Authentication failed. Message ${msalServer.message}`, { cause: msalServer })
  const e1 = identityError(mi, 'managed identity', 'is the identity assigned to the container group? client_id 1234')
  t.type(e1, IdentityUnavailable)
  t.equal(e1.message, 'managed identity token request failed: IMDS answered 400 invalid_request: Identity not found [redacted] (is the identity assigned to the container group? client_id 1234)')
  t.same({ ...e1.details }, { identity: 'managed identity', upstreamStatus: 400, upstreamCode: 'invalid_request' })
  t.equal(e1.cause, mi)

  const network = Object.assign(new Error('network_error: See https://aka.ms/msal.js.errors#network_error for details'), { errorCode: 'network_error' })
  const e2 = identityError(new CredentialUnavailableError('ManagedIdentityCredential: Network unreachable.', { cause: network }), 'managed identity', 'h')
  t.equal(e2.message, 'managed identity token request failed: IMDS unreachable (network_error) (h)')

  const wi = new Error('invalid_client: Error(s): 700016 - Timestamp: Not Available - Description: AADSTS700016: Application with identifier x was not found. - Correlation ID: Not Available - Trace ID: Not Available')
  wi.name = 'AuthenticationRequiredError'
  t.equal(identityError(wi, 'workload identity', 'check AZURE_CLIENT_ID').message,
    'workload identity token request failed: Entra ID answered invalid_client: AADSTS700016: Application with identifier x was not found. (check AZURE_CLIENT_ID)')

  const authError = new AuthenticationError(401, JSON.stringify({ error: 'invalid_client', error_description: `bad assertion ${SECRET}` }))
  const e4 = identityError(authError, 'workload identity', '')
  t.equal(e4.message, 'workload identity token request failed: Entra ID answered 401 invalid_client: bad assertion [redacted]')

  const plain = identityError(new Error(`something odd\nwith a newline and ${SECRET}`), 'managed identity', '')
  t.equal(plain.message, 'managed identity token request failed: something odd with a newline and [redacted]')
  t.equal(identityError(new Error('x'.repeat(500)), 'managed identity', '').message.length, 'managed identity token request failed: '.length + 201)
  for (const e of [e1, e2, e4, plain]) t.notMatch(e.message, /eyJ|signature-secret/, 'no token text')
})

t.test('a hung credential times out with IdentityUnavailable; the caller\'s abort surfaces unchanged', async (t) => {
  const cred = fakeCredential(async () => await new Promise<AccessToken>(() => {}))
  const source = createTokenSource({ credential: cred, kind: 'managed identity', timeoutMs: 20, hint: 'check IMDS' })
  await t.rejects(source.getToken(VAULT), { code: 'ERR_IDENTITY_UNAVAILABLE', message: 'managed identity token request failed: IMDS did not answer in time (check IMDS)' })

  const slow = createTokenSource({ credential: cred, kind: 'managed identity', timeoutMs: 300 })
  const controller = new AbortController()
  const reason = new Error('caller gave up')
  const pending = slow.getToken(VAULT, controller.signal)
  controller.abort(reason)
  await t.rejects(pending, reason)
  await t.rejects(slow.getToken(VAULT, AbortSignal.abort(reason)), reason, 'an already-aborted signal')
})

t.test('one caller giving up does not fail the others sharing the fetch', async (t) => {
  let release: (() => void) | undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  const cred = fakeCredential(async () => { await gate; return { token: 'shared', expiresOnTimestamp: Date.now() + 3_600_000 } })
  const source = createTokenSource({ credential: cred, kind: 'managed identity' })
  const controller = new AbortController()
  const quitter = source.getToken(VAULT, controller.signal)
  const stayer = source.getToken(VAULT)
  controller.abort(new Error('bye'))
  await t.rejects(quitter, { message: 'bye' })
  release?.()
  t.equal(await stayer, 'shared')
  t.equal(cred.calls.length, 1)
})

t.test('logs name the identity and scope, never the token', async (t) => {
  const lines: string[] = []
  const log = pino({ level: 'trace' }, new Writable({ write (chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb() } }))
  let n = 0
  const cred = fakeCredential(async () => {
    if (++n === 1) throw new CredentialUnavailableError(`boom ${SECRET}`)
    return { token: SECRET, expiresOnTimestamp: Date.now() + 3_600_000 }
  })
  const source = createTokenSource({ credential: cred, kind: 'managed identity', log })
  await t.rejects(source.getToken(VAULT))
  t.equal(await source.getToken(VAULT), SECRET)
  const text = lines.join('')
  t.match(text, /access token acquired/)
  t.match(text, /vault\.azure\.net\/\.default/)
  t.notMatch(text, /eyJ/)
})

t.test('argument checks', async (t) => {
  const source = createTokenSource({ credential: fakeCredential(async () => null), kind: 'managed identity' })
  await t.rejects(source.getToken('vault.azure.net'), TypeError)
})

t.test('createCredential: which identity, and configuration errors', async (t) => {
  const mi = await createCredential({ managedIdentityClientId: 'cid-1', workload: null, authorityHost: null })
  t.equal(mi.kind, 'managed identity')
  t.match(mi.hint, /client_id cid-1/)
  t.match((await createCredential({ managedIdentityClientId: null, workload: null, authorityHost: null })).hint, /system-assigned/)
  const wi = await createCredential({
    managedIdentityClientId: 'ignored',
    workload: { clientId: 'cid-2', tenantId: '00000000-0000-0000-0000-000000000001', tokenFile: '/var/run/secrets/token' },
    authorityHost: 'https://login.microsoftonline.us/',
    extraCa: ['-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n']
  })
  t.equal(wi.kind, 'workload identity')
  t.match(wi.hint, /AZURE_CLIENT_ID cid-2, AZURE_TENANT_ID 00000000-0000-0000-0000-000000000001/)
  t.throws(() => credentialPlan({ managedIdentityClientId: null, workload: null, authorityHost: 'http://login.example' }),
    { code: 'ERR_CONFIG_INVALID', message: 'AZURE_AUTHORITY_HOST must be an https:// URL' }, 'checked without loading the SDK')
  await t.rejects(createCredential({ managedIdentityClientId: null, workload: null, authorityHost: 'not a url' }), { code: 'ERR_CONFIG_INVALID' })
  await t.rejects(createCredential({ managedIdentityClientId: null, workload: { clientId: 'c', tenantId: 'bad tenant!', tokenFile: '/f' }, authorityHost: null }),
    { code: 'ERR_CONFIG_INVALID', message: /^identity configuration invalid/ })
})

t.test('createIdentityTokenSource loads the SDK on first use; a bad configuration fails the request, not the process', async (t) => {
  const source = createIdentityTokenSource({ managedIdentityClientId: null, workload: { clientId: 'c', tenantId: 'bad tenant!', tokenFile: '/f' }, authorityHost: null })
  t.equal(source.kind, 'workload identity')
  await t.rejects(source.getToken('https://vault.azure.net'), { code: 'ERR_IDENTITY_UNAVAILABLE' })
  t.throws(() => createIdentityTokenSource({ managedIdentityClientId: null, workload: null, authorityHost: 'ftp://x' }), { code: 'ERR_CONFIG_INVALID' }, 'the authority host is still checked at start-up')
})

t.test('createIdentityTokenSource hands its metrics to the cache', async (t) => {
  const { seen, metrics } = cacheRecorder()
  const source = createIdentityTokenSource({ managedIdentityClientId: null, workload: { clientId: 'c', tenantId: 'bad tenant!', tokenFile: '/f' }, authorityHost: null }, { metrics })
  await t.rejects(source.getToken(VAULT), { code: 'ERR_IDENTITY_UNAVAILABLE' })
  await t.rejects(source.getToken(VAULT), { code: 'ERR_IDENTITY_UNAVAILABLE' })
  t.same(seen, ['aad_token:miss', 'aad_token:miss'], 'failures are never cached, so never hits')
})
