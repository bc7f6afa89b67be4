// A double of the Azure Instance Metadata Service endpoints skr uses, over plain HTTP like the real
// one at 169.254.169.254 (docs/protocols.md#test-doubles and the IMDS, THIM and SDK sections it links):
//   GET /metadata/identity/oauth2/token[/]   managed identity tokens (the trailing slash is what
//                                            @azure/identity sends)
//   GET /metadata/THIM/amd/certification     the host's AMD certificates
// Both need `Metadata: true`. Token answers carry every value as a string, including `expires_on`
// (MSAL computes the lifetime from it). Never records tokens.
import http from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { decodeJwt } from 'jose'
import type { BearerIssuer } from './bearer.ts'
import { DEFAULT_CLIENT_ID } from './bearer.ts'
import { authority, closeServer, listen, sendJson } from './http-util.ts'

/** Fault knobs, read on every request (mutate them between requests). */
export interface ImdsFaults { tokenStatus?: number, thimStatus?: number, delayMs?: number }

/** How to start the IMDS double; only `tokenIssuer` is required. */
export interface ImdsEmulatorOptions {
  host?: string
  port?: number
  /** The THIM document to serve; without it the THIM route answers 404. */
  thim?: () => unknown
  tokenIssuer: BearerIssuer
  /** Client ids of the identities "assigned" to this VM; when absent any client_id is accepted. */
  clientIds?: string[]
  faults?: ImdsFaults
}

/** A running IMDS double; the counters are live. */
export interface ImdsEmulator {
  url: string
  /** host:port, for settings that take an address rather than a URL. */
  host: string
  readonly tokenRequests: number
  readonly thimRequests: number
  faults: ImdsFaults
  close: () => Promise<void>
}

interface Answer { status: number, body: unknown }

const TOKEN_PATHS = new Set(['/metadata/identity/oauth2/token', '/metadata/identity/oauth2/token/'])
const THIM_PATH = '/metadata/thim/amd/certification'
const API_VERSION = /^\d{4}-\d{2}-\d{2}$/
// What IMDS says for each transient status (ENTRADOC "Error handling").
const FAULTS: Readonly<Record<number, { error: string, error_description: string }>> = Object.freeze({
  404: { error: 'not_found', error_description: 'IMDS endpoint is updating' },
  410: { error: 'gone', error_description: 'IMDS is updating' },
  429: { error: 'too_many_requests', error_description: 'IMDS Throttle limit reached' },
  500: { error: 'unknown_error', error_description: 'Transient error, please retry' },
  503: { error: 'service_unavailable', error_description: 'IMDS is temporarily unavailable' }
})

function invalid (description: string): Answer {
  return { status: 400, body: { error: 'invalid_request', error_description: description } }
}

function fault (status: number | undefined): Answer | null {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) return null
  return { status, body: FAULTS[status] ?? { error: 'unknown_error', error_description: `Emulated fault ${status}` } }
}

function hasMetadataHeader (req: IncomingMessage): boolean {
  return typeof req.headers.metadata === 'string' && req.headers.metadata.toLowerCase() === 'true'
}

/** A resource as given, or once more decoded when the caller percent-encoded it twice. */
function resourceOf (raw: string): string | null {
  let value = raw
  if (!value.includes('://') && value.includes('%')) {
    try {
      value = decodeURIComponent(value)
    } catch {
      return null
    }
  }
  try {
    const url = new URL(value)
    return url.protocol === 'https:' || url.protocol === 'http:' || url.protocol === 'api:' ? value : null
  } catch {
    return null
  }
}

