// `skr token` end to end: bin/skr.js against the IMDS double, in child processes. @azure/identity
// reads AZURE_POD_IDENTITY_AUTHORITY_HOST from the process environment and caches the managed
// identity source process-wide, so these cases run in a child process each (the flags, outputs and
// errors in-process: test/unit/cli/token.test.ts).
import t from 'tap'
import { join } from 'node:path'
import { createBearerIssuer, DEFAULT_CLIENT_ID, type BearerIssuer } from '../../../src/emulator/bearer.ts'
import { startImdsEmulator } from '../../../src/emulator/imds.ts'
import { runChild, type Owner } from '../../helpers/child-process.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const bearer = await createBearerIssuer()
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}/

interface ChildRun { code: number | null, stdout: string, stderr: string }

async function skr (owner: Owner, args: string[], imdsUrl: string, extraEnv: Record<string, string> = {}): Promise<ChildRun> {
  // Only what the child needs: no AZURE_*, SKR_* or UVM_* of this process may leak in.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', AZURE_POD_IDENTITY_AUTHORITY_HOST: imdsUrl, ...extraEnv }
  const r = await runChild(owner, process.execPath, [join(repoRoot, 'bin/skr.js'), 'token', ...args], { env })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The shared issuer, recording every token the IMDS double hands out. */
function recording (issuer: BearerIssuer, minted: string[]): BearerIssuer {
  return { ...issuer, mint: async (claims) => { const jwt = await issuer.mint(claims); minted.push(jwt); return jwt } }
}

t.test('end to end against the IMDS double', async t => {
  const minted: string[] = []
  const other = '11111111-2222-3333-4444-555555555555'
  const imds = await startImdsEmulator({ tokenIssuer: recording(bearer, minted), clientIds: [DEFAULT_CLIENT_ID, other] })
  t.teardown(imds.close)

  t.test('--resource: the token on stdout, for that audience', async t => {
    const r = await skr(t, ['--resource', 'https://vault.azure.net'], imds.url)
    t.equal(r.code, 0, r.stderr)
    t.equal(r.stderr, '', 'stdout is a pipe: no warning')
    const jwt = r.stdout.trim()
    t.equal(r.stdout, `${jwt}\n`)
    t.ok(minted.includes(jwt), 'the token IMDS issued')
    t.match(await bearer.verify(jwt), { aud: 'https://vault.azure.net', appid: DEFAULT_CLIENT_ID })
  })

  t.test('--vault x.managedhsm.azure.net --json: the mHSM audience, the identity kind and the expiry', async t => {
    const r = await skr(t, ['--vault', 'x.managedhsm.azure.net', '--json'], imds.url)
    t.equal(r.code, 0, r.stderr)
    const doc = JSON.parse(r.stdout) as { kind: string, resource: string, expiresOn: string, token: string }
    t.equal(doc.kind, 'managed identity')
    t.equal(doc.resource, 'https://managedhsm.azure.net')
    t.match(await bearer.verify(doc.token), { aud: 'https://managedhsm.azure.net' })
    t.ok(Date.parse(doc.expiresOn) > Date.now(), 'expires in the future')
  })

  t.test('SkrSideCarArgs identity.client_id selects the user-assigned identity', async t => {
    const args = Buffer.from(JSON.stringify({ identity: { client_id: other } })).toString('base64')
    const r = await skr(t, ['--decode', '--json'], imds.url, { SkrSideCarArgs: args })
    t.equal(r.code, 0, r.stderr)
    t.match(JSON.parse(r.stdout), { kind: 'managed identity', resource: 'https://vault.azure.net', claims: { aud: 'https://vault.azure.net', appid: other } })
  })

  t.test('--decode never prints the token', async t => {
    for (const args of [['--decode'], ['--decode', '--json'], ['--decode', '--vault', 'x.managedhsm.azure.net']]) {
      const before = minted.length
      const r = await skr(t, args, imds.url)
      t.equal(r.code, 0, r.stderr)
      t.equal(minted.length, before + 1, 'a token was fetched')
      const jwt = minted[minted.length - 1] as string
      const [, payload, signature] = jwt.split('.') as [string, string, string]
      for (const stream of [r.stdout, r.stderr]) {
        t.notOk(stream.includes(jwt) || stream.includes(payload) || stream.includes(signature), `${args.join(' ')}: no part of the token`)
        t.notMatch(stream, JWT_SHAPED)
      }
      t.match(r.stdout, /managed identity/)
      t.match(r.stdout, /appid/)
    }
  })

  t.test('an identity IMDS does not know: exit 1 naming it', async t => {
    const r = await skr(t, [], imds.url, { AZURE_CLIENT_ID: '99999999-2222-3333-4444-555555555555' })
    t.equal(r.code, 1)
    t.equal(r.stdout, '')
    t.match(r.stderr, /^skr token: ERR_IDENTITY_UNAVAILABLE: managed identity token request failed: IMDS answered 400 invalid_request: Identity not found \(is the identity assigned to the container group\? client_id 99999999-/)
  })

  t.test('bad flags through the binary: exit 2', async t => {
    const r = await skr(t, ['--resource', 'http://vault.azure.net'], imds.url)
    t.equal(r.code, 2)
    t.match(r.stderr, /^skr token: ERR_CONFIG_INVALID: --resource must be an https URL/)
    t.equal(r.stdout, '')
  })
})

t.test('end to end with IMDS down: exit 1, ERR_IDENTITY_UNAVAILABLE', async t => {
  const imds = await startImdsEmulator({ tokenIssuer: bearer })
  const url = imds.url
  await imds.close()
  const r = await skr(t, ['--decode'], url)
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, /^skr token: ERR_IDENTITY_UNAVAILABLE: managed identity token request failed: IMDS unreachable/)
  t.equal(r.stderr.split('\n').length, 2, 'one line')
})
