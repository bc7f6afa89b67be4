// The secure key release behind POST /key/release (docs/protocols.md#key-release-flow; reference pkg/skr/skr.go
// SecureKeyRelease): a wrapping key → an MAA token whose runtime data is its JWKS → an Entra
// token for the vault → release → verify the signed answer → unwrap with the private key → the
// key as a JWK. Every failure keeps its class, code and status (so callers can tell "not
// allowed" (403) from "retry" (502/503/504)) and gets a message that starts with the step that
// failed ("attestation: …", "identity: …", "release: …", "verification: …", "unwrap: …") and a
// `step` detail. The private key never leaves this process; tokens and key material never reach
// a message or a log line.
//
// By default every release attests afresh, as the reference does. The composition root
// (build.ts) adds the performance features: an AttestationCache that reuses one key + token per
// MAA endpoint, a key pool, coalescing of identical concurrent releases, and batch releases.
import { ReleaseUnverified } from '../errors.ts'
import { parseKeyHsm } from '../akv/key-hsm.ts'
import type { ReleaseEnc } from '../akv/key-hsm.ts'
import { plaintextToJwk } from '../akv/jwk.ts'
import type { ReleaseClient } from '../akv/release-client.ts'
import { verifyReleaseJws } from '../akv/release-jws.ts'
import type { TrustedRoots } from '../akv/root-store.ts'
import { createSignerChainCache } from '../akv/signer-chain-cache.ts'
import type { SignerChainCache } from '../akv/signer-chain-cache.ts'
import { unwrapKeyHsm } from '../akv/unwrap.ts'
import type { TokenSource } from '../identity/token-source.ts'
import { resourceFor } from '../identity/resource.ts'
import type { Logger } from '../log.ts'
import type { AttestationService, KeyReleaseBatchRequest, KeyReleaseBatchResult, KeyReleaseRequest, KeyReleaseService } from '../service/types.ts'
import { createAttestationCache, noteRefusal } from './attestation-cache.ts'
import { isPolicyDenial, withPresentedClaims } from './denial.ts'
import type { AttestationCache, AttestationLease } from './attestation-cache.ts'
import { DEFAULT_MAX_BATCH, releaseBatch } from './batch.ts'
import { parseKid } from './kid.ts'
import { createSingleFlight } from '../util/single-flight.ts'
import { runStep } from './steps.ts'
import { createWrappingKey } from './wrapping-key.ts'
import type { WrappingKey } from './wrapping-key.ts'

export { inStep } from './steps.ts'
export type { ReleaseStep } from './steps.ts'

/** What the release needs; everything slow or external is injected. */
export interface KeyReleaseDeps {
  attestation: AttestationService
  tokens: TokenSource
  release: ReleaseClient
  /** Roots a release JWS signer chain may end in (asked per release, so a reload (a new store or a new array; arrays are not read again once used) takes effect). */
  trustedRoots: () => TrustedRoots
  /** The `enc` asked of the vault; null: none sent, and the vault's default CKM_RSA_AES_KEY_WRAP is expected. */
  enc: ReleaseEnc | null
  now?: () => Date
  log?: Logger
  /** Source of wrapping keys (default: a fresh RSA-2048 per attestation); the seam for a key pool. */
  wrappingKey?: (signal?: AbortSignal) => Promise<WrappingKey>
  /** Attestation reuse (default: none, a new key, report and token per release, as the reference). */
  attestationCache?: AttestationCache
  /** Share one upstream release among identical concurrent requests that carry no access_token (default false). */
  coalesce?: boolean
  /** Verified signer chains (default: a private cache of 64). */
  signerCache?: SignerChainCache
  /** Most kids in one batch (default 16). */
  maxBatch?: number
  /** Releases of one batch in flight at once (default 4). */
  batchConcurrency?: number
  /** A reused token younger than this (ms) is never taken for stale (default STALE_TOKEN_MIN_AGE_MS). */
  staleTokenMinAgeMs?: number
}

/**
 * A refusal under a token obtained less than a minute ago is the policy's answer, never a stale
 * token: MAA tokens live hours and MAA's signing keys change rarely. Without this floor a caller
 * alternating keys the policy denies made every refusal look stale and forced a new attestation
 * (wrapping key, report, MAA call) each time, evicting everyone's shared entry. A policy fixed in
 * the vault needs no new token (the vault evaluates it against the same claims).
 */