/** Starts the double on http://{host}:{port} (default 127.0.0.1, an ephemeral port). */
export async function startImdsEmulator (options: ImdsEmulatorOptions): Promise<ImdsEmulator> {
  if (typeof options?.tokenIssuer?.mint !== 'function') throw new TypeError('startImdsEmulator: tokenIssuer is required')
  const faults: ImdsFaults = options.faults ?? {}
  let tokenRequests = 0
  let thimRequests = 0

  const token = async (url: URL): Promise<Answer> => {
    const failed = fault(faults.tokenStatus)
    if (failed !== null) return failed
    const q = url.searchParams
    const apiVersion = q.get('api-version')
    if (apiVersion === null || apiVersion === '') return invalid('Required query variable \'api-version\' is missing')
    if (!API_VERSION.test(apiVersion)) return invalid('Invalid api-version')
    const rawResource = q.get('resource')
    if (rawResource === null || rawResource === '') return invalid('Required query variable \'resource\' is missing')
    const resource = resourceOf(rawResource)
    if (resource === null) return { status: 400, body: { error: 'invalid_resource', error_description: 'The resource is not a valid URI' } }
    const selectors = ['client_id', 'object_id', 'msi_res_id'].filter((name) => q.has(name))
    if (selectors.length > 1) return invalid('Only one of client_id, object_id and msi_res_id may be given')
    const clientId = q.get('client_id')
    if (clientId !== null && options.clientIds !== undefined && !options.clientIds.some((id) => id.toLowerCase() === clientId.toLowerCase())) {
      return invalid('Identity not found')
    }
    const appid = clientId ?? options.clientIds?.[0] ?? DEFAULT_CLIENT_ID
    const accessToken = await options.tokenIssuer.mint({ aud: resource, appid, lifetimeSeconds: 3600 })
    // The token's own clock (the issuer's `now`), so a pinned test clock stays consistent.
    const { exp, nbf, iat } = decodeJwt(accessToken)
    const nowSeconds = iat ?? Math.floor(Date.now() / 1000)
    const expiresOn = exp ?? nowSeconds + 3600
    return {
      status: 200,
      body: {
        access_token: accessToken,
        client_id: appid,
        refresh_token: '',
        expires_in: String(Math.max(0, expiresOn - nowSeconds - 1)),
        expires_on: String(expiresOn),
        ext_expires_in: String(Math.max(0, expiresOn - nowSeconds - 1)),
        not_before: String(nbf ?? nowSeconds),
        resource,
        token_type: 'Bearer'
      }
    }
  }

  const thim = (): Answer => {
    const failed = fault(faults.thimStatus)
    if (failed !== null) return failed
    if (options.thim === undefined) return { status: 404, body: { error: 'not_found', error_description: 'No THIM certification data on this host' } }
    return { status: 200, body: options.thim() }
  }

  const route = async (req: IncomingMessage, url: URL): Promise<Answer> => {
    const isToken = TOKEN_PATHS.has(url.pathname)
    const isThim = url.pathname.toLowerCase() === THIM_PATH
    if (!isToken && !isThim) return { status: 404, body: { error: 'not_found', error_description: 'The requested path is not served' } }
    if (isToken) tokenRequests++
    else thimRequests++
    if (req.method !== 'GET') return { status: 405, body: { error: 'method_not_allowed', error_description: 'Only GET is allowed' } }
    // Real IMDS refuses proxied calls: a request carrying X-Forwarded-For did not come from the VM.
    if (req.headers['x-forwarded-for'] !== undefined) return invalid('Request contains X-Forwarded-For header')
    if (!hasMetadataHeader(req)) return invalid('Required metadata header not specified')
    const delayMs = faults.delayMs
    if (typeof delayMs === 'number' && delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
    return isToken ? await token(url) : thim()
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.on('error', () => {})
    let answer: Answer
    try {
      answer = await route(req, new URL(req.url ?? '/', 'http://imds.invalid'))
    } catch {
      answer = { status: 500, body: { error: 'unknown_error', error_description: 'The emulator failed to process the request' } }
    }
    // A THIM callback returning nothing still answers JSON: null.
    sendJson(res, answer.status, answer.body ?? null)
  }

  const server = http.createServer((req, res) => { void handle(req, res) })
  const { port } = await listen(server, options)
  const host = authority(options.host ?? '127.0.0.1', port)
  let closing: Promise<void> | null = null
  return {
    url: `http://${host}`,
    host,
    get tokenRequests () { return tokenRequests },
    get thimRequests () { return thimRequests },
    faults,
    close: async () => {
      closing ??= closeServer(server)
      return await closing
    }
  }
}
