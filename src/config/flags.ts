// A command-line parser that accepts what Go's `flag` package accepts (`-port 8080`,
// `-port=8080`, `--port 8080`, bare `-flag` for booleans), because the reference sidecar's
// manifests and ARM templates pass flags that way, plus kebab-case aliases for people.
// node:util parseArgs cannot do single-dash long options, hence this small parser.

export interface FlagSpec {
  readonly type: 'string' | 'boolean'
  /** Other spellings, without dashes (e.g. `server-type` for `server_type`). */
  readonly aliases?: readonly string[]
  /** A one-line description for --help. */
  readonly help: string
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>

export interface ParsedFlags {
  /** Values by canonical flag name; booleans as 'true' / 'false'. */
  readonly values: Readonly<Record<string, string>>
  readonly positionals: readonly string[]
}

/** A flag the program does not know, or a value that is missing or malformed. */
export class FlagError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'FlagError'
  }
}

const BOOL_TRUE = new Set(['1', 't', 'true', 'yes', 'on'])
const BOOL_FALSE = new Set(['0', 'f', 'false', 'no', 'off'])

/** Parses a boolean the way Go's strconv.ParseBool does (plus yes/no/on/off); null if neither. */
export function parseBool (value: string): boolean | null {
  const v = value.trim().toLowerCase()
  if (BOOL_TRUE.has(v)) return true
  if (BOOL_FALSE.has(v)) return false
  return null
}

function indexSpecs (specs: FlagSpecs): Map<string, string> {
  const byName = new Map<string, string>()
  for (const [name, spec] of Object.entries(specs)) {
    byName.set(name.toLowerCase(), name)
    for (const alias of spec.aliases ?? []) byName.set(alias.toLowerCase(), name)
  }
  return byName
}

/** Parses argv (without the node binary, script and command) against the given specs. */
export function parseFlags (argv: readonly string[], specs: FlagSpecs): ParsedFlags {
  const byName = indexSpecs(specs)
  const values: Record<string, string> = {}
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg)
      continue
    }
    const body = arg.replace(/^--?/, '')
    const eq = body.indexOf('=')
    const rawName = eq === -1 ? body : body.slice(0, eq)
    const name = byName.get(rawName.toLowerCase())
    if (name === undefined) throw new FlagError(`unknown flag ${arg.split('=')[0]}`)
    const spec = specs[name] as FlagSpec
    if (spec.type === 'boolean') {
      if (eq === -1) {
        values[name] = 'true'
      } else {
        const b = parseBool(body.slice(eq + 1))
        if (b === null) throw new FlagError(`flag -${rawName} wants true or false`)
        values[name] = String(b)
      }
      continue
    }
    if (eq !== -1) {
      values[name] = body.slice(eq + 1)
      continue
    }
    const next = argv[i + 1]
    if (next === undefined) throw new FlagError(`flag -${rawName} needs a value`)
    values[name] = next
    i++
  }
  return { values, positionals }
}

/** Renders the flags for --help, one per line. */
export function formatFlags (specs: FlagSpecs): string {
  return Object.entries(specs).map(([name, spec]) => {
    const names = [name, ...(spec.aliases ?? [])].map(n => (n.length === 1 ? `-${n}` : `--${n}`)).join(', ')
    return `  ${names}${spec.type === 'string' ? ' <value>' : ''}\n      ${spec.help}`
  }).join('\n')
}
