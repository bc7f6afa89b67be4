// The UVM endorsement as `skr verify` and `skr report` show it: verified with the same code MAA's
// stand-in uses (src/uvm/reference-info.ts), then set against the report: its launch measurement
// against MEASUREMENT, its SVN beside GUEST_SVN, its feed, signer and receipt. Pure: bytes, clock
// and trust in; checks and a JSON-able view out.
import { decodeBase64Flexible } from '../encoding/base64.ts'
import { SidecarError, UvmEndorsementInvalid } from '../errors.ts'
import type { AttestationReport } from '../snp/abi.ts'
import {
  parseUvmReferenceInfo, verifyUvmReferenceInfo, type UvmEndorsement, type VerifiedUvmEndorsement
} from '../uvm/reference-info.ts'
import type { ReceiptStatus, TransparencyKey } from '../uvm/transparency-receipt.ts'
import { oneLine } from '../text/untrusted.ts'
import type { Check } from './verify-offline.ts'

/** The feed Microsoft's UVM endorsements for confidential ACI name. */
export const ACI_UVM_FEED = 'ContainerPlat-AMD-UVM'

/** Trust and expectations for the endorsement checks. */
export interface UvmCheckOptions {
  now: Date
  /** Accepted x5chain roots; default Microsoft's supply-chain root. */
  trustedRootFingerprints?: readonly string[]
  /** Transparency keys; default Microsoft's pinned ones. */
  transparencyKeys?: readonly TransparencyKey[]
  /** The feed the endorsement must name; default ACI_UVM_FEED. */
  expectFeed?: string
  /** The endorsement's SVN must be at least this. */
  expectMinSvn?: number
  /** Fail unless a receipt verified under a trusted key (default: a missing receipt is skipped, an unknown key warned). */
  requireReceipt?: boolean
}

/** The JSON view of an endorsement, with its verification outcome. */
export interface UvmEndorsementView extends Omit<UvmEndorsement, 'payload' | 'signingTime'> {
  signingTime: string | null
  /** 'verified', or why not. */
  verification: string
  receipt: ReceiptStatus | { status: 'invalid', reason: string } | { status: 'unchecked' }
  /** Endorsed measurement equals the report's MEASUREMENT (null without a report). */
  measurementMatchesReport: boolean | null
  reportGuestSvn: number | null
}

const HEX_TEXT = /^(?:[0-9a-fA-F]{2})+$/

/** The COSE bytes from a file: raw CBOR (tag 18 or a bare 4-array), base64 (as `reference-info-base64`) or hex. */
export function decodeEndorsementInput (bytes: Buffer): Buffer {
  if (bytes[0] === 0xd2 || bytes[0] === 0x84) return Buffer.from(bytes)
  const text = bytes.toString('latin1').replace(/\s+/g, '')
  if (HEX_TEXT.test(text) && /^(d2|84)/i.test(text)) return Buffer.from(text, 'hex')
  const decoded = decodeBase64Flexible(text)
  if (decoded !== null && (decoded[0] === 0xd2 || decoded[0] === 0x84)) return decoded
  throw new UvmEndorsementInvalid('UVM reference info: the input is neither COSE_Sign1 bytes nor their base64 or hex', { details: { check: 'cbor' } })
}

interface Outcome {
  endorsement: UvmEndorsement | null
  verified: VerifiedUvmEndorsement | null
  error: string | null
  receipt: UvmEndorsementView['receipt']
}

