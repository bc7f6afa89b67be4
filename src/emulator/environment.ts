// The whole Azure side of a key release, on loopback: a local PKI, the MAA emulator, IMDS
// (managed-identity tokens and THIM), and AKV — plus the settings that point a simulated skr at
// them. One module so that `npm run demo`, the end-to-end tests and the benchmark all exercise
// the same wiring a user would reproduce by hand.
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLocalPki, type LocalPki } from './pki.ts'
import { startMaaEmulator, type MaaEmulator } from './maa.ts'
import { startImdsEmulator, type ImdsEmulator } from './imds.ts'
import { startAkvEmulator, type AkvEmulator } from './akv.ts'
import { createBearerIssuer, DEFAULT_CLIENT_ID, type BearerIssuer } from './bearer.ts'
import { thimDocument, type EmulatedAmdChain } from '../simulated/emulated-chain.ts'
import { loadOrCreateEmulatedChain } from '../simulated/emulated-chain-cache.ts'
import { simulatedMeasurement } from '../simulated/provider.ts'
import type { UvmEndorsementLayout } from '../uvm/reference-info.ts'
import { createUvmEndorser, type UvmEndorser } from './uvm-endorser.ts'

/** The confidential container group's security policy the demo "runs": its SHA-256 is HOST_DATA. */
export const DEMO_SECURITY_POLICY = [
  'package policy',
  '',
  'api_version := "0.10.0"',
  'framework_version := "0.2.3"',
  '',
  '# skr demo: an emulated container group. On Azure this text comes from `az confcom acipolicygen`.',
  'default mount_device := {"allowed": true}',
  'default create_container := {"allowed": true}',
  ''
].join('\n')

export interface EmulatedEnvironmentOptions {
  /** Where the emulated AMD chain is cached (shared with skr's simulated backend). */
  cacheDir?: string
  securityPolicy?: string
  /** AKV emulator flavour: a vault (vault.azure.net scope) or a managed HSM. */
  akvKind?: 'vault' | 'mhsm'
  /** Lines for a person while the emulated AMD chain is generated (first run only; see loadOrCreateEmulatedChain). */
  progress?: (message: string) => void
  /** The layout of the UVM endorsement in the security context (default 'cwt-claims', with a receipt, as ACI ships since 2026). */
  uvmEndorsementLayout?: UvmEndorsementLayout
}

export interface EmulatedEnvironment {
  readonly pki: LocalPki
  readonly chain: EmulatedAmdChain
  readonly bearer: BearerIssuer
  readonly maa: MaaEmulator
  readonly imds: ImdsEmulator
  readonly akv: AkvEmulator
  /**
   * The emulated UVM signing service. Its endorsement of the simulated UVM's launch measurement is
   * in the security context (`reference-info-base64`), and the MAA emulator trusts its root, so
   * tokens carry `x-ms-compliance-status: azure-compliant-uvm` as they do on ACI.
   */
  readonly uvmEndorser: UvmEndorser
  /** HOST_DATA of simulated reports: sha256 of the security policy, lowercase hex. */
  readonly hostData: string
  /** The policy text and the directory holding its security-context file. */
  readonly securityPolicy: string
  readonly securityContextDir: string
  /** CA PEMs skr must trust: the loopback TLS CA and the release-signer root. */
  readonly extraCa: readonly string[]
  /**
   * The environment variables that configure skr for this environment (simulated attestation,
   * THIM at the IMDS double, the security context). AZURE_POD_IDENTITY_AUTHORITY_HOST is read by
   * @azure/identity itself, so in-process users must also put it into process.env.
   */
  skrEnv (port?: number): Record<string, string>
  /** A release policy bound to this environment's MAA issuer and the given HOST_DATA. */
  releasePolicy (hostData?: string): Record<string, unknown>
  close (): Promise<void>
}

