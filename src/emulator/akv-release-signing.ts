// Signing the AKV emulator's release answers (./akv.ts) with the vault's signer chain, or, as the
// corruptJws fault asks, badly: unsigned, by an untrusted chain, for the wrong host, or with a
// broken signature.
import type { CorruptJwsMode } from './akv-faults.ts'
import { createSignerChain, signReleaseJws, unsecuredReleaseJws } from './signer-chain.ts'
import type { ReleaseSigner, SignerChain } from './signer-chain.ts'

/** Signs a release answer's payload as the given corruptJws mode asks (undefined: correctly). */
export type ReleaseSigning = (payload: unknown, mode: CorruptJwsMode | undefined) => Promise<string>

/** The signer of one emulator; the untrusted chain and the wrong-host leaf are made on first use. */
export function createReleaseSigning (chain: SignerChain, vaultHosts: string[], now: () => Date): ReleaseSigning {
  let untrusted: Promise<SignerChain> | null = null
  let wrongHost: Promise<ReleaseSigner> | null = null

  return async (payload: unknown, mode: CorruptJwsMode | undefined): Promise<string> => {
    if (mode === 'alg-none') return unsecuredReleaseJws(chain.signer, payload)
    if (mode === 'x5c-untrusted') {
      untrusted ??= createSignerChain({ hosts: vaultHosts, now: now(), label: 'untrusted' })
      return await signReleaseJws((await untrusted).signer, payload)
    }
    if (mode === 'wrong-host') {
      wrongHost ??= chain.issueLeaf(['wrong-host.invalid'])
      return await signReleaseJws(await wrongHost, payload)
    }
    const jws = await signReleaseJws(chain.signer, payload)
    if (mode !== 'signature') return jws
    const [h, p, s] = jws.split('.') as [string, string, string]
    const sig = Buffer.from(s, 'base64url')
    sig[0] = (sig[0] ?? 0) ^ 0x01
    return `${h}.${p}.${sig.toString('base64url')}`
  }
}
