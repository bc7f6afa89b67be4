// `skr serve` (the default command): the sidecar itself. Composition root: config → logger
// → attestation → key release → HTTP server; then wait for SIGTERM/SIGINT and shut down in
// order (stop accepting, let in-flight requests finish within the grace period, close
// upstream agents, flush logs).
import { loadConfig, SERVE_FLAGS } from '../config/config.ts'
import { formatFlags } from '../config/flags.ts'
import { createLogger } from '../log.ts'
import { startSidecar } from '../app/sidecar.ts'

export const summary = 'serve the reference-compatible HTTP API (default command)'

// The sidecar drains within config.performance.shutdownGraceMs; this backstop only fires if
// closing itself hangs (an upstream agent that will not close, a stuck log flush).
const BACKSTOP_MS = 5_000

/** Runs the sidecar until a termination signal arrives; resolves to the exit code. */
export async function run (argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: skr [serve] [flags]\n\n${formatFlags(SERVE_FLAGS)}\n`)
    return 0
  }
  const config = loadConfig(argv, env)
  const log = createLogger(config.logLevel, config.logFile)
  // Progress for a person (simulated attestation's first run) goes to stderr, apart from the JSON log.
  const sidecar = await startSidecar(config, { log, progress: (message) => { process.stderr.write(`skr: ${message}\n`) } })
  log.info({ addresses: sidecar.addresses, attestation: sidecar.attestationBackend }, 'skr listening')

  const signal = await new Promise<NodeJS.Signals>(resolve => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  log.info({ signal }, 'shutting down')
  const backstopMs = config.performance.shutdownGraceMs + BACKSTOP_MS
  const timer = setTimeout(() => {
    log.error({ backstopMs }, 'shutdown did not finish; exiting')
    log.flush()
    process.exit(1)
  }, backstopMs)
  timer.unref()
  await sidecar.close()
  clearTimeout(timer)
  log.flush()
  return 0
}
