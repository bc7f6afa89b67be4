// `skr healthcheck`: an exit code for exec probes. Kubernetes httpGet probes (and ACI's) dial
// the pod IP, but skr listens on loopback only, so probes run this inside the container
// instead: GET http://127.0.0.1:{port}/status, exit 0 on 200 {"message":"Status OK"}, else
// exit 1 with one line on stderr. It runs every few seconds in every pod, so it imports
// nothing heavy (node:http and the flag parser only: no fastify, no Azure SDK, no config).
import { FlagError, formatFlags, parseFlags, type FlagSpecs } from '../config/flags.ts'

// Not `import * as http from 'node:http'`: an ES module import of node:http builds its whole
// namespace, whose lazy WebSocket exports load Node's own copy of undici: the probe then peaked
// at 60 MB instead of 47 MB (measured with /usr/bin/time, bench/README.md). server/listen.ts
// does the same for the API's server.
const http = process.getBuiltinModule('node:http')

/** One line for `skr help`. */
export const summary = 'probe a running skr (GET /status on loopback); exit 0 when healthy, for exec probes'

/** The healthcheck's flags (Go-style single-dash spellings work too, as for serve). */
export const HEALTHCHECK_FLAGS: FlagSpecs = {
  port: { type: 'string', help: 'port skr listens on (env Port; default 8080)' },
  host: { type: 'string', help: 'loopback address to dial (default 127.0.0.1)' },
  path: { type: 'string', help: 'path to GET (default /status)' },
  timeout: { type: 'string', help: 'give up after this many milliseconds (default 2000)' },
  'unix-socket': { type: 'string', help: 'dial this Unix socket instead of TCP (skr --unix-socket)' },
  json: { type: 'boolean', help: 'print {"healthy", "target", "reason"?} on stdout as well' }
}

/** Where and how to probe, after flags and environment are applied. */
export interface HealthcheckTarget {
  readonly host: string
  readonly port: number
  readonly path: string
  readonly timeoutMs: number
  readonly socketPath: string | null
}

type Env = Readonly<Record<string, string | undefined>>

// Bounded read: /status bodies are tiny; anything large is not skr.
const MAX_BODY_BYTES = 64 * 1024

function nonEmpty (v: string | undefined): string | null {
  return v === undefined || v.trim() === '' ? null : v.trim()
}

/**
 * Resolves the probe target: flag, then environment (Port, as the serve command reads it), then
 * the default. Throws FlagError naming the flag for a malformed value.
 */
export function resolveTarget (argv: readonly string[], env: Env): HealthcheckTarget {
  const { values, positionals } = parseFlags(argv, HEALTHCHECK_FLAGS)
  if (positionals.length > 0) throw new FlagError(`unexpected argument ${String(positionals[0])}`)
  const portText = values.port ?? nonEmpty(env.Port) ?? '8080'
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
  if (!(port >= 1 && port <= 65535)) throw new FlagError('--port (or Port) must be a TCP port number 1..65535')
  const path = values.path ?? '/status'
  // http.get throws synchronously on spaces and control characters: refuse them here.
  if (!/^\/[\x21-\x7e]*$/.test(path)) throw new FlagError('--path must start with / and contain no spaces or control characters')
  const timeoutText = values.timeout ?? '2000'
  const timeoutMs = /^\d{1,7}$/.test(timeoutText) ? Number(timeoutText) : NaN
  if (!(timeoutMs >= 1)) throw new FlagError('--timeout must be a positive number of milliseconds')
  return {
    host: values.host ?? '127.0.0.1',
    port,
    path,
    timeoutMs,
    socketPath: values['unix-socket'] ?? null
  }
}

/** How the target reads in messages: `http://127.0.0.1:8080/status` or `unix:/run/skr.sock /status`. */
export function describeTarget (target: HealthcheckTarget): string {
  if (target.socketPath !== null) return `unix:${target.socketPath} ${target.path}`
  const host = target.host.includes(':') ? `[${target.host}]` : target.host
  return `http://${host}:${target.port}${target.path}`
}

/** What one probe saw: healthy, or the reason it is not. */
export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly reason: string }

function judge (target: HealthcheckTarget, status: number, body: string): ProbeResult {
  if (status !== 200) return { ok: false, reason: `HTTP ${status}` }
  // Only /status has a known body; other paths (a future /readyz) are judged on the status alone.
  if (target.path !== '/status') return { ok: true }
  let message: unknown
  try {
    message = (JSON.parse(body) as { message?: unknown } | null)?.message
  } catch {
    return { ok: false, reason: 'HTTP 200 but the body is not JSON' }
  }
  return message === 'Status OK' ? { ok: true } : { ok: false, reason: 'HTTP 200 but message is not "Status OK"' }
}

/** Performs one GET against the target; never throws, never takes longer than timeoutMs (plus a tick). */
export async function probe (target: HealthcheckTarget): Promise<ProbeResult> {
  return await new Promise<ProbeResult>(resolve => {
    let settled = false
    const finish = (result: ProbeResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      request.destroy()
      resolve(result)
    }
    // One timer for connect, headers and body together: a probe has a single budget.
    const timer = setTimeout(() => { finish({ ok: false, reason: `no answer within ${target.timeoutMs} ms` }) }, target.timeoutMs)
    const where = target.socketPath !== null
      ? { socketPath: target.socketPath }
      : { host: target.host, port: target.port }
    const request = http.get({ ...where, path: target.path, agent: false, headers: { accept: 'application/json' } }, response => {
      const chunks: Buffer[] = []
      let size = 0
      response.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_BODY_BYTES) finish({ ok: false, reason: `response body over ${MAX_BODY_BYTES} bytes` })
        else chunks.push(chunk)
      })
      response.on('end', () => { finish(judge(target, response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))) })
      response.on('error', err => { finish({ ok: false, reason: err.message }) })
    })
    request.on('error', (err: NodeJS.ErrnoException) => {
      finish({ ok: false, reason: err.code !== undefined && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message })
    })
  })
}

/** Where run() writes (the process's streams; tests pass their own). */
export interface HealthcheckIo {
  readonly stdout: { write: (text: string) => unknown }
  readonly stderr: { write: (text: string) => unknown }
}

/** Runs the probe; resolves 0 (healthy), 1 (unhealthy) or 2 (bad flags). */
export async function run (argv: readonly string[], env: Env, io: HealthcheckIo = process): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(`usage: skr healthcheck [flags]\n\nExit 0 when skr answers 200 {"message":"Status OK"}, else 1.\n\n${formatFlags(HEALTHCHECK_FLAGS)}\n`)
    return 0
  }
  let target: HealthcheckTarget
  try {
    target = resolveTarget(argv, env)
  } catch (err) {
    if (!(err instanceof FlagError)) throw err
    io.stderr.write(`skr healthcheck: ${err.message}\n`)
    return 2
  }
  const result = await probe(target)
  // resolveTarget has already parsed (and validated) these flags.
  if (parseFlags(argv, HEALTHCHECK_FLAGS).values.json === 'true') {
    io.stdout.write(JSON.stringify({ healthy: result.ok, target: describeTarget(target), ...(result.ok ? {} : { reason: result.reason }) }) + '\n')
  }
  if (result.ok) return 0
  io.stderr.write(`skr healthcheck: GET ${describeTarget(target)} failed: ${result.reason}\n`)
  return 1
}
