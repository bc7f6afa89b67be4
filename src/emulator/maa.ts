// An emulator of Microsoft Azure Attestation's SevSnpVm endpoint: a real HTTPS service for tests,
// the demo and users without MAA. It appraises evidence like MAA (maa-claims.ts), signs RS256
// tokens with a key generated at start whose self-signed certificate (CN = issuer) it serves at
// /certs in MAA's shape (kid, kty, x5c; no n/e), and answers MAA-shaped errors. It never crashes on
// input: every failure becomes a JSON 4xx/5xx. Nothing about it is trustworthy outside a test: the
// token's authority is only as good as whoever trusts this issuer.
import 'reflect-metadata' // @peculiar/x509 needs the Reflect polyfill first
import { createHash, randomBytes } from 'node:crypto'
import type { webcrypto } from 'node:crypto'
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import * as x509 from '@peculiar/x509'
import { SignJWT } from 'jose'
import { SidecarError } from '../errors.ts'
import { authority, azureError, closeServer, listen, readBody, sendJson } from './http-util.ts'
import { appraiseEvidence, parseAttestRequest, sevSnpClaims } from './maa-claims.ts'
import type { TransparencyKey } from '../uvm/transparency-receipt.ts'

/** How to run the emulator; `faults` is read on every request, so tests may change it live. */
export interface MaaEmulatorOptions {
  host?: string
  port?: number
  tls: { certPem: string, keyPem: string }
  /** ARK fingerprints (X509Certificate.fingerprint256) whose chains are accepted. */
  trustedArkFingerprints: readonly string[]
  /** Roots accepted for UVM endorsements; default Microsoft's supply-chain root. */
  trustedUvmRootFingerprints?: readonly string[]
  /** Transparency-service keys whose receipts on UVM endorsements are checked; default Microsoft's pinned keys. */
  trustedTransparencyKeys?: readonly TransparencyKey[]
  now?: () => Date
  /** Token lifetime in seconds (MAA: 28800). */
  tokenLifetimeSeconds?: number
  /** Reject requests without Endorsements.Uvm (default false: they get no compliance status). */
  requireUvmEndorsement?: boolean
  faults?: { status?: number, delayMs?: number }
}

/** A running emulator. */
export interface MaaEmulator {
  /** https://host:port */
  url: string
  /** host:port, what skr takes as maa_endpoint. */
  endpoint: string
  /** The `iss` of its tokens (= url). */
  issuer: string
  /** The token signing certificate (self-signed). */
  signingCertPem: string
  /** Requests received so far (all paths). */
  readonly requests: number
  /** The live fault knobs (options.faults, created empty when absent): mutate them between requests. */
  readonly faults: NonNullable<MaaEmulatorOptions['faults']>
  close: () => Promise<void>
}

/** The api-versions the emulator accepts for /attest/SevSnpVm. */
export const MAA_API_VERSIONS: readonly string[] = Object.freeze(['2020-10-01', '2022-08-01', '2022-09-01-preview', '2025-06-01'])

const MAX_BODY = 1024 * 1024
const DEFAULT_LIFETIME = 28_800
const DAY_MS = 86_400_000
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const FAULT_CODES: Readonly<Record<number, string>> = {
  400: 'InvalidParameter', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 408: 'RequestTimeout',
  429: 'TooManyRequests', 500: 'InternalServerError', 502: 'BadGateway', 503: 'ServiceUnavailable', 504: 'GatewayTimeout'
}

interface Signer { key: webcrypto.CryptoKey, kid: string, certDer: Buffer, certPem: string }

async function createSigner (issuer: string, now: Date): Promise<Signer> {
  const crypto = globalThis.crypto
  const keys = await crypto.subtle.generateKey(RSA, false, ['sign', 'verify'])
  const serial = Buffer.from(crypto.getRandomValues(new Uint8Array(16)))
  serial[0] = (serial[0] ?? 0) & 0x7f
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: [{ CN: [issuer] }],
    keys,
    signingAlgorithm: RSA,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + 365 * DAY_MS)
  }, crypto)
  const certDer = Buffer.from(cert.rawData)
  // MAA's kids look like padded base64 of 32 bytes; clients must treat them as opaque.
  const kid = createHash('sha256').update(certDer).digest('base64')
  return { key: keys.privateKey, kid, certDer, certPem: cert.toString('pem') + '\n' }
}

