// The table of skr's commands (name, one-line summary, lazy loader) and the rule that reads a
// command line. Apart from main.ts, which runs on import, so tests can check the table against
// the modules. It imports nothing heavy: `skr --help` and `skr --version` load no command, and
// `serve` loads only its own code (start-up must not pay for the other commands).
import { packagePath } from '../package-root.ts'

/** A command module: runs with its own argv and the environment, resolves to an exit code. */
export interface CommandModule {
  run (argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number>
  readonly summary: string
}

interface Command {
  /** The module's own `summary`, repeated here so --help loads nothing (a test keeps them equal). */
  readonly summary: string
  readonly load: () => Promise<CommandModule>
}

/** Every command, in the order `skr --help` lists them. */
export const COMMANDS = {
  serve: { summary: 'serve the reference-compatible HTTP API (default command)', load: async () => await import('./serve.ts') },
  emulate: { summary: 'run the emulated Azure and a sidecar until Ctrl-C, printing a curl line for each route', load: async () => await import('./emulate.ts') },
  demo: { summary: 'run a full key release against the embedded emulators (simulated attestation)', load: async () => await import('./demo.ts') },
  'import-key': { summary: 'create or import an exportable key with a release policy (Key Vault, Managed HSM, emulator)', load: async () => await import('./import-key.ts') },
  policy: { summary: 'print the key release policy for this environment (ACI or AKS preset)', load: async () => await import('./policy.ts') },
  explain: { summary: 'say why a key is released or not: evaluate its release policy against the claims skr presents', load: async () => await import('./explain.ts') },
  token: { summary: 'get an Entra ID access token for a resource from the identity skr would use (or --decode its claims)', load: async () => await import('./token.ts') },
  report: { summary: 'print a decoded attestation report, from the device or a file', load: async () => await import('./report.ts') },
  verify: { summary: 'verify a saved attestation report and its AMD certificate chain offline', load: async () => await import('./verify.ts') },
  wrap: { summary: 'wrap a file for the gRPC key provider (RSA-OAEP-SHA256 annotation packet, as the reference)', load: async () => await import('./wrap.ts') },
  healthcheck: { summary: 'probe a running skr (GET /status on loopback); exit 0 when healthy, for exec probes', load: async () => await import('./healthcheck.ts') }
} as const satisfies Readonly<Record<string, Command>>

export type CommandName = keyof typeof COMMANDS

/** What a command line asks for. */
export type Resolution =
  | { readonly kind: 'run', readonly name: CommandName, readonly args: readonly string[] }
  | { readonly kind: 'help', readonly topic: CommandName | null }
  | { readonly kind: 'version' }
  | { readonly kind: 'unknown', readonly word: string, readonly suggestion: CommandName | null }

// Go's flag package answers -h, -help and --help with its usage; skr adds `skr help [command]`.
const HELP = new Set(['-h', '-help', '--help', 'help'])
// -v as node and npm have it; -version because every skr flag may be written Go-style; `version`
// as `go version` (a bare word that would otherwise be an unknown command).
const VERSION = new Set(['-v', '-version', '--version', 'version'])

function isCommand (word: string): word is CommandName {
  return Object.hasOwn(COMMANDS, word)
}

/** True when `word` is base64 (either alphabet) of a JSON value: skr.sh's $1, SkrSideCarArgs. */
function isBase64Json (word: string): boolean {
  try {
    JSON.parse(Buffer.from(word, 'base64').toString('utf8'))
    return true
  } catch {
    return false
  }
}

/**
 * True when a first argument can only have been meant as a command: a lowercase word (letters,
 * digits, '-') that is not base64 JSON, or a known name in other case. It cannot be skr.sh's $1:
 * raw JSON starts with '{', and base64 of a JSON object has an uppercase letter (`{"` is `eyJ`)
 * unless it is as short as `e30` (`{}`), which decodes as JSON and so stays a positional. Numbers
 * (a port) do not start with a letter.
 */
export function isCommandWord (word: string): boolean {
  if (isCommand(word.toLowerCase())) return true
  return /^[a-z][a-z0-9-]*$/.test(word) && !isBase64Json(word)
}

function editDistance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = row
  }
  return prev[b.length] as number
}