export const STALE_TOKEN_MIN_AGE_MS = 60_000

/** The service, with batch release and the coalescing it owns. */
export type KeyReleaseHandle = KeyReleaseService & {
  releaseMany: (request: KeyReleaseBatchRequest, signal?: AbortSignal) => Promise<KeyReleaseBatchResult>
  /** Aborts shared releases in flight; later releases run unshared. */
  close: () => void
}

/** One key to release from one vault. */
interface Target {
  akvEndpoint: string
  name: string
  version: string | null
  accessToken: string | undefined
}

// AKV answers a token it no longer accepts (expired, signed by a retired MAA key, clock skew) with
// the same 403 "Target environment attestation statement cannot be verified." as a policy that
// the claims do not satisfy. Only such refusals can be a stale token; a permission error (401,
// ForbiddenBy*) or a non-exportable key never is.
function mayBeStaleToken (err: unknown): boolean {
  return isPolicyDenial(err)
}

/** Builds the KeyReleaseService over injected attestation, identity and release clients. */
export function createKeyReleaseService (deps: KeyReleaseDeps): KeyReleaseHandle {
  const now = deps.now ?? (() => new Date())
  const askedEnc: ReleaseEnc = deps.enc ?? 'CKM_RSA_AES_KEY_WRAP'
  const newWrappingKey = deps.wrappingKey ?? createWrappingKey
  const cache = deps.attestationCache ??
    createAttestationCache({ attestation: deps.attestation, wrappingKey: newWrappingKey, ttlMs: 0, now, ...(deps.log === undefined ? {} : { log: deps.log }) })
  const signerCache = deps.signerCache ?? createSignerChainCache()
  const shared = createSingleFlight<Record<string, unknown>>()

  /** Everything after attestation: identity, release, verification, unwrap, under `lease`'s key and token. */
  async function releaseUnder (lease: AttestationLease, target: Target, signal: AbortSignal | undefined, log: Logger | undefined): Promise<Record<string, unknown>> {
    const { akvEndpoint, name, version } = target
    const { wrapping, token: maaToken } = lease.entry
    const callerToken = target.accessToken !== undefined
    const accessToken = target.accessToken ??
      await runStep('identity', signal, async () => await deps.tokens.getToken(resourceFor(akvEndpoint).resource, signal))

    const jws = await runStep('release', signal, async () => {
      try {
        return await deps.release.release({
          akvEndpoint,
          keyName: name,
          keyVersion: version,
          target: maaToken,
          accessToken,
          // A caller-supplied token is never swapped for the sidecar's own identity.
          ...(callerToken ? {} : { tokenFor: async (resource: string, s?: AbortSignal) => await deps.tokens.getToken(resource, s) }),
          ...(signal === undefined ? {} : { signal })
        })
      } catch (err) {
        // AKV's denial names no claim: say which ones this token presented (never the token).
        throw withPresentedClaims(err, maaToken)
      }
    })

    const { key, envelope } = await runStep('verification', signal, async () => {
      const verified = await verifyReleaseJws(jws, {
        vaultHost: akvEndpoint,
        keyName: name,
        ...(version === null ? {} : { keyVersion: version }),
        enc: askedEnc,
        trustedRoots: deps.trustedRoots(),
        now: now(),
        chainCache: signerCache
      })
      const envelope = parseKeyHsm(verified.key.key_hsm)
      // The vault must have wrapped to the key we attested, with the algorithm we asked for.
      // header.kid is informational (parseKeyHsm gives '' when absent); a key wrapped to another
      // key would fail to unwrap anyway, so only a kid that is present must match.
      if (envelope.kid !== '' && envelope.kid !== wrapping.kid) {
        throw new ReleaseUnverified('key_hsm is not wrapped to this release\'s wrapping key (header.kid differs)', { details: { check: 'key_hsm.kid' } })
      }
      if (envelope.enc !== '' && envelope.enc !== askedEnc) {
        throw new ReleaseUnverified(`key_hsm header.enc ${JSON.stringify(envelope.enc.slice(0, 40))} is not the requested ${askedEnc}`, { details: { check: 'key_hsm.enc' } })
      }
      return { key: verified.key, envelope }
    })

    const jwk = await runStep('unwrap', signal, () => {
      const plaintext = unwrapKeyHsm(envelope.ciphertext, askedEnc, wrapping.privateKey)
      try {
        return plaintextToJwk(plaintext, key)
      } finally {
        plaintext.fill(0)
      }
    })
    log?.info({ kty: key.kty, kid: key.kid, callerToken, reusedAttestation: lease.reused }, 'key released')
    return jwk
  }

  /**
   * Attests (or reuses an attestation, or uses the batch's `given` one) and releases. A refusal
   * under a REUSED token at least a minute old that could mean the token went stale evicts the
   * entry and is retried once under a fresh one. A refusal under a fresh token is the policy's answer: it is remembered on
   * that entry, so later refusals of the same key under it are returned at once, not retried.
   */
  async function releaseOne (maaEndpoint: string, target: Target, signal: AbortSignal | undefined, given?: AttestationLease): Promise<Record<string, unknown>> {
    const log = deps.log?.child({ akv: target.akvEndpoint, keyName: target.name, keyVersion: target.version })
    const lease = given ?? await cache.acquire(maaEndpoint, signal)
    log?.debug({ maa: maaEndpoint, wrappingKid: lease.entry.wrapping.kid, reused: lease.reused }, 'key release: attested')
    const id = `${target.akvEndpoint}|${target.name}/${target.version ?? ''}`.toLowerCase()
    try {
      return await releaseUnder(lease, target, signal, log)
    } catch (err) {
      if (!mayBeStaleToken(err)) throw err
      const young = now().getTime() - lease.entry.obtainedAt < (deps.staleTokenMinAgeMs ?? STALE_TOKEN_MIN_AGE_MS)
      if (!lease.reused || young || lease.entry.refused.has(id)) {
        noteRefusal(lease.entry, id)
        throw err
      }
      log?.info({ maa: maaEndpoint }, 'the vault refused a reused attestation token: re-attesting once')
      cache.invalidate(lease.entry)
    }
    const fresh = await cache.acquire(maaEndpoint, signal)
    try {
      return await releaseUnder(fresh, target, signal, log)
    } catch (err) {
      if (mayBeStaleToken(err)) noteRefusal(fresh.entry, id)
      throw err
    }
  }

  function targetOf (request: Omit<KeyReleaseRequest, 'kid'>, kid: string): Target {
    const { name, version } = parseKid(kid)
    // "" means "no token" (the reference's Go zero value).
    const accessToken = request.accessToken !== undefined && request.accessToken !== '' ? request.accessToken : undefined
    return { akvEndpoint: request.akvEndpoint, name, version, accessToken }
  }

  return {
    release: async (request: KeyReleaseRequest, signal?: AbortSignal) => {
      const target = targetOf(request, request.kid)
      // Never shared across caller tokens: a caller's token must not release a key for another caller.
      if (deps.coalesce !== true || target.accessToken !== undefined) return await releaseOne(request.maaEndpoint, target, signal)
      const key = JSON.stringify([target.akvEndpoint, target.name, target.version, request.maaEndpoint])
      const jwk = await shared.run(key, async (s) => await releaseOne(request.maaEndpoint, target, s), signal)
      // Each waiter gets its own copy: one caller mutating its JWK must not touch another's.
      return structuredClone(jwk)
    },

    releaseMany: async (request, signal) => await releaseBatch(request, {
      maxBatch: deps.maxBatch ?? DEFAULT_MAX_BATCH,
      concurrency: deps.batchConcurrency ?? 4,
      targetOf: (kid) => targetOf(request, kid),
      attest: async () => await cache.acquire(request.maaEndpoint, signal),
      releaseOne: async (target, lease) => await releaseOne(request.maaEndpoint, target, signal, lease),
      ...(signal === undefined ? {} : { signal }),
      ...(deps.log === undefined ? {} : { log: deps.log })
    }),

    close: () => { shared.close(new Error('key release service closed')) }
  }
}
