// skr's entry point and the only place that calls process.exit. One binary for every
// command; serving is the default, so the reference's invocations (`skr -port 8080 -base64 …`,
// or skr.sh's positional arguments) keep working unchanged.
import { isSidecarError } from './errors.ts'

/** A command module: runs with its own argv and the environment, resolves to an exit code. */
export interface CommandModule {
  run (argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number>
  readonly summary: string
}

type Loader = () => Promise<CommandModule>

// Lazy: start-up of `serve` must not pay for the code of other commands.
const COMMANDS: Readonly<Record<string, Loader>> = {
  serve: async () => await import('./cli/serve.ts'),
  demo: async () => await import('./cli/demo.ts'),
  wrap: async () => await import('./cli/wrap.ts'),
  report: async () => await import('./cli/report.ts'),
  verify: async () => await import('./cli/verify.ts'),
  policy: async () => await import('./cli/policy.ts'),
  'import-key': async () => await import('./cli/import-key.ts'),
  healthcheck: async () => await import('./cli/healthcheck.ts'),
  token: async () => await import('./cli/token.ts')
}

function usage (): string {
  return [
    'usage: skr [command] [flags]',
    '',
    'commands:',
    ...Object.keys(COMMANDS).map(c => `  ${c}`),
    '',
    'With no command (or flags only) skr serves, like the reference sidecar.',
    'Run `skr <command> --help` for the flags of a command.'
  ].join('\n')
}

/** Picks the command: a known name first, else `serve` with every argument passed through. */
export function resolveCommand (argv: readonly string[]): { name: string, args: readonly string[] } {
  const first = argv[0]
  if (first !== undefined && Object.hasOwn(COMMANDS, first)) return { name: first, args: argv.slice(1) }
  // The reference binary wraps instead of serving when given -infile (its `skr -infile F -keypath K -outfile O`).
  if (argv.some(a => /^--?infile(=|$)/i.test(a))) return { name: 'wrap', args: argv }
  return { name: 'serve', args: argv }
}

async function main (argv: readonly string[]): Promise<number> {
  if (argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(usage() + '\n')
    return 0
  }
  const { name, args } = resolveCommand(argv)
  const load = COMMANDS[name] as Loader
  const command = await load()
  return await command.run(args, process.env)
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  if (isSidecarError(err)) {
    process.stderr.write(`skr: ${err.code}: ${err.message}\n`)
    process.exitCode = err.code === 'ERR_CONFIG_INVALID' ? 2 : 1
  } else {
    process.stderr.write(`skr: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
