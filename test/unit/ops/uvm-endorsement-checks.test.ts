import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { createUvmEndorser } from '../../../src/emulator/uvm-endorser.ts'
import { encode, Tagged } from 'cborg'
import { appraiseUvmEndorsement, decodeEndorsementInput, uvmEndorsementRows, type UvmCheckOptions } from '../../../src/ops/uvm-endorsement-checks.ts'
import { hasControl } from '../../../src/text/untrusted.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const GENUINE = readFileSync(join(repoRoot, 'test', 'fixtures', 'vectors', 'scitt-ccf-ledger', 'uvm_0.2.10.cose'))
const now = new Date('2026-12-01T00:00:00Z')
const status = (checks: Array<{ name: string, status: string }>): Record<string, string> => Object.fromEntries(checks.map((c) => [c.name, c.status]))
const uvmEndorsementChecks = (cose: Buffer, report: null, options: UvmCheckOptions): Array<{ name: string, status: string, detail: string }> => appraiseUvmEndorsement(cose, report, options).checks
const uvmEndorsementView = (cose: Buffer, report: null, options: UvmCheckOptions): ReturnType<typeof appraiseUvmEndorsement>['view'] => appraiseUvmEndorsement(cose, report, options).view

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

t.test('the view never throws: a verification failure is shown, unreadable bytes give no view', async (t) => {
  const endorser = await createUvmEndorser()
  const cose = endorser.endorse({ launchMeasurement: Buffer.alloc(48, 7), guestSvn: '5' })
  const view = uvmEndorsementView(cose, null, { now })
  if (view === null) throw new Error('a decodable endorsement has a view')
  t.match(view, { layout: 'cwt-claims', guestSvn: '5', receipt: { status: 'unchecked' }, measurementMatchesReport: null })
  t.match(view.verification, /root/)
  t.ok(uvmEndorsementRows(view).some(([label, value]) => label === '  receipt' && value === 'unchecked'))
  t.equal(uvmEndorsementView(Buffer.from([0xd2, 0x84, 0x00]), null, { now }), null, 'undecodable: no view, never a throw')
  const unreadable = status(uvmEndorsementChecks(Buffer.from([0xd2, 0x84, 0x00]), null, { now }))
  t.match(unreadable, { 'uvm-endorsement': 'fail', 'uvm-receipt': 'skip' })
})

// A hostile, unsigned endorsement: its text must reach neither the terminal raw nor crash the view.
t.test('text from an unverified endorsement is shown without control characters; absurd times are refused', async (t) => {
  const build = (header: Map<unknown, unknown>): Buffer => Buffer.from(encode(new Tagged(18, [encode(header), new Map(), Buffer.from('{}'), Buffer.from([1])])))
  const hostile = build(new Map<unknown, unknown>([[1, -38], [3, 'application/json'], ['iss', 'did:x509:\u001b[2J\u202eevil'], ['feed', 'feed\r\nforged: line']]))
  const view = uvmEndorsementView(hostile, null, { now })
  t.ok(view !== null)
  const rows = uvmEndorsementRows(view as NonNullable<typeof view>)
  t.notOk(rows.some(([, value]) => hasControl(value)), 'no control or bidi character in any row')
  t.ok(rows.some(([label, value]) => label === '  feed' && value.includes('forged: line')), 'the text is still shown')
  const absurd = build(new Map<unknown, unknown>([[1, -38], [3, 'application/json'], ['signingtime', new Tagged(1, 9e15)]]))
  t.equal(uvmEndorsementView(absurd, null, { now }), null, 'a time no Date holds is refused as malformed, not thrown as a RangeError')
  t.match(status(uvmEndorsementChecks(absurd, null, { now })), { 'uvm-endorsement': 'fail' })
})