function checkOptions (options: MaaEmulatorOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  if (typeof options.tls?.certPem !== 'string' || typeof options.tls?.keyPem !== 'string') throw new TypeError('options.tls needs certPem and keyPem')
  if (!Array.isArray(options.trustedArkFingerprints)) throw new TypeError('options.trustedArkFingerprints must be an array')
  const lifetime = options.tokenLifetimeSeconds
  if (lifetime !== undefined && (!Number.isInteger(lifetime) || lifetime <= 0)) throw new TypeError('options.tokenLifetimeSeconds must be a positive integer')
}

/** Starts the emulator on host:port (default 127.0.0.1:0) and resolves once it can issue tokens. */
export async function startMaaEmulator (options: MaaEmulatorOptions): Promise<MaaEmulator> {
  checkOptions(options)
  const now = options.now ?? (() => new Date())
  const lifetimeSeconds = options.tokenLifetimeSeconds ?? DEFAULT_LIFETIME
  const stop = new AbortController()
  let requests = 0
  let signer: Signer | null = null
  let issuer = ''

  const attest = async (req: IncomingMessage, url: URL, res: ServerResponse, ready: Signer): Promise<void> => {
    const apiVersion = url.searchParams.get('api-version')
    if (apiVersion === null || !MAA_API_VERSIONS.includes(apiVersion)) {
      sendJson(res, 400, azureError('InvalidParameter', `api-version must be one of ${MAA_API_VERSIONS.join(', ')}`))
      return
    }
    const body = await readBody(req, MAX_BODY)
    if (body === null) return sendJson(res, 413, azureError('RequestEntityTooLarge', `request body is larger than ${MAX_BODY} bytes`))
    let claims: Record<string, unknown>
    try {
      const at = now()
      const appraisal = appraiseEvidence(parseAttestRequest(body.toString('utf8')), {
        trustedArkFingerprints: options.trustedArkFingerprints,
        ...(options.trustedUvmRootFingerprints === undefined ? {} : { trustedUvmRootFingerprints: options.trustedUvmRootFingerprints }),
        ...(options.trustedTransparencyKeys === undefined ? {} : { trustedTransparencyKeys: options.trustedTransparencyKeys }),
        now: at,
        requireUvmEndorsement: options.requireUvmEndorsement ?? false
      })
      claims = sevSnpClaims(appraisal, { issuer, now: at, lifetimeSeconds, jti: randomBytes(32).toString('hex') })
    } catch (err) {
      // Every evidence problem is MAA's 400 InvalidParameter; our errors' messages carry no secrets.
      if (err instanceof SidecarError) return sendJson(res, 400, azureError('InvalidParameter', err.message))
      throw err
    }
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', jku: `${issuer}/certs`, kid: ready.kid, typ: 'JWT' })
      .sign(ready.key)
    sendJson(res, 200, { token })
  }

  const route = async (req: IncomingMessage, res: ServerResponse, ready: Signer): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://emulator.invalid')
    const path = url.pathname.toLowerCase()
    if (req.method === 'POST' && path === '/attest/sevsnpvm') return await attest(req, url, res, ready)
    if (req.method === 'GET' && path === '/certs') {
      return sendJson(res, 200, { keys: [{ kid: ready.kid, kty: 'RSA', x5c: [ready.certDer.toString('base64')] }] })
    }
    if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
      return sendJson(res, 200, { issuer, jwks_uri: `${issuer}/certs` })
    }
    sendJson(res, 404, azureError('NotFound', 'no such route'))
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    requests++
    const run = async (): Promise<void> => {
      const faults = options.faults
      if (faults?.delayMs !== undefined && faults.delayMs > 0) await delay(faults.delayMs, undefined, { signal: stop.signal })
      if (faults?.status !== undefined) {
        req.resume()
        return sendJson(res, faults.status, azureError(FAULT_CODES[faults.status] ?? 'Error', 'injected fault'))
      }
      if (signer === null) return sendJson(res, 503, azureError('ServiceUnavailable', 'starting'))
      await route(req, res, signer)
    }
    run().catch(() => {
      if (stop.signal.aborted) return
      sendJson(res, 500, azureError('InternalServerError', 'the emulator failed to process the request'))
    })
  }

  const server = https.createServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handler)
  const address = await listen(server, options)
  const close = async (): Promise<void> => {
    stop.abort()
    await closeServer(server)
  }
  const endpoint = authority(address.address, address.port)
  issuer = `https://${endpoint}`
  try {
    signer = await createSigner(issuer, now())
  } catch (err) {
    await close()
    throw err
  }
  const { certPem } = signer
  return {
    url: issuer,
    endpoint,
    issuer,
    signingCertPem: certPem,
    get requests () { return requests },
    get faults () { return (options.faults ??= {}) },
    close
  }
}
