// `skr verify`: verifies a saved report and its AMD chain offline and prints every check (chain to
// a pinned ARK, signature, TCB, chip id, THIM tcbm, reserved bits and bytes the report sets, debug,
// and the optional expectations). Exit 0 only when nothing failed; a warning does not fail.
import { AMD_ARK_FINGERPRINTS } from '../certs/amd-roots.ts'
import type { ErrorCode } from '../errors.ts'
import { chainFromFiles } from '../ops/chain-input.ts'
import { decodeReportInput, formatTable, reportView } from '../ops/report-view.ts'
import { verifyOffline } from '../ops/verify-offline.ts'
import { appraiseUvmEndorsement, type UvmAppraisal } from '../ops/uvm-endorsement-checks.ts'
import type { FlagSpecs } from '../config/flags.ts'
import {
  EXIT, fingerprintFlag, helpText, parseCommandFlags, processIo, readUserFile, runOperatorCommand, takeRepeated, toJson, usageError, wantsHelp,
  type CommandEnv, type CommandIo
} from './operator-kit.ts'
import { readEndorsementFlag, UVM_EXPECT_FLAGS, UVM_REPEATED_FLAGS, UVM_SOURCE_FLAGS, uvmCheckOptions } from './uvm-flags.ts'

export const summary = 'verify a saved attestation report and its AMD certificate chain offline'

const FLAGS: FlagSpecs = {
  report: { type: 'string', help: 'the report file (1184 raw bytes, hex text or base64)' },
  chain: { type: 'string', help: 'PEM bundle VCEK+ASK+ARK, or ASK+ARK with --vcek, or a THIM JSON document / host-amd-cert-base64 file' },
  vcek: { type: 'string', help: 'the VCEK (PEM or DER) when --chain holds only ASK+ARK' },
  'trust-ark': { type: 'string', help: 'also trust this ARK SHA-256 fingerprint (AA:BB:… or hex) besides AMD\'s; repeatable' },
  now: { type: 'string', help: 'check certificate validity at this ISO-8601 time instead of now' },
  'expect-host-data': { type: 'string', help: 'HOST_DATA must equal these 32 bytes (hex)' },
  'expect-measurement': { type: 'string', help: 'MEASUREMENT must equal these 48 bytes (hex)' },
  'expect-report-data': { type: 'string', help: 'REPORT_DATA must start with these bytes (hex, up to 64) and be zero after them' },
  'allow-debug': { type: 'boolean', help: 'accept a report whose POLICY allows debugging (refused by default)' },
  'refuse-unknown': { type: 'boolean', help: 'fail when the report sets a reserved bit or byte or a reserved SIGNING_KEY/SIGNATURE_ALGO value (default: a warning)' },
  ...UVM_SOURCE_FLAGS,
  ...UVM_EXPECT_FLAGS,
  json: { type: 'boolean', help: 'print {ok, checks, chainForm, report, uvmEndorsement} as JSON' }
}

function hexOption (raw: string | undefined, flag: string, size: { exact?: number, max?: number }): Buffer | undefined {
  if (raw === undefined) return undefined
  const hex = raw.trim().replace(/^0x/i, '')
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) throw usageError(`${flag} must be hex (an even number of hex digits)`)
  const bytes = Buffer.from(hex, 'hex')
  if (size.exact !== undefined && bytes.length !== size.exact) throw usageError(`${flag} must be ${size.exact} bytes (${2 * size.exact} hex digits), got ${bytes.length}`)
  if (size.max !== undefined && bytes.length > size.max) throw usageError(`${flag} must be at most ${size.max} bytes, got ${bytes.length}`)
  return bytes
}

