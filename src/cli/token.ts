// `skr token`: an Entra ID access token from exactly the identity the sidecar would use (the
// configuration from the environment → identityConfigOf → createIdentityTokenSource: managed
// identity via IMDS with SkrSideCarArgs identity.client_id or AZURE_CLIENT_ID, or workload
// identity), for a resource or for the resource a vault host needs. What it is for: checking that
// the container's identity works and calling the vault by hand with it. `--decode` prints only the
// token's non-secret claims (who it was issued to, for what, until when), never the token itself,
// which is what an operator debugging a 401 from the vault needs.
import { resourceFor } from '../identity/resource.ts'
import type { IdentityConfig, IdentityKind, TokenSource } from '../identity/token-source.ts'
import { loadConfig } from '../config/config.ts'
import { readExtraCa } from '../app/trust.ts'
import { isSidecarError } from '../errors.ts'
import { isObject, oneLine } from '../text/untrusted.ts'
import type { FlagSpecs } from '../config/flags.ts'
import {
  helpText, parseCommandFlags, processIo, runOperatorCommand, toJson, usageError, wantsHelp,
  type CommandEnv, type CommandIo
} from './operator-kit.ts'

export const summary = 'get an Entra ID access token for a resource from the identity skr would use (or --decode its claims)'

/** The resource asked for when neither --resource nor --vault is given. */
export const DEFAULT_RESOURCE = 'https://vault.azure.net'

const FLAGS: FlagSpecs = {
  resource: { type: 'string', help: `the token audience, an https URL (default ${DEFAULT_RESOURCE})` },
  vault: { type: 'string', aliases: ['akv-endpoint', 'akv_endpoint'], help: 'a Key Vault or Managed HSM host (myvault.vault.azure.net): asks for the resource skr would use for it' },
  decode: { type: 'boolean', help: 'print the identity and the token\'s non-secret claims (aud, iss, appid, oid, tid, times) instead of the token' },
  json: { type: 'boolean', help: 'print {kind, resource, expiresOn, token} (with --decode: claims instead of token)' }
}

/** The claims --decode shows: none of them lets anyone use the token. */
export const SHOWN_CLAIMS: readonly string[] = ['aud', 'iss', 'appid', 'azp', 'oid', 'tid', 'xms_az_rid', 'iat', 'nbf', 'exp']
const TIME_CLAIMS = new Set(['iat', 'nbf', 'exp'])

/** Where `skr token` writes, and whether stdout is a terminal (a token there is worth a warning). */
export interface TokenIo extends CommandIo {
  stdoutIsTty?: boolean
}

/** Hooks for tests. */
export interface TokenHooks {
  /** Replaces createIdentityTokenSource. */
  tokenSource?: (identity: IdentityConfig) => TokenSource | Promise<TokenSource>
}

function printable (value: unknown): string {
  return oneLine(typeof value === 'string' ? value : JSON.stringify(value) ?? String(value))
}

/** The payload of a JWT, or null when `token` is not one (a token is never echoed, even in part). */
export function decodeClaims (token: string): Record<string, unknown> | null {
  const parts = token.split('.')
  if (parts.length !== 3 || parts[1] === undefined || parts[1] === '') return null
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
    return isObject(payload) ? payload : null
  } catch {
    return null
  }
}

function isoOf (seconds: unknown): string | null {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return null
  const date = new Date(seconds * 1000)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}

/** The non-secret claims of a token, times as ISO strings; null when it is not a JWT. */
export function shownClaims (token: string): Record<string, string> | null {
  const claims = decodeClaims(token)
  if (claims === null) return null
  const shown: Record<string, string> = {}
  for (const name of SHOWN_CLAIMS) {
    const value = claims[name]
    if (value === undefined || value === null) continue
    shown[name] = TIME_CLAIMS.has(name) ? (isoOf(value) ?? printable(value)) : printable(value)
  }
  return shown
}

/** `host[:port]` of a --vault value, which may also be given as an https URL. */
function vaultHost (raw: string): string {
  let host = raw.trim()
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) {
    try {
      host = new URL(host).host
    } catch {
      throw usageError('--vault must be a host name (myvault.vault.azure.net) or an https URL')
    }
  }
  host = host.replace(/\/+$/, '')
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?$/i.test(host)) {
    throw usageError('--vault must be a host name (myvault.vault.azure.net) or an https URL')
  }
  return host
}

