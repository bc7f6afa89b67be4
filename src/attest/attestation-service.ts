// The AttestationService: fresh reports bound to the caller's runtime data, the certified chain
// that endorses them, and MAA tokens. The reference's TCB handling (CSC pkg/attest/attest.go
// getCollateral) is kept in spirit and fixed in detail: a report whose REPORTED_TCB differs from
// the cached chain's TCBM refreshes the chain (once, shared by concurrent callers), then re-reads
// the report once, then fails naming both values; and /attest/combined takes the same path (the
// reference skips it there, CSC#202). Evidence is verified locally before it goes to MAA, so a
// wrong chain fails here with a precise error instead of as MAA's opaque 400.
import { createHash } from 'node:crypto'
import { pino } from 'pino'
import { parseChainPem, type AmdChain } from '../certs/amd-chain.ts'
import type { VcekCollateral } from '../collateral/types.ts'
import { SnpDeviceUnavailable, SnpFirmwareError, TcbMismatch, type SidecarError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { MaaClient } from '../maa/client.ts'
import type { AttestationService, AttestationStatus, CombinedEvidence } from '../service/types.ts'
import { parseReport, type AttestationReport } from '../snp/abi.ts'
import type { QuoteProvider } from '../snp/provider.ts'
import { reportDataFor } from '../snp/report-data.ts'
import { tcbToHex } from '../snp/tcb.ts'
import { verifyReport } from '../certs/report-verify.ts'
import { unknownFields } from '../snp/reserved.ts'
import type { SecurityContext } from '../uvm/security-context.ts'
import type { CollateralStore } from '../collateral/store.ts'

/** What the service is built from; everything slow or external is injected. */
export interface AttestationServiceDeps {
  /** The attestation backend; null when none could be selected (then every call fails with providerError). */
  provider: QuoteProvider | null
  /** Why there is no provider (an SnpDeviceUnavailable from selection). */
  providerError?: SidecarError
  collateral: CollateralStore
  securityContext: SecurityContext
  maa: MaaClient
  /** Verify report, chain and VCEK binding before sending evidence to MAA. */
  verifyReports: boolean
  /** ARK fingerprints the local verification trusts (AMD's, configured ones, the emulated ARK when simulated). */
  trustedArkFingerprints: readonly string[]
  /** Problems found at start-up that only a restart fixes (an unreadable security context). */
  startupProblems?: readonly string[]
  now?: () => Date
  log?: Logger
}

/** The service plus its lifecycle: warmUp fetches the first chain, close stops background work. */
export type AttestationServiceHandle = AttestationService & {
  /** Reads one report and fetches the chain for it when none is cached; never rejects (failures are logged and shown by status()). */
  warmUp (signal?: AbortSignal): Promise<void>
  close (): void
}

const SOURCE_NAMES: Readonly<Record<VcekCollateral['source'], string>> = {
  thim: 'THIM',
  kds: 'AMD KDS',
  azcache: 'the Azure cert cache',
  'security-context': 'the UVM security context'
}

function sha256Hex (bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function reasonOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Creates the service over an injected provider, collateral store and MAA client. */
export function createAttestationService (deps: AttestationServiceDeps): AttestationServiceHandle {
  const { provider, collateral, securityContext, maa } = deps
  const log = (deps.log ?? pino({ level: 'silent' })).child({ component: 'attest' })
  const now = deps.now ?? (() => new Date())
  const trusted = [...deps.trustedArkFingerprints]
  // Parsing the chain (and the CN parsing the chain check caches per certificate object) is most
  // of a verification's cost; one parse per collateral object makes repeat calls cheap.
  const parsedChains = new WeakMap<VcekCollateral, AmdChain>()
  let warmUpError: unknown = null

  function requireProvider (): QuoteProvider {
    if (provider !== null) return provider
    throw deps.providerError ?? new SnpDeviceUnavailable('no SEV-SNP attestation backend is configured')
  }

  let warnedUnknown = false
  async function freshReport (reportData: Buffer, signal: AbortSignal | undefined): Promise<AttestationReport> {
    const device = requireProvider()
    signal?.throwIfAborted()
    const quote = await device.getReport(reportData, 0)
    const report = parseReport(quote.report)
    // A report for other data would bind someone else's key: never pass it on.
    if (!report.reportData.equals(reportData)) {
      throw new SnpFirmwareError(`device returned a report for other data: REPORT_DATA differs from the ${reportData.length} bytes requested`,
        { details: { backend: device.backend } })
    }
    log.debug({ reportSha256: sha256Hex(report.raw), reportedTcb: tcbToHex(report.reportedTcb), backend: device.backend }, 'attestation report read')
    // Bits the specification still reserves are never refused (newer firmware sets them), but the
    // operator should know: once per process, not per report.
    const unknown = unknownFields(report)
    if (unknown.length > 0 && !warnedUnknown) {
      warnedUnknown = true
      log.warn({ unknown, backend: device.backend }, 'the attestation report sets fields skr does not know (newer firmware?); they are passed on and MAA decides')
    }
    signal?.throwIfAborted()
    return report
  }

  async function evidence (runtimeData: Buffer, signal: AbortSignal | undefined): Promise<{ report: AttestationReport, chain: VcekCollateral }> {
    const reportData = reportDataFor(runtimeData)
    const first = await freshReport(reportData, signal)
    let report = first
    let { collateral: chain } = await collateral.forTcb(report.reportedTcb, report, signal)
    if (chain.tcbm === report.reportedTcb) return { report, chain }

    // The firmware may have been updated between the report and the refresh: read it again.
    log.info({ reportedTcb: tcbToHex(report.reportedTcb), tcbm: tcbToHex(chain.tcbm), source: chain.source },
      'REPORTED_TCB still differs after refreshing the chain; reading a new report')
    report = await freshReport(reportData, signal)
    // A chain is fetched again only if the TCB moved between the two reports: the one just
    // fetched was for the first report's TCB, and asking the same source again would not change it.
    if (report.reportedTcb !== chain.tcbm && report.reportedTcb !== first.reportedTcb) {
      ({ collateral: chain } = await collateral.forTcb(report.reportedTcb, report, signal))
    }
    if (chain.tcbm !== report.reportedTcb) {
      throw new TcbMismatch(`report REPORTED_TCB ${tcbToHex(report.reportedTcb)} does not match the certified chain's TCBM ` +
        `${tcbToHex(chain.tcbm)} after refreshing the chain from ${SOURCE_NAMES[chain.source]}`,
      { details: { reportedTcb: tcbToHex(report.reportedTcb), tcbm: tcbToHex(chain.tcbm), source: chain.source } })
    }
    return { report, chain }
  }

  function chainOf (chain: VcekCollateral): AmdChain {
    let parsed = parsedChains.get(chain)
    if (parsed === undefined) {
      parsed = parseChainPem(chain.vcekPem, chain.chainPem)
      parsedChains.set(chain, parsed)
    }
    return parsed
  }

  return {
    async rawReport (runtimeData, signal) {
      const report = await freshReport(reportDataFor(runtimeData), signal)
      return report.raw
    },

    async combined (runtimeData, signal): Promise<CombinedEvidence> {
      const { report, chain } = await evidence(runtimeData, signal)
      return {
        endorsedTcb: tcbToHex(chain.tcbm),
        endorsements: Buffer.from(chain.vcekPem + chain.chainPem, 'utf8').toString('base64'),
        evidence: report.raw.toString('base64'),
        uvmEndorsements: securityContext.referenceInfoBase64 ?? ''
      }
    },

    async maaToken (maaEndpoint, runtimeData, signal) {
      const { report, chain } = await evidence(runtimeData, signal)
      if (deps.verifyReports) {
        verifyReport(report.raw, chainOf(chain), { trustedArkFingerprints: trusted, now: now() })
      }
      const { token } = await maa.attest(maaEndpoint, {
        report: report.raw,
        vcekCertChainPem: chain.vcekPem + chain.chainPem,
        uvmReferenceInfo: securityContext.referenceInfo,
        runtimeData
      }, signal)
      log.info({ reportSha256: sha256Hex(report.raw), maaEndpoint, tcbm: tcbToHex(chain.tcbm) }, 'MAA token obtained')
      return token
    },

    async status (): Promise<AttestationStatus> {
      const problems: string[] = [...(deps.startupProblems ?? [])]
      if (provider === null) problems.push(reasonOf(deps.providerError ?? 'no SEV-SNP attestation backend is configured'))
      else if (collateral.current() === null) {
        const why = collateral.lastError() ?? warmUpError
        problems.push(`no VCEK certificate chain yet: ${why === null ? 'it is fetched on the first request' : reasonOf(why)}`)
      }
      return { backend: provider?.backend ?? null, simulated: provider?.simulated ?? false, problems }
    },

    async warmUp (signal) {
      if (provider === null || collateral.current() !== null) return
      try {
        // Reading a report also proves the device works; KDS and AzCache need one to ask for a chain.
        const report = await freshReport(reportDataFor(Buffer.alloc(0)), signal)
        await collateral.forTcb(report.reportedTcb, report, signal)
        warmUpError = null
      } catch (err) {
        warmUpError = err
        log.error({ err: reasonOf(err) }, 'start-up VCEK chain fetch failed; it is retried on the first request')
      }
    },

    close () {
      collateral.close()
    }
  }
}
