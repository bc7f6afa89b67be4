// `skr report`: prints every field of an attestation report, read fresh from this machine's
// SEV-SNP interface (or the simulated backend) or from a file (raw, hex or base64). Reserved bits
// and bytes that newer firmware sets are printed (`unknown bits`, `unknown fields`), never refused:
// only a wrong size, an unknown VERSION or broken signature padding stop it (docs/snp-report.md).
import { loadConfig, type Config } from '../config/config.ts'
import { decodeBase64Flexible } from '../encoding/base64.ts'
import { readDeviceReport } from '../ops/device-report.ts'
import { decodeReportInput, formatTable, reportRows, reportView } from '../ops/report-view.ts'
import { parseReport } from '../snp/abi.ts'
import { appraiseUvmEndorsement, uvmEndorsementRows, type UvmEndorsementView } from '../ops/uvm-endorsement-checks.ts'
import { securityContextEnv } from '../config/security-context-env.ts'
import { loadSecurityContext } from '../uvm/security-context.ts'
import type { FlagSpecs } from '../config/flags.ts'
import {
  helpText, parseCommandFlags, processIo, readUserFile, runOperatorCommand, takeRepeated, toJson, usageError, wantsHelp,
  type CommandEnv, type CommandIo
} from './operator-kit.ts'
import { readEndorsementFlag, UVM_REPEATED_FLAGS, UVM_SOURCE_FLAGS, uvmCheckOptions } from './uvm-flags.ts'

export const summary = 'print a decoded attestation report, from the device or a file'

const FLAGS: FlagSpecs = {
  file: { type: 'string', help: 'read the report from this file (1184 raw bytes, hex text or base64) instead of the device' },
  'runtime-data': { type: 'string', aliases: ['runtime_data'], help: 'base64 runtime data; REPORT_DATA = sha256(runtime data) ‖ 32 zero bytes (default: empty)' },
  attestation: { type: 'string', help: 'auto, tsm, sev-guest, sev or simulated (env SKR_ATTESTATION; default auto)' },
  generation: { type: 'string', help: 'Milan, Genoa or Turin: decode the TCBs of a version-2 report (no CPUID) with this layout' },
  hex: { type: 'boolean', help: 'print the raw report as hex (one line) instead of decoding it' },
  json: { type: 'boolean', help: 'print the decoded report as JSON (64-bit values and byte fields as hex strings)' },
  ...UVM_SOURCE_FLAGS
}

/** Hooks for tests: the filesystem root for security-context discovery. */
export interface ReportHooks { root?: string }

// On the device the endorsement comes with the security context; a context that cannot be read is
// a note on stderr, not a failure: the report itself is what was asked for.
async function securityContextEndorsement (config: Config, hooks: ReportHooks, io: CommandIo): Promise<Buffer | null> {
  try {
    return (await loadSecurityContext({ env: securityContextEnv(config), ...(hooks.root === undefined ? {} : { root: hooks.root }) })).referenceInfo
  } catch (err) {
    io.stderr(`skr report: note: the security context cannot be read: ${err instanceof Error ? err.message : String(err)}\n`)
    return null
  }
}

/** Runs `skr report`; see --help. */
export async function run (argv: readonly string[], env: CommandEnv, io: CommandIo = processIo, hooks: ReportHooks = {}): Promise<number> {
  return await runOperatorCommand('report', io, async () => {
    if (wantsHelp(argv)) {
      io.stdout(helpText('skr report [--file F [--generation G] | --runtime-data B64 [--attestation MODE]] [--uvm-endorsement F] [--hex | --json]', summary, FLAGS, [
        'The UVM endorsement (--uvm-endorsement, or the security context\'s reference-info-base64 when reading the device) is shown',
        'verified or not, with its measurement against MEASUREMENT, its SVN beside GUEST_SVN, its signer and its receipt.',
        'Exit 0 ok, 1 no report could be read or decoded, 2 usage error.'
      ]))
      return 0
    }
    const { rest, values: repeated } = takeRepeated(argv, [...UVM_REPEATED_FLAGS])
    const { values } = parseCommandFlags(rest, FLAGS)
    if (values.file !== undefined && (values['runtime-data'] !== undefined || values.attestation !== undefined)) {
      throw usageError('--file reads a saved report: --runtime-data and --attestation apply to the device only')
    }
    if (values.hex === 'true' && values.json === 'true') throw usageError('give --hex or --json, not both')
    // Usage is checked before any I/O, so a bad flag never costs a device request or a file read.
    const generation = values.generation
    if (generation !== undefined && generation !== 'Milan' && generation !== 'Genoa' && generation !== 'Turin') throw usageError('--generation must be Milan, Genoa or Turin')
    const uvmOptions = await uvmCheckOptions(values, repeated, new Date())
    let endorsement = await readEndorsementFlag(values)
    let raw: Buffer
    if (values.file !== undefined) {
      raw = decodeReportInput(await readUserFile(values.file, '--file'))
    } else {
      const runtimeData = values['runtime-data'] === undefined ? Buffer.alloc(0) : decodeBase64Flexible(values['runtime-data'])
      if (runtimeData === null) throw usageError('--runtime-data must be base64')
      const config = loadConfig(values.attestation === undefined ? [] : ['--attestation', values.attestation], env)
      raw = await readDeviceReport(config, runtimeData, hooks)
      endorsement ??= await securityContextEndorsement(config, hooks, io)
    }
    // Parsed even for --hex, so a malformed report is never passed on silently.
    const report = parseReport(raw, generation === undefined ? {} : { generation })
    // Shown, never refused: an endorsement that does not even decode is a note, as an unreadable security context is.
    let uvm: UvmEndorsementView | null = null
    if (endorsement !== null && values.hex !== 'true') {
      uvm = appraiseUvmEndorsement(endorsement, report, uvmOptions).view
      if (uvm === null) io.stderr('skr report: note: the UVM endorsement cannot be decoded (skr verify --uvm-endorsement says why)\n')
    }
    if (values.hex === 'true') io.stdout(report.raw.toString('hex') + '\n')
    else if (values.json === 'true') io.stdout(toJson(uvm === null ? reportView(report) : { ...reportView(report), uvmEndorsement: uvm }))
    else io.stdout(formatTable([...reportRows(reportView(report)), ...(uvm === null ? [] : uvmEndorsementRows(uvm))]))
    return 0
  })
}
