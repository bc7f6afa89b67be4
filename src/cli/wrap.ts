// `skr wrap`: the reference's offline wrap tool (`skr -infile f -keypath k -outfile o`).
// Reads `<keypath>-info.json` and the public key PEM it names, wraps the file's bytes with
// RSA-OAEP-SHA256 and writes the base64 annotation packet, byte-compatible with the
// reference's output, so either tool's `wrapped` file unwraps through either sidecar.
import { readFile, writeFile } from 'node:fs/promises'
import { isSidecarError } from '../errors.ts'
import { encodeWrappedFile, kidFromKeyPath } from '../grpc/annotation.ts'
import { wrapForKeyPath } from '../grpc/wrap.ts'
import { FlagError, formatFlags, parseFlags, type FlagSpecs } from '../config/flags.ts'

/** One line for `skr help`. */
export const summary = 'wrap a file for the gRPC key provider (RSA-OAEP-SHA256 annotation packet, as the reference)'

/** The wrap command's flags, spelled as the reference's Go flags (one or two dashes). */
export const WRAP_FLAGS: FlagSpecs = {
  infile: { type: 'string', help: 'the file whose content is wrapped' },
  keypath: { type: 'string', help: 'the wrapping key: <keypath>-info.json names its public key PEM and endpoints; the key id is its last path element' },
  outfile: { type: 'string', help: 'where to write the wrapped data (base64 annotation packet)' },
  json: { type: 'boolean', help: 'print {"outfile", "kid", "bytes"} on stdout when done' }
}

function usage (): string {
  return `usage: skr wrap --infile <file> --keypath <path/to/key> --outfile <file>\n\n${formatFlags(WRAP_FLAGS)}\n`
}

/** Runs the wrap; resolves to the exit code (0 done, 1 failed, 2 bad usage). */
export async function run (argv: readonly string[], _env: Readonly<Record<string, string | undefined>>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage())
    return 0
  }
  let values: Readonly<Record<string, string>>
  try {
    const parsed = parseFlags(argv, WRAP_FLAGS)
    if (parsed.positionals.length > 0) throw new FlagError(`unexpected argument ${parsed.positionals[0] ?? ''}`)
    values = parsed.values
  } catch (err) {
    if (!(err instanceof FlagError)) throw err
    process.stderr.write(`skr wrap: ${err.message}\n${usage()}`)
    return 2
  }
  const { infile, keypath, outfile } = values
  const missing = (['infile', 'keypath', 'outfile'] as const).filter(name => (values[name] ?? '') === '')
  if (infile === undefined || keypath === undefined || outfile === undefined || missing.length > 0) {
    process.stderr.write(`skr wrap: missing ${missing.map(n => `--${n}`).join(', ')}\n${usage()}`)
    return 2
  }

  let data: Buffer
  try {
    data = await readFile(infile)
  } catch (err) {
    process.stderr.write(`skr wrap: cannot read input file ${infile} (${errnoOf(err)})\n`)
    return 1
  }
  let packetJson: Buffer
  try {
    packetJson = (await wrapForKeyPath(data, keypath)).packetJson
  } catch (err) {
    if (!isSidecarError(err)) throw err
    process.stderr.write(`skr wrap: ${err.code}: ${err.message}\n`)
    return 1
  }
  try {
    // 0644 and no trailing newline, as the reference writes it.
    await writeFile(outfile, encodeWrappedFile(packetJson), { mode: 0o644 })
  } catch (err) {
    process.stderr.write(`skr wrap: cannot write ${outfile} (${errnoOf(err)})\n`)
    return 1
  }
  if (values.json === 'true') {
    process.stdout.write(JSON.stringify({ outfile, kid: kidFromKeyPath(keypath), bytes: data.length }) + '\n')
  } else {
    process.stderr.write(`skr wrap: the wrapped data is saved to ${outfile}\n`)
  }
  return 0
}

function errnoOf (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'error'
}
