import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { createUvmEndorser } from '../../../src/emulator/uvm-endorser.ts'
import { decodeEndorsementInput, uvmEndorsementChecks, uvmEndorsementRows, uvmEndorsementView } from '../../../src/ops/uvm-endorsement-checks.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const GENUINE = readFileSync(join(repoRoot, 'test', 'fixtures', 'vectors', 'scitt-ccf-ledger', 'uvm_0.2.10.cose'))
const now = new Date('2026-12-01T00:00:00Z')
const status = (checks: Array<{ name: string, status: string }>): Record<string, string> => Object.fromEntries(checks.map((c) => [c.name, c.status]))

t.test('input forms: raw, base64 (the security context\'s), hex; anything else is refused', async (t) => {
  t.same(decodeEndorsementInput(GENUINE), GENUINE)
  t.same(decodeEndorsementInput(Buffer.from(GENUINE.toString('base64') + '\n')), GENUINE)
  t.same(decodeEndorsementInput(Buffer.from(GENUINE.toString('base64url'))), GENUINE)
  t.same(decodeEndorsementInput(Buffer.from(GENUINE.toString('hex').replace(/.{64}/g, '$&\n'))), GENUINE)
  t.throws(() => decodeEndorsementInput(Buffer.from('hello world')), { code: 'ERR_UVM_ENDORSEMENT_INVALID' })
  t.throws(() => decodeEndorsementInput(Buffer.from('aGVsbG8=')), { code: 'ERR_UVM_ENDORSEMENT_INVALID' }, 'base64 of something else')
})

t.test('checks without a report, and the receipt rules', async (t) => {
  t.match(status(uvmEndorsementChecks(GENUINE, null, { now })), {
    'uvm-endorsement': 'pass', 'uvm-feed': 'pass', 'uvm-measurement': 'skip', 'uvm-svn': 'skip', 'uvm-receipt': 'pass'
  })
  t.match(status(uvmEndorsementChecks(GENUINE, null, { now, expectMinSvn: 104 })), { 'uvm-svn': 'pass' })
  t.match(status(uvmEndorsementChecks(GENUINE, null, { now, expectMinSvn: 105 })), { 'uvm-svn': 'fail' })
  t.match(status(uvmEndorsementChecks(GENUINE, null, { now, transparencyKeys: [] })), { 'uvm-receipt': 'warn' })
  t.match(status(uvmEndorsementChecks(GENUINE, null, { now, transparencyKeys: [], requireReceipt: true })), { 'uvm-receipt': 'fail' })
  t.match(status(uvmEndorsementChecks(GENUINE, null, { now, trustedRootFingerprints: ['00'] })), {
    'uvm-endorsement': 'fail', 'uvm-feed': 'skip', 'uvm-measurement': 'skip', 'uvm-receipt': 'skip'
  })
})

t.test('the view never throws on a verification failure, only on unreadable bytes', async (t) => {
  const endorser = await createUvmEndorser()
  const cose = endorser.endorse({ launchMeasurement: Buffer.alloc(48, 7), guestSvn: '5' })
  const view = uvmEndorsementView(cose, null, { now })
  t.match(view, { layout: 'cwt-claims', guestSvn: '5', receipt: { status: 'unchecked' }, measurementMatchesReport: null })
  t.match(view.verification, /root/)
  t.ok(uvmEndorsementRows(view).some(([label, value]) => label === '  receipt' && value === 'unchecked'))
  t.throws(() => uvmEndorsementView(Buffer.from([0xd2, 0x84, 0x00]), null, { now }), { code: 'ERR_UVM_ENDORSEMENT_INVALID' })
})
