// Logging: pino JSON, with every redaction path in one place. Components take a child
// logger (`log.child({ component: 'maa' })`) and log identifiers (key name, kid, report
// SHA-256), never values. Untrusted upstream data goes under a named key, never as the
// merging object. The paths below are a second line of defence, not the first.
import { mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import pino, { type Logger, type LoggerOptions } from 'pino'
import type { LogLevel } from './config.ts'
import { ConfigInvalid } from './errors.ts'

export type { Logger } from 'pino'

const SECRET_KEYS = [
  'authorization', 'Authorization', 'access_token', 'accessToken', 'token', 'maaToken', 'maa_token',
  'target', 'key', 'keyHsm', 'key_hsm', 'privateKey', 'private_key', 'jwk', 'jws', 'value',
  'runtime_data', 'runtimeData', 'assertion', 'client_assertion',
  // JWK private members
  'd', 'p', 'q', 'dp', 'dq', 'qi', 'k'
]

/** pino redact paths: the secret keys at the top level and one level down, plus request headers. */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.body',
  ...SECRET_KEYS,
  ...SECRET_KEYS.map(k => `*.${k}`)
]

/** pino options shared by the server (fastify's `logger`) and the CLI. */
export function loggerOptions (level: LogLevel): LoggerOptions {
  return {
    level,
    base: { service: 'skr' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) }
  }
}

// Opened here, synchronously, so an unwritable LogFile is a clear start-up error rather than an
// asynchronous crash inside the log library.
function openLogFile (logFile: string): number {
  try {
    mkdirSync(dirname(logFile), { recursive: true })
    return openSync(logFile, 'a', 0o644)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigInvalid(`LogFile cannot be opened for appending (${code})`, { cause: err })
  }
}

/** Creates the process logger: stdout, or LogFile appended (created 0644, like the reference). */
export function createLogger (level: LogLevel, logFile: string | null): Logger {
  const destination = pino.destination({ dest: logFile === null ? 1 : openLogFile(logFile), sync: false })
  return pino(loggerOptions(level), destination)
}
