// REPORT_DATA binding for MAA: the reference sidecar puts SHA-256(runtime data) in the first 32
// bytes and zeros in the rest (confidential-sidecar-containers pkg/attest GenerateMAAReportData),
// and MAA checks x-ms-sevsnpvm-reportdata against exactly that. Zero-padding, never truncation:
// the firmware field is a fixed 64 bytes (docs/sev-snp.md#report_data).
import { createHash } from 'node:crypto'
import { REPORT_DATA_SIZE } from './provider.ts'

/** The 64 REPORT_DATA bytes binding `runtimeData`: sha256(runtimeData) then 32 zero bytes. */
export function reportDataFor (runtimeData: Uint8Array): Buffer {
  if (!(runtimeData instanceof Uint8Array)) throw new TypeError('runtimeData must be a Uint8Array')
  const out = Buffer.alloc(REPORT_DATA_SIZE)
  createHash('sha256').update(runtimeData).digest().copy(out, 0)
  return out
}
