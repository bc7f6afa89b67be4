// A double of Microsoft Entra ID for workload identity (AKS): enough of the wire for MSAL-node's
// confidential client with `disableInstanceDiscovery` (docs/protocols.md#workload-identity, docs/protocols.md#identity-sdk):
//   GET  /{tenant}/v2.0/.well-known/openid-configuration
//   GET  /{tenant}/discovery/v2.0/keys
//   POST /{tenant}/oauth2/v2.0/token   client_credentials with a federated client_assertion
// Errors are AADSTS-shaped ({error, error_description, error_codes, ...}). MSAL's telemetry fields
// and query parameters are accepted and ignored. Never records assertions or tokens.
import https from 'node:https'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { BearerIssuer } from './bearer.ts'
import { authority, closeServer, listen, readBody, sendJson } from './http-util.ts'

/** How to start the Entra double. */
export interface EntraEmulatorOptions {
  host?: string
  port?: number
  tls: { certPem: string, keyPem: string }
  tokenIssuer: BearerIssuer
  tenantId: string
  clientId: string
  /** The contents of the federated token file the client must present as its assertion. */
  federatedToken: string
}

/** A running Entra double; `url` is the authority host (https://127.0.0.1:port). */
export interface EntraEmulator {
  url: string
  readonly tokenRequests: number
  close: () => Promise<void>
}

interface Answer { status: number, body: unknown }

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access'])
const MAX_BODY = 64 * 1024

function aadError (status: number, error: string, code: number, description: string): Answer {
  return {
    status,
    body: {
      error,
      error_description: `AADSTS${code}: ${description}`,
      error_codes: [code],
      timestamp: new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      trace_id: randomUUID(),
      correlation_id: randomUUID(),
      error_uri: `https://login.microsoftonline.com/error?code=${code}`
    }
  }
}

async function readForm (req: IncomingMessage): Promise<URLSearchParams | null> {
  const body = await readBody(req, MAX_BODY)
  return body === null ? null : new URLSearchParams(body.toString('utf8'))
}
/** Starts the double on https://{host}:{port} (default 127.0.0.1, an ephemeral port). */
export async function startEntraEmulator (options: EntraEmulatorOptions): Promise<EntraEmulator> {
  if (typeof options?.tokenIssuer?.mint !== 'function') throw new TypeError('startEntraEmulator: tokenIssuer is required')
  for (const name of ['tenantId', 'clientId', 'federatedToken'] as const) {
    if (typeof options[name] !== 'string' || options[name] === '') throw new TypeError(`startEntraEmulator: ${name} is required`)
  }
  let tokenRequests = 0
  let base = ''

  const metadata = (tenant: string): Answer => ({
    status: 200,
    body: {
      token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${base}/${tenant}/v2.0`,
      authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
      tenant_region_scope: 'WW',
      cloud_instance_name: 'microsoftonline.com'
    }
  })

  const token = async (req: IncomingMessage): Promise<Answer> => {
    tokenRequests++
    const form = await readForm(req)
    if (form === null) return aadError(400, 'invalid_request', 900144, 'The request body is too large.')
    if (form.get('grant_type') !== 'client_credentials') return aadError(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.')
    const clientId = form.get('client_id')
    if (clientId === null || clientId === '') return aadError(400, 'invalid_request', 900144, 'The request body must contain the following parameter: \'client_id\'.')
    if (clientId.toLowerCase() !== options.clientId.toLowerCase()) {
      return aadError(400, 'unauthorized_client', 700016, 'Application was not found in the directory.')
    }
    if (form.get('client_assertion_type') !== ASSERTION_TYPE) return aadError(400, 'invalid_request', 90014, 'The required field \'client_assertion_type\' is missing or not supported.')
    const assertion = form.get('client_assertion')
    if (assertion === null || assertion === '') return aadError(400, 'invalid_request', 90014, 'The required field \'client_assertion\' is missing.')
    // Compared as the file's contents; trailing newlines from the projected file are not part of it.
    if (assertion.trim() !== options.federatedToken.trim()) {
      return aadError(401, 'invalid_client', 700211, 'No matching federated identity record found for presented assertion.')
    }
    const scopes = (form.get('scope') ?? '').split(' ').filter((s) => s !== '' && !OIDC_SCOPES.has(s))
    const scope = scopes[0]
    if (scopes.length !== 1 || scope === undefined || !scope.endsWith('/.default')) {
      return aadError(400, 'invalid_scope', 1002012, 'The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.')
    }
    const resource = scope.slice(0, -'/.default'.length)
    if (resource === '') return aadError(400, 'invalid_scope', 1002012, 'The provided value for scope is not valid.')
    const accessToken = await options.tokenIssuer.mint({ aud: resource, appid: options.clientId, lifetimeSeconds: 3600 })
    return { status: 200, body: { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: accessToken } }
  }

  const route = async (req: IncomingMessage, url: URL): Promise<Answer> => {
    const parts = url.pathname.split('/').slice(1)
    const tenant = parts[0] ?? ''
    const rest = parts.slice(1).join('/')
    const known = rest === 'v2.0/.well-known/openid-configuration' || rest === 'discovery/v2.0/keys' || rest === 'oauth2/v2.0/token'
    if (!known) return aadError(404, 'not_found', 90002, 'The requested path is not served by this emulator.')
    if (tenant.toLowerCase() !== options.tenantId.toLowerCase()) return aadError(400, 'invalid_tenant', 90002, 'Tenant not found.')
    if (rest === 'oauth2/v2.0/token') return req.method === 'POST' ? await token(req) : aadError(405, 'invalid_request', 900561, 'The endpoint only accepts POST requests.')
    if (req.method !== 'GET') return aadError(405, 'invalid_request', 900561, 'The endpoint only accepts GET requests.')
    return rest === 'discovery/v2.0/keys' ? { status: 200, body: options.tokenIssuer.jwks() } : metadata(tenant)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.on('error', () => {})
    let answer: Answer
    try {
      answer = await route(req, new URL(req.url ?? '/', 'https://entra.invalid'))
    } catch {
      answer = aadError(500, 'server_error', 90033, 'The emulator failed to process the request.')
    }
    sendJson(res, answer.status, answer.body, { 'Cache-Control': 'no-store' })
  }

  const server = https.createServer({ cert: options.tls.certPem, key: options.tls.keyPem }, (req, res) => { void handle(req, res) })
  const { port } = await listen(server, options)
  base = `https://${authority(options.host ?? '127.0.0.1', port)}`
  let closing: Promise<void> | null = null
  return {
    url: base,
    get tokenRequests () { return tokenRequests },
    close: async () => {
      closing ??= closeServer(server)
      return await closing
    }
  }
}
