// What the operator commands (report, verify, policy, import-key) share: injectable output
// streams (tests run commands in-process), the one-line error format
// `skr <cmd>: <code>: <message>` with its exit codes (0 ok, 1 the operation failed, 2 usage or
// configuration), flags that may repeat (flags.ts keeps only the last value of a flag), and
// reading the files users name. Never prints anything itself except through `io`.
import { readFile } from 'node:fs/promises'
import { normaliseFingerprint } from '../config/config.ts'
import { ConfigInvalid, isSidecarError } from '../errors.ts'
import { FlagError, formatFlags, parseFlags, type FlagSpecs, type ParsedFlags } from '../config/flags.ts'
import { untrustedText } from '../text/untrusted.ts'

/** Where a command writes; tests capture both. */
export interface CommandIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
}

/** The environment a command receives from main.ts. */
export type CommandEnv = Readonly<Record<string, string | undefined>>

/** The process's own streams. */
export const processIo: CommandIo = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) }
}

/** Exit codes of the operator commands. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2 })

/** A usage or configuration mistake: exit 2. */
export function usageError (message: string): ConfigInvalid {
  return new ConfigInvalid(message)
}

/** True when argv asks for help (`-h`, `--help`, `-help`) before any `--`. */
export function wantsHelp (argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false
    if (arg === '-h' || arg === '--help' || arg === '-help') return true
  }
  return false
}

/** The --help text of a command. */
export function helpText (usage: string, summary: string, specs: FlagSpecs, notes: readonly string[] = []): string {
  return [`usage: ${usage}`, '', summary, '', 'flags:', formatFlags(specs), ...(notes.length === 0 ? [] : ['', ...notes]), ''].join('\n')
}

/**
 * Removes every occurrence of the named string flags from argv and returns their values in order
 * (`--name v`, `--name=v`, `-name v`, case-insensitive), so they may repeat. Stops at `--`.
 */
export function takeRepeated (argv: readonly string[], names: readonly string[]): { rest: string[], values: Record<string, string[]> } {
  const wanted = new Map(names.map((n) => [n.toLowerCase(), n]))
  const values: Record<string, string[]> = Object.fromEntries(names.map((n) => [n, [] as string[]]))
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') {
      rest.push(...argv.slice(i))
      break
    }
    const m = /^--?([^=]+)(?:=([\s\S]*))?$/.exec(arg)
    const name = m === null ? undefined : wanted.get((m[1] ?? '').toLowerCase())
    if (m === null || name === undefined) {
      rest.push(arg)
      continue
    }
    let value = m[2]
    if (value === undefined) {
      value = argv[i + 1]
      if (value === undefined) throw usageError(`flag ${arg} needs a value`)
      i++
    }
    values[name]?.push(value)
  }
  return { rest, values }
}

/** parseFlags with FlagError turned into a usage error, and positionals refused. */
export function parseCommandFlags (argv: readonly string[], specs: FlagSpecs): ParsedFlags {
  let parsed: ParsedFlags
  try {
    parsed = parseFlags(argv, specs)
  } catch (err) {
    if (err instanceof FlagError) throw usageError(err.message)
    throw err
  }
  if (parsed.positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(parsed.positionals[0]?.slice(0, 60))}`)
  return parsed
}

/** A SHA-256 certificate fingerprint given to `flag` (hex, colons optional), as AA:BB:…; a usage error otherwise. */
export function fingerprintFlag (raw: string, flag: string): string {
  const fp = normaliseFingerprint(raw.trim())
  if (!/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(fp)) throw usageError(`${flag} must be a SHA-256 fingerprint (64 hex digits, colons optional)`)
  return fp
}

/** Reads a file the user named; a missing or unreadable file is a usage error naming the flag. */
export async function readUserFile (path: string, flag: string): Promise<Buffer> {
  if (path === '') throw usageError(`${flag} needs a file name`)
  try {
    return await readFile(path)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    throw usageError(`${flag}: cannot read ${path} (${typeof code === 'string' ? code : 'unknown error'})`)
  }
}

/** JSON with bigints as 0x-hex strings (every view converts them first; this is a safety net). */
export function toJson (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => typeof v === 'bigint' ? `0x${v.toString(16)}` : v, 2) + '\n'
}

/**
 * Runs a command body and turns what it throws into the one-line error and an exit code:
 * ConfigInvalid → 2, any other SidecarError → 1 with its code, anything else → 1 as ERR_INTERNAL
 * (with its message: operator commands hold no secrets in exception messages).
 */
export async function runOperatorCommand (name: string, io: CommandIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body()
  } catch (err) {
    if (isSidecarError(err)) {
      io.stderr(`skr ${name}: ${err.code}: ${messageLine(err.message)}\n`)
      return err.code === 'ERR_CONFIG_INVALID' ? EXIT.usage : EXIT.failed
    }
    io.stderr(`skr ${name}: ERR_INTERNAL: ${messageLine(err instanceof Error ? err.message : String(err))}\n`)
    return EXIT.failed
  }
}

// Line breaks fold with the indentation around them; any other control (ESC, C1, bidi) becomes a
// space, and a token an upstream echoed in its error is redacted.
function messageLine (text: string): string {
  return untrustedText(text.replace(/\s*[\r\n]+\s*/g, ' '), { trim: true })
}
