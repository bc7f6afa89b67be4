// Every SidecarError class gets a real gRPC status (never UNKNOWN), with the reference's
// choices where it made one and the code in the message and the trailer.
import t from 'tap'
import { status } from '@grpc/grpc-js'
import * as errors from '../../../src/errors.ts'
import { ERROR_CODE_TRAILER, grpcStatusFor, toGrpcFailure } from '../../../src/grpc/status-map.ts'

type Ctor = new (message: string) => errors.SidecarError

const EXPECTED: Readonly<Record<string, status>> = {
  ERR_REQUEST_INVALID: status.INVALID_ARGUMENT,
  ERR_REQUEST_TOO_LARGE: status.INVALID_ARGUMENT,
  ERR_UNSUPPORTED_MEDIA_TYPE: status.INVALID_ARGUMENT,
  ERR_WRAPPING_KEY_INVALID: status.FAILED_PRECONDITION,
  ERR_NOT_FOUND: status.UNIMPLEMENTED,
  ERR_KEY_RELEASE_DENIED: status.PERMISSION_DENIED,
  ERR_ACCESS_DENIED: status.PERMISSION_DENIED,
  ERR_KEY_NOT_FOUND: status.NOT_FOUND,
  ERR_RELEASE_UNVERIFIED: status.PERMISSION_DENIED,
  ERR_UPSTREAM_REJECTED: status.FAILED_PRECONDITION,
  ERR_UPSTREAM_NOT_FOUND: status.FAILED_PRECONDITION,
  ERR_TCB_MISMATCH: status.FAILED_PRECONDITION,
  ERR_UPSTREAM_UNAVAILABLE: status.UNAVAILABLE,
  ERR_IDENTITY_UNAVAILABLE: status.UNAVAILABLE,
  ERR_COLLATERAL_UNAVAILABLE: status.UNAVAILABLE,
  ERR_OVERLOADED: status.UNAVAILABLE,
  ERR_UPSTREAM_TIMEOUT: status.DEADLINE_EXCEEDED,
  ERR_SNP_DEVICE_UNAVAILABLE: status.FAILED_PRECONDITION,
  ERR_INTERNAL: status.INTERNAL,
  ERR_SNP_FIRMWARE: status.INTERNAL,
  ERR_MAA_TOKEN_INVALID: status.INTERNAL
}

t.test('every error class maps to a specific status', async t => {
  for (const Cls of Object.values(errors)) {
    if (typeof Cls !== 'function' || !(Cls.prototype instanceof errors.SidecarError)) continue
    const err = new (Cls as Ctor)('m')
    const code = grpcStatusFor(err)
    t.not(code, status.UNKNOWN, err.code)
    t.not(code, status.OK, err.code)
    const expected = EXPECTED[err.code]
    if (expected !== undefined) t.equal(code, expected, err.code)
  }
})

t.test('failures carry the code; server-side ones a fixed message', async t => {
  const client = toGrpcFailure(new errors.RequestInvalid('body.kid is missing'))
  t.equal(client.status.details, 'ERR_REQUEST_INVALID: body.kid is missing')
  t.same(client.status.metadata?.get(ERROR_CODE_TRAILER), ['ERR_REQUEST_INVALID'])
  const server = toGrpcFailure(new errors.UpstreamRejected('akv said 400 for https://internal.host/path'))
  t.equal(server.status.details, 'ERR_UPSTREAM_REJECTED: upstream rejected the request')
  const unknown = toGrpcFailure(new RangeError('boom'))
  t.equal(unknown.status.code, status.INTERNAL)
  t.equal(unknown.error.code, 'ERR_INTERNAL')
  t.equal(unknown.status.details, 'ERR_INTERNAL: internal error')
})

t.test('a server-side failure carries the same safe facts as its HTTP body', async t => {
  const err = new errors.UpstreamNotFound('release: akv myvaultt.vault.azure.net: host name not found (ENOTFOUND) after 1 attempt', {
    details: { step: 'release', upstream: 'akv', host: 'myvaultt.vault.azure.net', errorCode: 'ENOTFOUND', attempts: 1 }
  })
  const failure = toGrpcFailure(err)
  t.equal(failure.status.code, status.FAILED_PRECONDITION, 'not UNAVAILABLE: a client must not retry it')
  t.equal(failure.status.details, 'ERR_UPSTREAM_NOT_FOUND: upstream host not found (step: release, upstream: akv myvaultt.vault.azure.net, error ENOTFOUND)')
  t.same(failure.status.metadata?.get(ERROR_CODE_TRAILER), ['ERR_UPSTREAM_NOT_FOUND'])
})