function outcomeOf (cose: Buffer, options: UvmCheckOptions): Outcome {
  const trust = {
    now: options.now,
    ...(options.trustedRootFingerprints === undefined ? {} : { trustedRootFingerprints: options.trustedRootFingerprints }),
    ...(options.transparencyKeys === undefined ? {} : { transparencyKeys: options.transparencyKeys })
  }
  try {
    const verified = verifyUvmReferenceInfo(cose, trust)
    return { endorsement: verified, verified, error: null, receipt: verified.receipt }
  } catch (err) {
    if (!(err instanceof SidecarError)) throw err
    // Decoded again only to show what an endorsement that did not verify says (null: unreadable).
    let endorsement: UvmEndorsement | null = null
    try {
      endorsement = parseUvmReferenceInfo(cose)
    } catch {
      // unreadable: the verification error says why
    }
    // Receipts are checked last: a receipt error means the statement itself verified.
    const receiptOnly = err.details?.check === 'receipt'
    return {
      endorsement,
      verified: null,
      error: receiptOnly ? null : err.message,
      receipt: receiptOnly ? { status: 'invalid', reason: err.message } : { status: 'unchecked' }
    }
  }
}

const cn = (subject: string | undefined): string => /CN=([^,]+)/.exec(subject ?? '')?.[1] ?? subject ?? 'unknown'
const iso = (seconds: number | null): string | null => seconds === null ? null : new Date(seconds * 1000).toISOString()

function receiptCheck (receipt: UvmEndorsementView['receipt'], options: UvmCheckOptions): Check {
  const name = 'uvm-receipt'
  const required = options.requireReceipt === true
  switch (receipt.status) {
    case 'verified': {
      const r = receipt.receipts.map((x) => `${x.issuer ?? 'unknown issuer'} tx ${x.txid ?? '?'}`).join(', ')
      return { name, status: 'pass', detail: `transparency receipt verified (inclusion proof, statement hash, ${receipt.keySource} key): ${r}` }
    }
    case 'unknown-key': {
      const r = receipt.receipts.map((x) => `${x.issuer ?? 'unknown issuer'} kid ${x.kid}`).join(', ')
      const detail = `inclusion proof matches the statement, but no trusted key has the receipt's kid (${r}): signature unchecked (pass --transparency-keys)`
      return { name, status: required ? 'fail' : 'warn', detail }
    }
    case 'absent':
      return { name, status: required ? 'fail' : 'skip', detail: 'the endorsement carries no transparency receipt (older layout)' }
    case 'invalid':
      return { name, status: 'fail', detail: receipt.reason }
    case 'unchecked':
      return { name, status: required ? 'fail' : 'skip', detail: 'not checked: the endorsement did not verify' }
  }
}

/** An endorsement verified once and set against a report: the checks `skr verify` prints, and the view both commands show (null when it does not even decode). */
export interface UvmAppraisal { checks: Check[], view: UvmEndorsementView | null }

/** Verifies `cose` once (decoding, signature, chain, receipts) and sets it against `report` when it parsed. */
export function appraiseUvmEndorsement (cose: Buffer, report: AttestationReport | null, options: UvmCheckOptions): UvmAppraisal {
  const outcome = outcomeOf(cose, options)
  return { checks: checksOf(outcome, report, options), view: viewOf(outcome, report) }
}