/** The command a mistyped word most likely meant: same letters in other case, a prefix, or at most two edits away. */
export function suggestCommand (word: string): CommandName | null {
  const w = word.toLowerCase()
  const names = Object.keys(COMMANDS) as CommandName[]
  if (isCommand(w)) return w
  if (w.length >= 3) {
    const prefixed = names.find(n => n.startsWith(w))
    if (prefixed !== undefined) return prefixed
  }
  let best: CommandName | null = null
  let bestDistance = 3
  for (const name of names) {
    const d = editDistance(w, name)
    if (d < bestDistance) { best = name; bestDistance = d }
  }
  return best
}

/**
 * Reads a command line. The reference's invocations mean `serve`, unchanged: flags only
 * (`skr -port 8080 -base64 …`), skr.sh's positional arguments (`skr "$SkrSideCarArgs" "$Port"`:
 * base64 or raw JSON, then a port) and nothing at all; `-infile` anywhere means `wrap`, as the
 * reference binary's `skr -infile F -keypath K -outfile O`. A first argument that is neither a
 * known command nor something skr.sh could pass (see isCommandWord) is an unknown command.
 */
export function resolveCommand (argv: readonly string[]): Resolution {
  const first = argv[0]
  if (first === undefined) return { kind: 'run', name: 'serve', args: [] }
  if (HELP.has(first)) {
    const topic = first === 'help' ? argv[1] : undefined
    if (topic === undefined) return { kind: 'help', topic: null }
    return isCommand(topic) ? { kind: 'help', topic } : { kind: 'unknown', word: topic, suggestion: suggestCommand(topic) }
  }
  if (VERSION.has(first)) return { kind: 'version' }
  if (isCommand(first)) return { kind: 'run', name: first, args: argv.slice(1) }
  if (isCommandWord(first)) return { kind: 'unknown', word: first, suggestion: suggestCommand(first) }
  if (argv.some(a => /^--?infile(=|$)/i.test(a))) return { kind: 'run', name: 'wrap', args: argv }
  return { kind: 'run', name: 'serve', args: argv }
}

/** The one-paragraph error for an unknown command (main.ts exits 2 after it, as Go's flag errors do). */
export function unknownCommandMessage (word: string, suggestion: CommandName | null): string {
  // A word, not a secret: isCommandWord accepted only letters, digits and '-'. Cut in case it is long.
  const shown = word.length > 40 ? `${word.slice(0, 40)}…` : word
  const hint = suggestion === null ? '' : ` Did you mean \`skr ${suggestion}\`?`
  return `skr: unknown command "${shown}".${hint} Run \`skr --help\` for the commands.`
}

/** `skr --help`. */
export function usage (): string {
  const names = Object.keys(COMMANDS) as CommandName[]
  const width = Math.max(...names.map(n => n.length)) + 2
  return [
    'usage: skr [command] [flags]',
    '',
    'commands:',
    ...names.map(n => `  ${n.padEnd(width)}${COMMANDS[n].summary}`),
    '',
    'With no command skr serves, like the reference sidecar; its invocations work unchanged:',
    '  skr -port 8080 -base64 <SkrSideCarArgs>    flags (Go-style or --kebab-case)',
    '  skr <SkrSideCarArgs> [<Port>]              the reference skr.sh\'s positional arguments',
    '  skr -infile F -keypath K -outfile O        wrap a file (skr wrap)',
    '',
    'skr <command> --help (or skr help <command>) shows the flags of a command; skr --version the version.'
  ].join('\n')
}

/** skr's version from its package.json ('unknown' when that cannot be read). */
export function version (): string {
  try {
    // Not an ES module import of node:fs: see src/package-root.ts.
    const pkg = JSON.parse(process.getBuiltinModule('node:fs').readFileSync(packagePath('package.json'), 'utf8')) as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/** `skr --version`: skr's version, then the Node.js that runs it (both matter in a bug report). */
export function versionLine (): string {
  return `skr ${version()} (Node.js ${process.version})`
}
