// `skr token`: flags and their errors, the identity it builds from the environment, the outputs
// (the token, --json, --decode that never shows the token) and the TTY warning, in-process with a
// fake token source. End to end through bin/skr.js: test/process/cli/token.test.ts.
import t from 'tap'
import { run, decodeClaims, shownClaims, summary, type TokenIo } from '../../../src/cli/token.ts'
import type { IdentityConfig, TokenSource } from '../../../src/identity/token-source.ts'
import { IdentityUnavailable } from '../../../src/errors.ts'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'

const bearer = await createBearerIssuer()
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}/

interface Captured { code: number, out: string, err: string, asked: string[], identity: IdentityConfig | null }

/** Runs `skr token` in-process; the token source answers `token` (or throws `fail`). */
async function token (argv: string[], options: { env?: Record<string, string>, token?: string, fail?: unknown, tty?: boolean } = {}): Promise<Captured> {
  const out: string[] = []
  const err: string[] = []
  const asked: string[] = []
  let identity: IdentityConfig | null = null
  const io: TokenIo = { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) }, stdoutIsTty: options.tty ?? false }
  const source = (config: IdentityConfig): TokenSource => {
    identity = config
    return {
      kind: config.workload === null ? 'managed identity' : 'workload identity',
      getToken: async (resource) => {
        asked.push(resource)
        if (options.fail !== undefined) throw options.fail
        return options.token ?? await bearer.mint({ aud: resource })
      }
    }
  }
  const code = await run(argv, options.env ?? {}, io, { tokenSource: source })
  return { code, out: out.join(''), err: err.join(''), asked, identity }
}

t.test('--help says what it is for and that the output is a credential', async t => {
  t.ok(summary.length > 0)
  const r = await token(['--help'])
  t.equal(r.code, 0)
  t.match(r.out, /usage: skr token/)
  t.match(r.out, /--resource/)
  t.match(r.out, /--vault/)
  t.match(r.out, /--decode/)
  t.match(r.out, /CREDENTIAL/)
  t.match(r.out, /401/)
  t.same(r.asked, [], 'no token fetched')
})

t.test('bad flags: exit 2, one line, no token fetched', async t => {
  const cases: Array<[string[], RegExp]> = [
    [['--nope'], /unknown flag --nope/],
    [['--resource'], /needs a value/],
    [['--resource', 'http://vault.azure.net'], /--resource must be an https URL/],
    [['--resource', 'not a url'], /--resource must be an https URL/],
    [['--resource', 'https://vault.azure.net', '--vault', 'x.vault.azure.net'], /not both/],
    [['--vault', 'bad host!'], /--vault must be a host name/],
    [['--vault', ''], /--vault must be a host name/],
    [['extra'], /unexpected argument/],
    [['--decode=maybe'], /wants true or false/]
  ]
  for (const [argv, message] of cases) {
    const r = await token(argv)
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.err, /^skr token: ERR_CONFIG_INVALID: .+\n$/)
    t.match(r.err, message)
    t.equal(r.out, '')
    t.same(r.asked, [])
  }
  const config = await token([], { env: { SkrSideCarArgs: 'not base64 at all!' } })
  t.equal(config.code, 2, 'a configuration the sidecar would refuse is refused')
  t.match(config.err, /^skr token: ERR_CONFIG_INVALID: invalid configuration: SkrSideCarArgs/)
})

t.test('the resource: --resource as given, --vault through resourceFor, else the public vault', async t => {
  t.same((await token([])).asked, ['https://vault.azure.net'])
  t.same((await token(['--resource', 'https://storage.azure.com/'])).asked, ['https://storage.azure.com/'])
  t.same((await token(['--vault', 'x.managedhsm.azure.net'])).asked, ['https://managedhsm.azure.net'])
  t.same((await token(['-vault=x.vault.azure.cn'])).asked, ['https://vault.azure.cn'])
  t.same((await token(['--vault', 'https://x.managedhsm.usgovcloudapi.net/'])).asked, ['https://managedhsm.usgovcloudapi.net'])
  t.same((await token(['--akv-endpoint', 'x.vault.azure.net:443'])).asked, ['https://vault.azure.net'])
  t.same((await token(['--vault', 'my-managedhsm-double.local:8443'])).asked, ['https://managedhsm.azure.net'], 'the reference rule for unknown hosts')
})

