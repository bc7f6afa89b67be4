// Logging: pino JSON, with every redaction path in one place. Components take a child
// logger (`log.child({ component: 'maa' })`) and log identifiers (key name, kid, report
// SHA-256), never values. Untrusted upstream data goes under a named key, never as the
// merging object. The redaction below is a second line of defence, not the first: redactSecrets
// (pino's `formatters`) censors secret keys at any depth, pino's redact paths the top level and
// the serialized request.
import { fchmodSync, fstatSync, mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import pino, { type Logger, type LoggerOptions } from 'pino'

/** pino's level names skr accepts (LogLevel maps logrus's onto them in config/config.ts). */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'
import { ConfigInvalid } from './errors.ts'

export type { Logger } from 'pino'

// Names whose value is a secret wherever they appear (tokens, assertions, the released key and
// its JWS, the wrapping key, runtime data, the egress proxy's credentials, and the OAuth and
// password fields an SDK error or a caller's object may carry). Matching is exact and
// case-sensitive, so each spelling skr or its dependencies use is listed: header names as Node
// gives them (lower case) and as written in code, and the snake_case and camelCase forms.
const SECRET_NAMES = [
  'authorization', 'Authorization', 'proxy-authorization', 'Proxy-Authorization', 'proxyAuthorization',
  'access_token', 'accessToken', 'refresh_token', 'refreshToken', 'token', 'maaToken', 'maa_token',
  'client_secret', 'clientSecret', 'password',
  'target', 'key', 'keyHsm', 'key_hsm', 'privateKey', 'private_key', 'jwk', 'jws', 'value',
  'runtime_data', 'runtimeData', 'assertion', 'client_assertion'
]
// JWK private members (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const JWK_PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']

/** Every key name redacted in logs: the secret names, then the JWK private members. */
export const SECRET_KEYS: readonly string[] = Object.freeze([...SECRET_NAMES, ...JWK_PRIVATE_MEMBERS])

/** What a redacted value is replaced with. */
export const CENSOR = '[redacted]'

/**
 * pino redact paths: the request's URL (its query string: see censor), headers and body as a
 * `req` serializer leaves them, and the secret keys at the top level (pino's path syntax takes
 * `proxy-authorization` as one literal key; the header under `req` needs brackets). They run
 * after the serializers, as a last net under redactSecrets, which handles every depth, and they
 * are all that covers a child logger's bindings. No `*.key` wildcards: with @pinojs/redact (pino
 * 10) a wildcard path runs on every top-level value of every line, and `*.k` for the 27 keys then
 * listed cost 12-24 µs a line (measured on Node 24, ten times the rest of the line), `*.*.*.*.k`
 * up to four levels 65-160 µs; redactSecrets costs 0.1-0.6 µs.
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'req.url',
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'req.body',
  ...SECRET_KEYS
])

/** How far redactSecrets looks. Past either bound it fails closed: nothing is logged unscanned. */
export const REDACT_LIMITS = Object.freeze({
  /** Nesting levels below the log call's object (in `{ a: { b: {} } }`, `a` is level 1, `b` level 2); deeper containers are replaced. */
  maxDepth: 8,
  /** Object members and array elements examined per line; a line with more is replaced whole (pino keeps level, time and msg). */
  maxEntries: 2000
})

const TOO_DEEP = '[redacted: nested too deep]'
const TOO_LARGE = '[redacted: too large]'
const CIRCULAR = '[Circular]'
const UNREADABLE = '[redacted: unreadable]'
const HIDDEN_ERROR_MEMBERS = ['cause', 'errors'] as const
const SECRET_NAME_SET: ReadonlySet<string> = new Set(SECRET_NAMES)
const JWK_MEMBER_SET: ReadonlySet<string> = new Set(JWK_PRIVATE_MEMBERS)
// The shortest real private member is a 128-bit oct `k`: 22 base64url characters.
const KEY_MATERIAL = /^[A-Za-z0-9+/_-]{16,}={0,2}$/

// `d`, `k`, `p` and `q` are also ordinary names (a duration, a count, a loop index), so a JWK
// private member is censored whatever its value only where skr always censored it (the log
// call's own keys and one level down) or in an object with a string `kty` (a JWK). Deeper, and
// outside a JWK, it is censored when it could be key material: a base64/base64url string of 16+
// characters, or binary. A number, a boolean, a short or spaced string keeps its value there, and
// an object under such a name is walked like any other.
function isSecret (holder: object, depth: number, name: string, value: unknown): boolean {
  if (value === undefined) return false
  if (SECRET_NAME_SET.has(name)) return true
  if (!JWK_MEMBER_SET.has(name)) return false
  if (depth <= 1 || typeof (holder as { kty?: unknown }).kty === 'string') return true
  if (typeof value === 'string') return KEY_MATERIAL.test(value)
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer
}

interface Walk {
  /** Entries still to examine on this line. */
  budget: number
  /** The containers being walked, outermost first (cycle detection; at most maxDepth long). */
  path: object[]
}

// Plain data only. Class instances (fastify's Request, Buffer, URL, KeyObject) are serialized by
// their own toJSON or pino's serializers, and walking them would cost more than the line; skr
// logs identifiers, not domain objects, so they are left as they are.
function isPlain (value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function walk (value: unknown, depth: number, state: Walk): unknown {
  if (typeof value !== 'object' || value === null) return value
  const kind = Array.isArray(value) ? 'array' : value instanceof Error ? 'error' : isPlain(value) ? 'object' : null
  if (kind === null) return value
  if (depth > REDACT_LIMITS.maxDepth) return TOO_DEEP
  // A cycle back to a container being copied would reach the uncensored original: cut it.
  if (state.path.includes(value)) return CIRCULAR
  state.path.push(value)
  try {
    if (kind === 'array') return walkArray(value as unknown[], depth, state)
    return kind === 'error' ? walkError(value as Error, depth, state) : walkObject(value as Record<string, unknown>, depth, state)
  } finally {
    state.path.pop()
  }
}

// Once the budget is spent every walk returns at once; redactSecrets then replaces the whole value.
function walkArray (array: unknown[], depth: number, state: Walk): unknown {
  state.budget -= array.length
  if (state.budget < 0) return array
  let copy: unknown[] | null = null
  for (let i = 0; i < array.length && state.budget >= 0; i++) {
    const item = array[i]
    const next = walk(item, depth + 1, state)
    if (next !== item) {
      copy ??= array.slice()
      copy[i] = next
    }
  }
  return copy ?? array
}

function walkObject (object: Record<string, unknown>, depth: number, state: Walk): unknown {
  let copy: Record<string, unknown> | null = null
  for (const name in object) {
    if (--state.budget < 0) return object
    const item = object[name]
    const next = isSecret(object, depth, name, item) ? CENSOR : walk(item, depth + 1, state)
    if (next !== item) {
      copy ??= { ...object }
      // defineProperty, not assignment: an own `__proto__` member (from JSON.parse) stays a member.
      Object.defineProperty(copy, name, { value: next, enumerable: true, writable: true, configurable: true })
    }
  }
  return copy ?? object
}

// An Error's enumerable members (SidecarError's details, an SDK's errorResponse) are what pino's
// err serializer and JSON.stringify print; `cause` and AggregateError's `errors` are own but not
// enumerable, and printed by whatever serializes them later. A copy keeps the prototype (so the
// serializer still names the class) and each member's enumerability.
function walkError (err: Error, depth: number, state: Walk): unknown {
  const members = err as unknown as Record<string, unknown>
  let changed: Map<string, unknown> | null = null
  for (const name in err) {
    if (--state.budget < 0) return err
    const item = members[name]
    const next = isSecret(err, depth, name, item) ? CENSOR : walk(item, depth + 1, state)
    if (next !== item) (changed ??= new Map()).set(name, next)
  }
  for (const name of HIDDEN_ERROR_MEMBERS) {
    if (!Object.hasOwn(err, name) || Object.prototype.propertyIsEnumerable.call(err, name)) continue
    if (--state.budget < 0) return err
    const item = members[name]
    const next = isSecret(err, depth, name, item) ? CENSOR : walk(item, depth + 1, state)
    if (next !== item) (changed ??= new Map()).set(name, next)
  }
  if (changed === null) return err
  const copy = Object.create(Object.getPrototypeOf(err) as object) as Record<string | symbol, unknown>
  for (const name of Reflect.ownKeys(err)) {
    const enumerable = Object.prototype.propertyIsEnumerable.call(err, name)
    // Read through the original: V8's `stack` is an accessor that only works on the real error.
    const value = typeof name === 'string' && changed.has(name) ? changed.get(name) : (err as unknown as Record<string | symbol, unknown>)[name]
    Object.defineProperty(copy, name, { value, enumerable, writable: true, configurable: true })
  }
  for (const [name, value] of changed) {
    if (!Object.hasOwn(copy, name)) Object.defineProperty(copy, name, { value, enumerable: true, writable: true, configurable: true })
  }
  return copy
}

/**
 * Censors secret keys at every depth of a log call's object (within REDACT_LIMITS), through
 * arrays and Errors (their members, `cause` and `errors`). Copy-on-write: the input is never
 * changed, and a line without secrets is returned as is, allocating nothing but the walk state.
 */
export function redactSecrets (value: unknown): unknown {
  const state: Walk = { budget: REDACT_LIMITS.maxEntries, path: [] }
  const redacted = walk(value, 0, state)
  return state.budget < 0 ? TOO_LARGE : redacted
}

// The censor of every redact path but one: fastify logs each request (`incoming request`, at
// info) with `req.url` as sent, query string included. skr's routes read no query, so a query only
// ever carries what a caller put there (`?access_token=…`): the URL keeps its path, for operators.
function censor (value: unknown, path: string[]): unknown {
  if (typeof value === 'string' && path.length === 2 && path[0] === 'req' && path[1] === 'url') {
    const query = value.indexOf('?')
    return query === -1 ? value : `${value.slice(0, query)}?${CENSOR}`
  }
  return CENSOR
}

/** pino options shared by the server (fastify's `logger`) and the CLI. */
export function loggerOptions (level: LogLevel): LoggerOptions {
  return {
    level,
    base: { service: 'skr' },
    redact: { paths: [...REDACT_PATHS], censor },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      // On the log call's object, before pino's serializers and redact paths. (pino gives a
      // child's bindings no formatter, so they get only the top-level paths: bind identifiers.)
      log: (object) => {
        let redacted: unknown
        try {
          redacted = redactSecrets(object)
        } catch {
          // A getter that throws: pino's own stringify would have survived it, so must we.
          redacted = UNREADABLE
        }
        // pino iterates what this returns, so a line too large to scan says so instead.
        return typeof redacted === 'object' && redacted !== null ? redacted as Record<string, unknown> : { redaction: redacted }
      }
    }
  }
}

/** The mode a new LogFile gets: the log names key ids, vaults and callers, so only skr's user reads it. */
export const LOG_FILE_MODE = 0o600

// Opened here, synchronously, so an unwritable LogFile is a clear start-up error rather than an
// asynchronous crash inside the log library. A file that already exists keeps its owner's choice
// up to 0640 (a log shipper's group may read it); anything wider (other users, group write) is
// narrowed to that.
function openLogFile (logFile: string): number {
  let fd: number
  try {
    mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 })
    fd = openSync(logFile, 'a', LOG_FILE_MODE)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigInvalid(`LogFile cannot be opened for appending (${code})`, { cause: err })
  }
  try {
    const mode = fstatSync(fd).mode & 0o777
    if ((mode & 0o037) !== 0) fchmodSync(fd, mode & 0o640)
  } catch {
    // Not the file's owner: it stays as its owner made it.
  }
  return fd
}

/**
 * Makes `logger` and every logger derived from it walk child bindings through redactSecrets. pino
 * gives child bindings neither `formatters.log` nor a bindings formatter (children reset it), only
 * the literal redact paths, so a secret nested in a binding would otherwise be printed on every
 * line of that child. The walk runs once per child (fastify makes one per request: ~0.2 µs).
 */
export function redactChildBindings (logger: Logger): Logger {
  const child = logger.child
  // An own property of the root, inherited by every child (pino builds them with Object.create).
  Object.defineProperty(logger, 'child', {
    configurable: true,
    writable: true,
    value: function (this: Logger, bindings: Record<string, unknown>, options?: Parameters<Logger['child']>[1]) {
      const redacted = redactSecrets(bindings)
      const safe = typeof redacted === 'object' && redacted !== null ? redacted as Record<string, unknown> : { redaction: redacted }
      return child.call(this, safe, options)
    }
  })
  return logger
}

/** Creates the process logger: stdout, or LogFile appended (created 0600; the reference creates it 0644). */
export function createLogger (level: LogLevel, logFile: string | null): Logger {
  const destination = pino.destination({ dest: logFile === null ? 1 : openLogFile(logFile), sync: false })
  return redactChildBindings(pino(loggerOptions(level), destination))
}