/** Starts every emulator on 127.0.0.1 with fresh keys; close() stops them and removes temp files. */
export async function startEmulatedEnvironment (options: EmulatedEnvironmentOptions = {}): Promise<EmulatedEnvironment> {
  const work = await mkdtemp(join(tmpdir(), 'skr-env-'))
  const cacheDir = options.cacheDir ?? join(work, 'chain-cache')
  const securityPolicy = options.securityPolicy ?? DEMO_SECURITY_POLICY
  const securityContextDir = join(work, 'security-context-skr-demo')
  await mkdir(securityContextDir, { recursive: true, mode: 0o700 })
  await writeFile(join(securityContextDir, 'security-policy-base64'), Buffer.from(securityPolicy).toString('base64'))

  const [pki, chain, bearer, uvmEndorser] = await Promise.all([
    createLocalPki({ commonName: 'skr emulated environment CA' }),
    loadOrCreateEmulatedChain({ cacheDir, ...(options.progress === undefined ? {} : { progress: options.progress }) }),
    createBearerIssuer(),
    createUvmEndorser()
  ])
  // The endorsement of the UVM skr's simulated backend reports (the same measurement inputs as
  // src/app/attestation.ts gives createSimulatedProvider: the chain and this security policy).
  const endorsement = uvmEndorser.endorse({
    launchMeasurement: simulatedMeasurement({ chain, securityPolicy: Buffer.from(securityPolicy, 'utf8') }),
    guestSvn: '0',
    layout: options.uvmEndorsementLayout ?? 'cwt-claims'
  })
  await writeFile(join(securityContextDir, 'reference-info-base64'), endorsement.toString('base64'))
  const tls = await pki.issue(['127.0.0.1', 'localhost'])
  const started: Array<{ close: () => Promise<void> }> = []
  try {
    const maa = await startMaaEmulator({
      tls,
      trustedArkFingerprints: [chain.arkFingerprint],
      trustedUvmRootFingerprints: [uvmEndorser.rootFingerprint],
      trustedTransparencyKeys: [{ kid: uvmEndorser.transparency.kid, key: uvmEndorser.transparency.publicKey, issuer: uvmEndorser.transparency.issuer, source: 'emulated' }]
    })
    started.push(maa)
    const imds = await startImdsEmulator({ tokenIssuer: bearer, thim: () => thimDocument(chain), clientIds: [DEFAULT_CLIENT_ID] })
    started.push(imds)
    const akv = await startAkvEmulator({ tls, tokenVerifier: bearer.verify, maaCa: pki.caCertPem, kind: options.akvKind ?? 'vault' })
    started.push(akv)
    const hostData = createHash('sha256').update(securityPolicy).digest('hex')

    return {
      pki,
      chain,
      bearer,
      maa,
      imds,
      akv,
      uvmEndorser,
      hostData,
      securityPolicy,
      securityContextDir,
      extraCa: [pki.caCertPem, akv.signerRootPem],
      skrEnv (port = 0) {
        const sidecarArgs = {
          certcache: { endpoint_type: 'LocalTHIM', endpoint: `${imds.host}/metadata/THIM/amd/certification` },
          identity: { client_id: DEFAULT_CLIENT_ID }
        }
        return {
          SKR_ATTESTATION: 'simulated',
          SKR_SIMULATED_CACHE_DIR: cacheDir,
          UVM_SECURITY_CONTEXT_DIR: securityContextDir,
          SkrSideCarArgs: Buffer.from(JSON.stringify(sidecarArgs)).toString('base64'),
          Port: String(port),
          // The emulated MAA and vault are the only hosts callers of this sidecar may name: the
          // default allow-list (Azure's DNS suffixes) would refuse these loopback endpoints.
          SKR_ALLOWED_HOSTS: [maa.endpoint, akv.endpoint].join(','),
          AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url
        }
      },
      releasePolicy (boundHostData = hostData) {
        return {
          version: '1.0.0',
          anyOf: [{
            authority: maa.issuer,
            allOf: [
              { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' },
              { claim: 'x-ms-sevsnpvm-hostdata', equals: boundHostData },
              { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
              { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }
            ]
          }]
        }
      },
      async close () {
        await Promise.allSettled(started.map(async s => { await s.close() }))
        await rm(work, { recursive: true, force: true })
      }
    }
  } catch (err) {
    await Promise.allSettled(started.map(async s => { await s.close() }))
    await rm(work, { recursive: true, force: true })
    throw err
  }
}
