// The stack floor: the least a release sidecar can be on skr's stack (the same Node, fastify with
// its pino logger and a body schema, undici with a TLS context holding the system roots plus the
// environment's CA), answering POST /key/release with one HTTPS call upstream and nothing else (no
// attestation, JWS, unwrap, metrics). The benchmark runs it like skr (bench/skr-process.ts: same
// Node options, MALLOC_ARENA_MAX, `Port`, SKR_EXTRA_CA_CERTS; the trailing `serve` is ignored) and
// measures its RSS the same way, so skr's memory can be read as "stack floor + skr's own".
// Plain JavaScript on purpose: a .ts entry would load Node's type stripper, which skr's compiled
// image does not.
import { readFileSync } from 'node:fs'
import module from 'node:module'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createSecureContext, rootCertificates } from 'node:tls'

// With a compile cache under the home directory, as bin/skr.js runs skr (so the imports below
// come after it).
module.enableCompileCache?.(join(homedir(), '.cache', 'skr', 'floor-compile-cache'))
const { default: Fastify } = await import('fastify')
// undici's dispatchers from its lib/ files with its request API, as skr takes them
// (src/http/undici-parts.ts says why not its index). CommonJS: module.exports is each default.
const { default: Dispatcher } = await import('undici/lib/dispatcher/dispatcher.js')
const { default: api } = await import('undici/lib/api/index.js')
Object.assign(Dispatcher.prototype, api)
const { default: Agent } = await import('undici/lib/dispatcher/agent.js')

const port = Number(process.env.Port)
const extraCa = readFileSync(process.env.SKR_EXTRA_CA_CERTS ?? '', 'utf8')
const agent = new Agent({ connect: { secureContext: createSecureContext({ ca: [...rootCertificates, extraCa] }) } })
const app = Fastify({ logger: { level: 'warn' } })

app.get('/status', async () => ({ message: 'STATUS OK' }))
app.post('/key/release', {
  schema: {
    body: {
      type: 'object',
      required: ['akv_endpoint', 'kid'],
      properties: { maa_endpoint: { type: 'string' }, akv_endpoint: { type: 'string' }, kid: { type: 'string' } }
    }
  }
}, async (req) => {
  // A key read without a bearer token: the vault double answers 401 with its challenge, which is
  // one TLS request and response of about a release's size class, and no crypto on either side.
  const { akv_endpoint: vault, kid } = req.body
  const res = await agent.request({ origin: `https://${vault}`, path: `/keys/${encodeURIComponent(kid)}?api-version=7.4`, method: 'GET' })
  const body = await res.body.text()
  return { key: JSON.stringify({ status: res.statusCode, bytes: body.length }) }
})

await app.listen({ port, host: '127.0.0.1' })
// skr fetches its VCEK chain from THIM (plain HTTP at IMDS) once it serves; the floor makes the
// same kind of call, so both have their HTTP client loaded and used when idle RSS is read.
const imds = process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
if (imds !== undefined) {
  const res = await agent.request({ origin: new URL(imds).origin, path: '/metadata/THIM/amd/certification', method: 'GET', headers: { Metadata: 'true' } })
  await res.body.dump()
}
process.once('SIGTERM', () => { void app.close().then(() => agent.close()) })
