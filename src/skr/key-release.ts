// The secure key release behind POST /key/release (wire-protocols §0; reference pkg/skr/skr.go
// SecureKeyRelease): a fresh wrapping key → an MAA token whose runtime data is its JWKS → an
// Entra token for the vault → release → verify the signed answer → unwrap with the private key →
// the key as a JWK. Every failure keeps its class, code and status (so callers can tell "not
// allowed" (403) from "retry" (502/503/504)) and gets a message that starts with the step that
// failed ("attestation: …", "identity: …", "release: …", "verification: …", "unwrap: …") and a
// `step` detail. The private key never leaves this function; tokens and key material never
// reach a message or a log line.
import type { X509Certificate } from 'node:crypto'
import { InternalError, isSidecarError, ReleaseUnverified } from '../errors.ts'
import type { SidecarError, SidecarErrorOptions } from '../errors.ts'
import { parseKeyHsm } from '../akv/key-hsm.ts'
import type { ReleaseEnc } from '../akv/key-hsm.ts'
import { plaintextToJwk } from '../akv/jwk.ts'
import type { ReleaseClient } from '../akv/release-client.ts'
import { verifyReleaseJws } from '../akv/release-jws.ts'
import { unwrapKeyHsm } from '../akv/unwrap.ts'
import type { TokenSource } from '../identity/token-source.ts'
import { resourceFor } from '../identity/resource.ts'
import type { Logger } from '../log.ts'
import type { AttestationService, KeyReleaseRequest, KeyReleaseService } from '../service/types.ts'
import { parseKid } from './kid.ts'
import { createWrappingKey } from './wrapping-key.ts'
import type { WrappingKey } from './wrapping-key.ts'

/** What the release needs; everything slow or external is injected. */
export interface KeyReleaseDeps {
  attestation: AttestationService
  tokens: TokenSource
  release: ReleaseClient
  /** Roots a release JWS signer chain may end in (read per release, so a reload takes effect). */
  trustedRoots: () => readonly X509Certificate[]
  /** The `enc` asked of the vault; null: none sent, and the vault's default CKM_RSA_AES_KEY_WRAP is expected. */
  enc: ReleaseEnc | null
  now?: () => Date
  log?: Logger
  /** Source of wrapping keys (default: a fresh RSA-2048 per release); the seam for a key pool. */
  wrappingKey?: () => Promise<WrappingKey>
}

/** The steps of a release, as they prefix error messages and fill `details.step`. */
export type ReleaseStep = 'wrapping key' | 'attestation' | 'identity' | 'release' | 'verification' | 'unwrap'

type SidecarErrorClass = new (message: string, options?: SidecarErrorOptions) => SidecarError

/** Re-labels a failure with its step, keeping class, code and status; the caller's own cancellation passes unchanged. */
export function inStep (step: ReleaseStep, err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted === true && (err === signal.reason || !isSidecarError(err))) return err
  if (isSidecarError(err)) {
    const Class = err.constructor as SidecarErrorClass
    return new Class(`${step}: ${err.message}`, { cause: err, details: { ...err.details, step } })
  }
  // Not ours (a TypeError, a library bug): its text is not vetted for secrets, so it stays in `cause`.
  return new InternalError(`${step}: internal error`, { cause: err, details: { step } })
}

async function run<T> (step: ReleaseStep, signal: AbortSignal | undefined, work: () => Promise<T> | T): Promise<T> {
  try {
    // No step starts once the caller has gone (its reason passes through inStep unchanged).
    signal?.throwIfAborted()
    return await work()
  } catch (err) {
    throw inStep(step, err, signal)
  }
}

/** Builds the KeyReleaseService over injected attestation, identity and release clients. */
export function createKeyReleaseService (deps: KeyReleaseDeps): KeyReleaseService {
  const now = deps.now ?? (() => new Date())
  const newWrappingKey = deps.wrappingKey ?? createWrappingKey
  const askedEnc: ReleaseEnc = deps.enc ?? 'CKM_RSA_AES_KEY_WRAP'

  return {
    release: async (request: KeyReleaseRequest, signal?: AbortSignal) => {
      const { maaEndpoint, akvEndpoint } = request
      const { name, version } = parseKid(request.kid)
      const log = deps.log?.child({ akv: akvEndpoint, keyName: name, keyVersion: version })

      const wrapping = await run('wrapping key', signal, newWrappingKey)
      log?.debug({ maa: maaEndpoint, wrappingKid: wrapping.kid }, 'key release: attesting')
      const maaToken = await run('attestation', signal, async () => await deps.attestation.maaToken(maaEndpoint, wrapping.jwks, signal))

      const callerToken = request.accessToken !== undefined && request.accessToken !== ''
      const accessToken = callerToken
        ? request.accessToken as string
        : await run('identity', signal, async () => await deps.tokens.getToken(resourceFor(akvEndpoint).resource, signal))

      const jws = await run('release', signal, async () => await deps.release.release({
        akvEndpoint,
        keyName: name,
        keyVersion: version,
        target: maaToken,
        accessToken,
        // A caller-supplied token is never swapped for the sidecar's own identity.
        ...(callerToken ? {} : { tokenFor: async (resource: string, s?: AbortSignal) => await deps.tokens.getToken(resource, s) }),
        ...(signal === undefined ? {} : { signal })
      }))

      const { key, envelope } = await run('verification', signal, async () => {
        const verified = await verifyReleaseJws(jws, {
          vaultHost: akvEndpoint,
          keyName: name,
          ...(version === null ? {} : { keyVersion: version }),
          enc: askedEnc,
          trustedRoots: deps.trustedRoots(),
          now: now()
        })
        const envelope = parseKeyHsm(verified.key.key_hsm)
        // The vault must have wrapped to the key we attested, with the algorithm we asked for.
        if (envelope.kid !== wrapping.kid) {
          throw new ReleaseUnverified('key_hsm is not wrapped to this release\'s wrapping key (header.kid differs)', { details: { check: 'key_hsm.kid' } })
        }
        if (envelope.enc !== '' && envelope.enc !== askedEnc) {
          throw new ReleaseUnverified(`key_hsm header.enc ${JSON.stringify(envelope.enc.slice(0, 40))} is not the requested ${askedEnc}`, { details: { check: 'key_hsm.enc' } })
        }
        return { key: verified.key, envelope }
      })

      const jwk = await run('unwrap', signal, () => {
        const plaintext = unwrapKeyHsm(envelope.ciphertext, askedEnc, wrapping.privateKey)
        try {
          return plaintextToJwk(plaintext, key)
        } finally {
          plaintext.fill(0)
        }
      })
      log?.info({ kty: key.kty, kid: key.kid, callerToken }, 'key released')
      return jwk
    }
  }
}