function nowOption (raw: string | undefined): Date {
  if (raw === undefined) return new Date()
  const now = new Date(raw)
  if (Number.isNaN(now.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(raw)) throw usageError('--now must be an ISO-8601 date or time (2024-06-01 or 2024-06-01T12:00:00Z)')
  return now
}

/** Runs `skr verify`; see --help. */
export async function run (argv: readonly string[], _env: CommandEnv, io: CommandIo = processIo): Promise<number> {
  return await runOperatorCommand('verify', io, async () => {
    if (wantsHelp(argv)) {
      io.stdout(helpText('skr verify --report F --chain PEM [--vcek CERT] [--trust-ark FP ...] [--now ISO] [--expect-* HEX] [--allow-debug] [--refuse-unknown] [--uvm-endorsement F [--expect-uvm-* V] [--require-receipt]] [--json]', summary, FLAGS, [
        'Trusted roots: AMD\'s Milan, Genoa and Turin ARKs, plus every --trust-ark (e.g. skr\'s emulated ARK for simulated reports).',
        'With --uvm-endorsement: the endorsement (either layout) is verified to Microsoft\'s signing root (plus --trust-uvm-root), its measurement',
        'must be the report\'s MEASUREMENT and its feed ContainerPlat-AMD-UVM; a transparency receipt is checked against Microsoft\'s pinned keys',
        '(plus --transparency-keys): one under an unknown key is a warning unless --require-receipt.',
        'Reserved bits and bytes set by newer firmware are shown as a warning (check unknown-fields) unless --refuse-unknown.',
        'Exit 0 when no check failed (warnings allowed), 1 when any failed or an input is malformed, 2 usage error.'
      ]))
      return 0
    }
    const { rest, values: repeated } = takeRepeated(argv, ['trust-ark', ...UVM_REPEATED_FLAGS])
    const { values } = parseCommandFlags(rest, FLAGS)
    if (values.report === undefined) throw usageError('--report is required')
    if (values.chain === undefined) throw usageError('--chain is required')
    const options = {
      trustedArkFingerprints: [...Object.values(AMD_ARK_FINGERPRINTS), ...(repeated['trust-ark'] ?? []).map((raw) => fingerprintFlag(raw, '--trust-ark'))],
      now: nowOption(values.now),
      allowDebug: values['allow-debug'] === 'true',
      refuseUnknown: values['refuse-unknown'] === 'true',
      expectHostData: hexOption(values['expect-host-data'], '--expect-host-data', { exact: 32 }),
      expectMeasurement: hexOption(values['expect-measurement'], '--expect-measurement', { exact: 48 }),
      expectReportData: hexOption(values['expect-report-data'], '--expect-report-data', { max: 64 })
    }
    const reportFile = await readUserFile(values.report, '--report')
    const chainFile = await readUserFile(values.chain, '--chain')
    const vcekFile = values.vcek === undefined ? undefined : await readUserFile(values.vcek, '--vcek')
    const uvmOptions = await uvmCheckOptions(values, repeated, options.now)
    const endorsement = await readEndorsementFlag(values)
    const reportBytes = decodeReportInput(reportFile)
    const input = chainFromFiles(chainFile, vcekFile)
    const outcome = verifyOffline(reportBytes, input.chain, {
      trustedArkFingerprints: options.trustedArkFingerprints,
      now: options.now,
      allowDebug: options.allowDebug,
      refuseUnknown: options.refuseUnknown,
      tcbm: input.tcbm,
      ...(options.expectHostData === undefined ? {} : { expectHostData: options.expectHostData }),
      ...(options.expectMeasurement === undefined ? {} : { expectMeasurement: options.expectMeasurement }),
      ...(options.expectReportData === undefined ? {} : { expectReportData: options.expectReportData })
    })
    let uvm: UvmAppraisal | null = null
    if (endorsement !== null) {
      uvm = appraiseUvmEndorsement(endorsement, outcome.report, uvmOptions)
      outcome.checks.push(...uvm.checks)
      outcome.ok = outcome.checks.every((c) => c.status !== 'fail')
    }
    const failed = outcome.checks.filter((c) => c.status === 'fail')
    const warned = outcome.checks.filter((c) => c.status === 'warn')
    const warnings = warned.length === 0 ? '' : ` (${warned.length} warning${warned.length === 1 ? '' : 's'}: ${warned.map((c) => c.name).join(', ')})`
    if (values.json === 'true') {
      io.stdout(toJson({
        ok: outcome.ok,
        checks: outcome.checks,
        chainForm: input.form,
        report: outcome.report === null ? null : reportView(outcome.report),
        uvmEndorsement: uvm?.view ?? null
      }))
    } else {
      io.stdout(formatTable(outcome.checks.map((c) => [c.name, `${c.status.padEnd(4)}  ${c.detail}`])))
      io.stdout(outcome.ok ? `result: PASS${warnings}\n` : `result: FAIL (${failed.length} check${failed.length === 1 ? '' : 's'} failed)\n`)
    }
    if (!outcome.ok) {
      // Only the endorsement failed: say so with its own code, so scripts can tell the two apart.
      const code: ErrorCode = failed.every((c) => c.name.startsWith('uvm-')) ? 'ERR_UVM_ENDORSEMENT_INVALID' : 'ERR_SNP_REPORT_UNVERIFIED'
      io.stderr(`skr verify: ${code}: failed: ${failed.map((c) => c.name).join(', ')}\n`)
      return EXIT.failed
    }
    return EXIT.ok
  })
}
