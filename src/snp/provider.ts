// The QuoteProvider contract every attestation backend implements (configfs-tsm, the
// /dev/sev-guest and legacy /dev/sev ioctls, and the simulator). Callers hand in the 64
// REPORT_DATA bytes and get back the exact bytes the interface produced: parsing and
// verification happen elsewhere, on one copy of those bytes.

export type AttestationBackend = 'tsm' | 'sev-guest' | 'sev' | 'simulated'

export const REPORT_DATA_SIZE = 64

export interface RawQuote {
  /** The attestation report exactly as the interface returned it (1184 bytes for v2..v5). */
  readonly report: Buffer
  /** The GHCB certificate table (configfs `auxblob`) when the interface returned one. */
  readonly certTable?: Buffer
  readonly backend: AttestationBackend
}

export interface QuoteProvider {
  readonly backend: AttestationBackend
  /** True only for the simulator: callers must surface it in logs and /status. */
  readonly simulated: boolean
  /**
   * @param reportData exactly 64 bytes (callers zero-pad; see reportDataFor in ./report-data.ts)
   * @param vmpl the VMPL to request, 0..3 (default 0)
   */
  getReport (reportData: Uint8Array, vmpl?: number): Promise<RawQuote>
}
