// skr's entry point and the only place that calls process.exit. One binary for every
// command; serving is the default, so the reference's invocations (`skr -port 8080 -base64 …`,
// or skr.sh's positional arguments) keep working unchanged. Which command a command line means
// is decided in cli/commands.ts, which loads no command until one is chosen.
import { isSidecarError, type ErrorCode } from './errors/sidecar-error.ts'
import { COMMANDS, resolveCommand, unknownCommandMessage, usage, versionLine } from './cli/commands.ts'

// Start-up failures a person fixes by changing how skr is run (a setting, a port): exit 2, as
// Go's flag package exits for a bad command line, so a supervisor can tell them from a crash.
const USAGE_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_CONFIG_INVALID', 'ERR_LISTEN_FAILED'])

async function main (argv: readonly string[]): Promise<number> {
  const resolved = resolveCommand(argv)
  switch (resolved.kind) {
    case 'help':
      if (resolved.topic !== null) return await (await COMMANDS[resolved.topic].load()).run(['--help'], process.env)
      process.stdout.write(usage() + '\n')
      return 0
    case 'version':
      process.stdout.write(versionLine() + '\n')
      return 0
    case 'unknown':
      process.stderr.write(unknownCommandMessage(resolved.word, resolved.suggestion) + '\n')
      return 2
    case 'run':
      return await (await COMMANDS[resolved.name].load()).run(resolved.args, process.env)
  }
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  if (isSidecarError(err)) {
    process.stderr.write(`skr: ${err.code}: ${err.message}\n`)
    process.exitCode = USAGE_ERRORS.has(err.code) ? 2 : 1
  } else {
    process.stderr.write(`skr: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
