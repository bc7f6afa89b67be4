// The bundle's own entry for `skr healthcheck` (dist/healthcheck.js, scripts/bundle.mjs):
// bin/skr.js runs it directly for that command, so an exec probe, which runs every few seconds in
// every pod, loads the probe and its flag parser and nothing else (not the command table in
// cli/commands.ts, nor what main.js imports for the other commands). Exit codes as
// `skr healthcheck` through main.ts.
import { run } from './cli/healthcheck.ts'

try {
  process.exitCode = await run(process.argv.slice(3), process.env)
} catch (err) {
  process.stderr.write(`skr: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
}