t.test('the identity is the one the sidecar would build from the environment', async t => {
  const args = Buffer.from(JSON.stringify({ identity: { client_id: 'from-sidecar-args' } })).toString('base64')
  t.equal((await token([], { env: { SkrSideCarArgs: args, AZURE_CLIENT_ID: 'from-env' } })).identity?.managedIdentityClientId, 'from-sidecar-args')
  t.equal((await token([], { env: { AZURE_CLIENT_ID: 'from-env' } })).identity?.managedIdentityClientId, 'from-env')
  const system = await token([])
  t.equal(system.identity?.managedIdentityClientId, null)
  t.equal(system.identity?.workload, null)
  const wi = await token(['--json'], { env: { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't', AZURE_FEDERATED_TOKEN_FILE: '/f', AZURE_AUTHORITY_HOST: 'https://login.example' } })
  t.same(wi.identity?.workload, { clientId: 'c', tenantId: 't', tokenFile: '/f' })
  t.equal(wi.identity?.authorityHost, 'https://login.example')
  t.equal((JSON.parse(wi.out) as { kind: string }).kind, 'workload identity')
  const partial = await token([], { env: { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't' } })
  t.equal(partial.code, 0)
  t.match(partial.err, /warning: workload identity is only partly configured \(AZURE_FEDERATED_TOKEN_FILE missing\)/)
})

t.test('default output: the token alone on stdout; a warning on stderr only when stdout is a terminal', async t => {
  const piped = await token([], { token: 'opaque-token' })
  t.equal(piped.code, 0)
  t.equal(piped.out, 'opaque-token\n')
  t.equal(piped.err, '')
  const jwt = await bearer.mint({ aud: 'https://vault.azure.net' })
  const tty = await token([], { token: jwt, tty: true })
  t.equal(tty.out, `${jwt}\n`)
  t.match(tty.err, /^skr token: warning: this is a bearer credential for https:\/\/vault\.azure\.net \(valid until \d{4}-\d\d-\d\dT[\d:.]+Z\); do not paste it/)
  t.notMatch(tty.err, JWT_SHAPED, 'the warning carries no token')
  const ttyJson = await token(['--json'], { token: jwt, tty: true })
  t.match(ttyJson.err, /bearer credential/, '--json on a terminal is warned about too')
  t.equal((await token(['--decode'], { token: jwt, tty: true })).err, '', '--decode prints no credential, so no warning')
})

t.test('--json: kind, resource, expiresOn, token', async t => {
  const jwt = await bearer.mint({ aud: 'https://managedhsm.azure.net', lifetimeSeconds: 600 })
  const r = await token(['--json', '--vault', 'x.managedhsm.azure.net'], { token: jwt })
  t.equal(r.code, 0)
  const doc = JSON.parse(r.out) as Record<string, unknown>
  t.same(Object.keys(doc), ['kind', 'resource', 'expiresOn', 'token'])
  t.equal(doc.kind, 'managed identity')
  t.equal(doc.resource, 'https://managedhsm.azure.net')
  t.equal(doc.token, jwt)
  const exp = decodeClaims(jwt)?.exp as number
  t.equal(doc.expiresOn, new Date(exp * 1000).toISOString())
  t.equal((JSON.parse((await token(['--json'], { token: 'opaque' })).out) as { expiresOn: unknown }).expiresOn, null, 'not a JWT: no expiry known')
})

