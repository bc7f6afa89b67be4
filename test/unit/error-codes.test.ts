// The typed codes of src/errors.ts: ErrorCode, the classes and AnySidecarError match exactly (no
// code without a class, no class without its code), every 5xx class carries its fixed public text
// (pinned here, byte for byte, as clients have always received it), and docs/errors.md lists
// exactly the codes of the union. src/errors.ts checks the first two at compile time too.
import t from 'tap'
import { readFileSync } from 'node:fs'
import * as errors from '../../src/errors.ts'
import { ERROR_CODES, type AnySidecarError, type ErrorCode } from '../../src/errors.ts'
import { publicMessage, publicServerMessage } from '../../src/public-error.ts'
import { repoRoot } from '../helpers/vectors.ts'

// ---- type level: these lines compile only while the types match ------------------------------

type Exports = typeof errors
/** The instance type of every concrete (non-abstract) error class src/errors.ts exports. */
type ExportedClass = {
  [K in keyof Exports]: Exports[K] extends new (message: string) => infer I ? (I extends errors.SidecarError ? I : never) : never
}[keyof Exports]
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false

const classesAreTheUnion: Same<ExportedClass, AnySidecarError> = true
const codesAreTheClasses: Same<ErrorCode, AnySidecarError['code']> = true
const codesAreTheList: Same<ErrorCode, (typeof ERROR_CODES)[number]> = true

function misspelt (err: errors.SidecarError): boolean {
  // @ts-expect-error: a misspelt code against a SidecarError's code does not compile (TS2367).
  return err.code === 'ERR_KEY_RELEASE_DENEID'
}

// ---- run time -------------------------------------------------------------------------------

type Ctor = new (message: string) => errors.SidecarError

function errorClasses (): Array<[string, Ctor]> {
  return (Object.entries(errors) as Array<[string, unknown]>)
    .filter((entry): entry is [string, Ctor] => typeof entry[1] === 'function' && entry[1].prototype instanceof errors.SidecarError)
}

// What clients have received for each 5xx code (the former table of src/server/error-handler.ts,
// and its 'internal error' fallback for the codes it did not list).
const PUBLIC_TEXT: Readonly<Record<string, string>> = {
  ERR_UPSTREAM_REJECTED: 'upstream rejected the request',
  ERR_UPSTREAM_RESPONSE_INVALID: 'upstream response invalid',
  ERR_MAA_TOKEN_INVALID: 'attestation token failed verification',
  ERR_UVM_ENDORSEMENT_INVALID: 'internal error',
  ERR_CERT_CHAIN_INVALID: 'certificate chain invalid',
  ERR_TCB_MISMATCH: 'platform TCB does not match the certificate chain',
  ERR_KEY_UNWRAP_FAILED: 'released key could not be unwrapped',
  ERR_UPSTREAM_NOT_FOUND: 'upstream host not found',
  ERR_UPSTREAM_UNAVAILABLE: 'upstream unavailable',
  ERR_UPSTREAM_TIMEOUT: 'request deadline exceeded',
  ERR_SNP_DEVICE_UNAVAILABLE: 'attestation device unavailable',
  ERR_IDENTITY_UNAVAILABLE: 'identity unavailable',
  ERR_COLLATERAL_UNAVAILABLE: 'attestation collateral unavailable',
  ERR_OVERLOADED: 'too many requests in flight; retry later',
  ERR_SHUTTING_DOWN: 'server is shutting down; retry later',
  ERR_SNP_FIRMWARE: 'attestation device error',
  ERR_SNP_REPORT_INVALID: 'attestation device error',
  ERR_SNP_REPORT_UNVERIFIED: 'attestation device error',
  ERR_INTERNAL: 'internal error',
  ERR_CONFIG_INVALID: 'internal error',
  ERR_LISTEN_FAILED: 'internal error'
}

t.test('the type-level checks above are in force', async t => {
  t.same([classesAreTheUnion, codesAreTheClasses, codesAreTheList], [true, true, true])
  t.equal(misspelt(new errors.KeyReleaseDenied('x')), false)
})

t.test('ERROR_CODES and the exported classes match exactly, one class per code', async t => {
  t.equal(new Set(ERROR_CODES).size, ERROR_CODES.length, 'no code listed twice')
  t.ok(Object.isFrozen(ERROR_CODES))
  const byCode = new Map<string, string[]>()
  for (const [name, Cls] of errorClasses()) {
    const code = new Cls('x').code
    byCode.set(code, [...(byCode.get(code) ?? []), name])
  }
  t.same([...byCode.keys()].sort(), [...ERROR_CODES].sort(), 'the codes of the classes are the listed codes')
  for (const [code, names] of byCode) t.equal(names.length, 1, `${code}: one class (${names.join(', ')})`)
})

t.test('every 5xx class carries its fixed public text; 4xx classes none', async t => {
  let server = 0
  for (const [name, Cls] of errorClasses()) {
    const err = new Cls('/srv/secret.pem: details a client must not see')
    if (err.statusCode >= 500) {
      server++
      t.equal(err.publicMessage, PUBLIC_TEXT[err.code], `${name}: its text, unchanged`)
      t.equal(publicServerMessage(err.code), PUBLIC_TEXT[err.code], `${name}: publicServerMessage agrees`)
      t.equal(publicMessage(err), PUBLIC_TEXT[err.code], `${name}: what a client sees`)
    } else {
      t.equal(err.publicMessage, null, `${name}: a caller's mistake shows its own message`)
      t.equal(publicMessage(err), err.message, name)
    }
    t.notOk(Object.keys(err).includes('publicMessage'), `${name}: not an enumerable member (logs unchanged)`)
  }
  t.equal(server, Object.keys(PUBLIC_TEXT).length, 'every pinned 5xx code has its class')
})

t.test('docs/errors.md lists exactly the codes of ErrorCode', async t => {
  const doc = readFileSync(`${repoRoot}/docs/errors.md`, 'utf8')
  const rows = [...doc.matchAll(/^\|\s*`(ERR_[A-Z0-9_]+)`\s*\|/gm)].map(m => m[1] as string)
  t.same([...rows].sort(), [...ERROR_CODES].sort())
})