function resourceOf (values: Readonly<Record<string, string>>): string {
  if (values.resource !== undefined && values.vault !== undefined) throw usageError('give --resource or --vault, not both')
  if (values.vault !== undefined) return resourceFor(vaultHost(values.vault)).resource
  const resource = values.resource ?? DEFAULT_RESOURCE
  let url: URL
  try {
    url = new URL(resource)
  } catch {
    throw usageError('--resource must be an https URL (e.g. https://vault.azure.net)')
  }
  if (url.protocol !== 'https:') throw usageError('--resource must be an https URL (e.g. https://vault.azure.net)')
  return resource
}

function sameAudience (aud: string, resource: string): boolean {
  const norm = (s: string): string => s.replace(/\/+$/, '').toLowerCase()
  return norm(aud) === norm(resource)
}

/** Runs `skr token`; see --help. */
export async function run (argv: readonly string[], env: CommandEnv, io: TokenIo = { ...processIo, stdoutIsTty: process.stdout.isTTY === true }, hooks: TokenHooks = {}): Promise<number> {
  return await runOperatorCommand('token', io, async () => {
    if (wantsHelp(argv)) {
      io.stdout(helpText('skr token [--resource URL | --vault HOST] [--decode] [--json]', summary, FLAGS, [
        'Gets the token through the identity the sidecar would use, configured by the same environment:',
        'workload identity when AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are set, else the',
        'managed identity (IMDS) with SkrSideCarArgs identity.client_id or AZURE_CLIENT_ID (else system-assigned).',
        'Use it to check that the identity works, or to call the vault by hand:',
        '  curl -H "Authorization: Bearer $(skr token --vault myvault.vault.azure.net)" https://myvault.vault.azure.net/keys/k?api-version=7.4',
        'The output is a bearer CREDENTIAL for the resource: do not log it or paste it into tickets or chats.',
        'To debug a 401 or 403, use --decode: it shows who the token is for (aud, appid, oid, tid) and when it',
        'expires, never the token.',
        'Exit 0 ok, 1 no token (ERR_IDENTITY_UNAVAILABLE), 2 usage or configuration error.'
      ]))
      return 0
    }
    const { values } = parseCommandFlags(argv, FLAGS)
    const resource = resourceOf(values)
    const decode = values.decode === 'true'
    const json = values.json === 'true'

    const config = loadConfig([], env)
    // Loaded only when needed: @azure/identity and the release wiring are large.
    const { identityConfigOf, partialWorkloadIdentity } = await import('../app/release.ts')
    const { createIdentityTokenSource, identityError } = await import('../identity/token-source.ts')
    const partial = partialWorkloadIdentity(config)
    if (partial !== null) {
      io.stderr(`skr token: warning: workload identity is only partly configured (${partial.missing.join(', ')} missing); using the managed identity instead, as the sidecar would\n`)
    }
    const identity = { ...identityConfigOf(config, await readExtraCa(config)), proxy: config.proxy }
    const source = hooks.tokenSource === undefined ? createIdentityTokenSource(identity) : await hooks.tokenSource(identity)
    const kind: IdentityKind = source.kind
    let token: string
    try {
      token = await source.getToken(resource)
    } catch (err) {
      if (isSidecarError(err)) throw err
      throw identityError(err, kind, '')
    }

    const claims = shownClaims(token)
    const expiresOn = claims?.exp !== undefined && /^\d{4}-/.test(claims.exp) ? claims.exp : null
    if (decode) {
      if (claims === null) io.stderr('skr token: warning: the token is not a JWT; it has no claims to show\n')
      else if (claims.aud !== undefined && !sameAudience(claims.aud, resource)) {
        io.stderr(`skr token: warning: the token's aud ${claims.aud} is not the resource asked for (${resource})\n`)
      }
      if (json) {
        io.stdout(toJson({ kind, resource, expiresOn, claims: claims ?? {} }))
      } else {
        const lines: Array<[string, string]> = [['identity', kind], ['resource', resource], ...Object.entries(claims ?? {})]
        const width = Math.max(...lines.map(([k]) => k.length))
        io.stdout(lines.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n') + '\n')
      }
      return 0
    }
    if (io.stdoutIsTty === true) {
      io.stderr(`skr token: warning: this is a bearer credential for ${resource}${expiresOn === null ? '' : ` (valid until ${expiresOn})`}; do not paste it into tickets or chats (--decode shows its claims only)\n`)
    }
    io.stdout(json ? toJson({ kind, resource, expiresOn, token }) : `${token}\n`)
    return 0
  })
}
