// The access tokens the Entra and IMDS doubles mint and the AKV emulator accepts: RS256 JWTs shaped
// like Entra v1 access tokens (aud = the resource, appid/oid/tid, xms_az_rid; docs/protocols.md#managed-identity-tokens-from-imds),
// signed by a key that lives only in this process. skr never verifies these (it only forwards them
// and reads appid/xms_az_rid for logs, as the reference does); the AKV emulator does.
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { SignJWT, exportJWK, jwtVerify } from 'jose'
import type { JWK } from 'jose'

/** Mints and verifies the doubles' access tokens. */
export interface BearerIssuer {
  /** The `iss` of every token (Entra v1 style, with the trailing slash). */
  readonly issuer: string
  /** The tenant named in `iss` and `tid`. */
  readonly tenantId: string
  /** Signs a token for `aud` (the resource, e.g. https://vault.azure.net); default lifetime 3600 s. */
  mint: (claims: { aud: string, appid?: string, oid?: string, lifetimeSeconds?: number }) => Promise<string>
  /** The token's claims when its signature, issuer and lifetime are valid, else null. Audience is the caller's to check. */
  verify: (token: string) => Promise<Record<string, unknown> | null>
  /** The public signing key as a JWKS (what an issuer serves at its jwks_uri). */
  jwks: () => { keys: JWK[] }
}

/** The tenant the doubles use unless told otherwise (a made-up GUID, never a real tenant). */
export const DEFAULT_TENANT_ID = '00000000-5e4b-4c4a-8000-0000000005cc'

/** The application (client) id tokens carry when the caller names none. */
export const DEFAULT_CLIENT_ID = '00000000-5e4b-4c4a-8000-00000000c11d'

const DEFAULT_RESOURCE_ID = '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/skr-emulated/providers/Microsoft.ContainerInstance/containerGroups/skr-emulated'

/** Creates an issuer with a fresh RSA-2048 key; `now` drives iat/nbf/exp and verification. */
export async function createBearerIssuer (options: { tenantId?: string, now?: () => Date } = {}): Promise<BearerIssuer> {
  const tenantId = options.tenantId ?? DEFAULT_TENANT_ID
  const now = options.now ?? (() => new Date())
  const issuer = `https://sts.windows.net/${tenantId}/`
  const { privateKey, publicKey } = await new Promise<{ privateKey: KeyObject, publicKey: KeyObject }>((resolve, reject) => {
    crypto.generateKeyPair('rsa', { modulusLength: 2048 }, (err, pub, priv) => { if (err === null) resolve({ privateKey: priv, publicKey: pub }); else reject(err) })
  })
  const publicJwk = await exportJWK(publicKey)
  const kid = crypto.createHash('sha256').update(publicKey.export({ format: 'der', type: 'spki' })).digest('base64url').slice(0, 27)

  const mint: BearerIssuer['mint'] = async (claims) => {
    if (typeof claims?.aud !== 'string' || claims.aud === '') throw new TypeError('mint: aud must be a non-empty string')
    const lifetime = claims.lifetimeSeconds ?? 3600
    if (!Number.isInteger(lifetime) || lifetime <= 0) throw new TypeError('mint: lifetimeSeconds must be a positive integer')
    const iat = Math.floor(now().getTime() / 1000)
    const appid = claims.appid ?? DEFAULT_CLIENT_ID
    return await new SignJWT({
      appid,
      appidacr: '2',
      idtyp: 'app',
      oid: claims.oid ?? appid,
      tid: tenantId,
      ver: '1.0',
      xms_az_rid: DEFAULT_RESOURCE_ID
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuer(issuer)
      .setAudience(claims.aud)
      .setSubject(claims.oid ?? appid)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + lifetime)
      .setJti(crypto.randomUUID())
      .sign(privateKey)
  }

  const verify: BearerIssuer['verify'] = async (token) => {
    if (typeof token !== 'string' || token === '' || token.length > 16 * 1024) return null
    try {
      const { payload } = await jwtVerify(token, publicKey, {
        algorithms: ['RS256'],
        issuer,
        currentDate: now(),
        requiredClaims: ['exp', 'aud']
      })
      return { ...payload }
    } catch {
      return null
    }
  }

  const jwks = (): { keys: JWK[] } => ({ keys: [{ ...publicJwk, kid, use: 'sig', alg: 'RS256' }] })

  return Object.freeze({ issuer, tenantId, mint, verify, jwks })
}