function checksOf (outcome: Outcome, report: AttestationReport | null, options: UvmCheckOptions): Check[] {
  const { endorsement: e, verified, error, receipt } = outcome
  const checks: Check[] = []
  if (e === null || error !== null) {
    checks.push({ name: 'uvm-endorsement', status: 'fail', detail: error ?? 'unreadable' })
  } else {
    const root = cn(e.signerChain.at(-1)?.subject)
    checks.push({ name: 'uvm-endorsement', status: 'pass', detail: `${e.layout} layout, signed by ${cn(e.signerChain[0]?.subject)} (root ${root}) at ${iso(e.signingTime) ?? 'an unstated time'}; issuer ${e.issuer ?? '?'}` })
  }
  const usable = e !== null && error === null
  const feed = options.expectFeed ?? ACI_UVM_FEED
  checks.push(!usable
    ? { name: 'uvm-feed', status: 'skip', detail: 'the endorsement did not verify' }
    : e.feed === feed
      ? { name: 'uvm-feed', status: 'pass', detail: `feed ${feed}` }
      : { name: 'uvm-feed', status: 'fail', detail: `feed ${String(e.feed)} is not ${feed} (--expect-uvm-feed)` })
  if (!usable || report === null) {
    checks.push({ name: 'uvm-measurement', status: 'skip', detail: usable ? 'the report did not parse' : 'the endorsement did not verify' })
  } else {
    const measurement = report.measurement.toString('hex')
    checks.push(e.launchMeasurement === measurement
      ? { name: 'uvm-measurement', status: 'pass', detail: 'the endorsed launch measurement is the report\'s MEASUREMENT' }
      : { name: 'uvm-measurement', status: 'fail', detail: `endorsed ${String(e.launchMeasurement)}, report MEASUREMENT ${measurement}: the endorsement is for another UVM` })
  }
  const svn = usable && e.guestSvn !== null ? Number(e.guestSvn) : null
  // The endorsement's SVN numbers the UVM release in Microsoft's feed; the report's GUEST_SVN is
  // what the launch ID block set. Genuine ACI data carries different values (22 and 2 in
  // test/fixtures/vectors/azure-aci-milan), so they are shown side by side, and the check is a floor.
  const beside = `endorsement SVN ${svn ?? 'absent'}, report GUEST_SVN ${report?.guestSvn ?? 'n/a'}`
  if (options.expectMinSvn === undefined) checks.push({ name: 'uvm-svn', status: 'skip', detail: `${beside}; no floor requested (--expect-uvm-svn)` })
  else if (svn === null) checks.push({ name: 'uvm-svn', status: 'fail', detail: `${beside}: no verified SVN to compare with ${options.expectMinSvn}` })
  else checks.push({ name: 'uvm-svn', status: svn >= options.expectMinSvn ? 'pass' : 'fail', detail: `${beside}; want at least ${options.expectMinSvn}` })
  checks.push(receiptCheck(verified?.receipt ?? receipt, options))
  // Issuer, feed, subjects and receipt fields come from the file: no control or bidi character
  // reaches the operator's terminal.
  return checks.map((c) => ({ ...c, detail: oneLine(c.detail, { max: 1000 }) }))
}

function viewOf (outcome: Outcome, report: AttestationReport | null): UvmEndorsementView | null {
  const { endorsement: e, error, receipt } = outcome
  if (e === null) return null
  const { payload: _payload, signingTime, ...rest } = e
  return {
    ...rest,
    signingTime: iso(signingTime),
    verification: error === null ? 'verified' : error,
    receipt,
    measurementMatchesReport: report === null || e.launchMeasurement === null ? null : e.launchMeasurement === report.measurement.toString('hex'),
    reportGuestSvn: report?.guestSvn ?? null
  }
}

/** Table rows for a view, under the report's rows. */
export function uvmEndorsementRows (v: UvmEndorsementView): Array<[string, string]> {
  const receipt = v.receipt.status === 'verified' || v.receipt.status === 'unknown-key'
    ? `${v.receipt.status}: ${v.receipt.receipts.map((r) => `${r.issuer ?? '?'} tx ${r.txid ?? '?'}`).join(', ')}`
    : v.receipt.status === 'invalid' ? `invalid: ${v.receipt.reason}` : v.receipt.status
  const rows: Array<[string, string]> = [
    ['uvm endorsement', `${v.layout} layout; ${v.verification}`],
    ['  issuer', v.issuer ?? 'absent'],
    ['  feed', v.feed ?? 'absent'],
    ['  signed at', v.signingTime ?? 'absent'],
    ['  signer', v.signerChain.map((c) => cn(c.subject)).join(' <- ') || 'absent'],
    ['  launch measurement', `${v.launchMeasurement ?? 'absent'}${v.measurementMatchesReport === null ? '' : v.measurementMatchesReport ? ' (= MEASUREMENT)' : ' (differs from MEASUREMENT)'}`],
    ['  svn', `${v.guestSvn ?? 'absent'}${v.reportGuestSvn === null ? '' : ` (report GUEST_SVN ${v.reportGuestSvn})`}`],
    ['  receipt', receipt]
  ]
  // Every value but the layout comes from the file: no control or bidi character reaches the terminal.
  return rows.map(([label, value]) => [label, oneLine(value, { max: 1000 })])
}