t.test('--decode shows the identity and the non-secret claims, never the token', async t => {
  const jwt = await bearer.mint({ aud: 'https://vault.azure.net', appid: 'app-1', oid: 'obj-1' })
  const [, payload, signature] = jwt.split('.') as [string, string, string]
  const text = await token(['--decode'], { token: jwt })
  t.equal(text.code, 0)
  t.equal(text.err, '')
  for (const part of [jwt, payload, signature]) {
    t.notOk(text.out.includes(part), 'no part of the token on stdout')
  }
  t.notMatch(text.out, JWT_SHAPED)
  t.match(text.out, /^identity: +managed identity\nresource: +https:\/\/vault\.azure\.net\naud: +https:\/\/vault\.azure\.net\niss: +https:\/\/sts\.windows\.net\//)
  t.match(text.out, /\nappid: +app-1\n/)
  t.match(text.out, /\noid: +obj-1\n/)
  t.match(text.out, /\ntid: +00000000-5e4b-4c4a-8000-0000000005cc\n/)
  t.match(text.out, /\nxms_az_rid: +\/subscriptions\//)
  t.match(text.out, /\nexp: +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n$/)
  t.notMatch(text.out, /jti|sub:|idtyp/, 'only the listed claims')

  const json = await token(['--decode', '--json'], { token: jwt })
  const doc = JSON.parse(json.out) as { kind: string, resource: string, expiresOn: string, claims: Record<string, string>, token?: string }
  t.same(Object.keys(doc), ['kind', 'resource', 'expiresOn', 'claims'], 'no token field')
  t.same(Object.keys(doc.claims), ['aud', 'iss', 'appid', 'oid', 'tid', 'xms_az_rid', 'iat', 'nbf', 'exp'])
  t.equal(doc.claims.exp, doc.expiresOn)
  t.notOk(json.out.includes(signature) || json.out.includes(payload))

  const wrongAud = await token(['--decode', '--resource', 'https://managedhsm.azure.net'], { token: jwt })
  t.match(wrongAud.err, /warning: the token's aud https:\/\/vault\.azure\.net is not the resource asked for \(https:\/\/managedhsm\.azure\.net\)/)
  const opaque = await token(['--decode'], { token: 'opaque-secret' })
  t.equal(opaque.code, 0)
  t.match(opaque.err, /not a JWT/)
  t.notOk(opaque.out.includes('opaque-secret') || opaque.err.includes('opaque-secret'))
})

t.test('claims helpers: non-JWTs, controls and odd times', async t => {
  t.equal(decodeClaims('a.b'), null)
  t.equal(decodeClaims('a..c'), null)
  t.equal(decodeClaims('a.!!!.c'), null)
  t.equal(decodeClaims(`a.${Buffer.from('[1]').toString('base64url')}.c`), null)
  const odd = `h.${Buffer.from(JSON.stringify({ aud: ['a', 'b'], appid: 'x\u001b[31my', exp: 'soon', iat: 0, sub: 's' })).toString('base64url')}.s`
  t.same(shownClaims(odd), { aud: '["a","b"]', appid: 'x [31my', iat: '1970-01-01T00:00:00.000Z', exp: 'soon' })
})

t.test('failures: exit 1 with ERR_IDENTITY_UNAVAILABLE, one line', async t => {
  const mapped = await token([], { fail: new IdentityUnavailable('managed identity token request failed: IMDS unreachable (network_error)') })
  t.equal(mapped.code, 1)
  t.equal(mapped.err, 'skr token: ERR_IDENTITY_UNAVAILABLE: managed identity token request failed: IMDS unreachable (network_error)\n')
  t.equal(mapped.out, '')
  const raw = await token(['--decode'], { fail: new Error('socket hang up') })
  t.equal(raw.code, 1)
  t.match(raw.err, /^skr token: ERR_IDENTITY_UNAVAILABLE: managed identity token request failed: socket hang up\n$/)
})
