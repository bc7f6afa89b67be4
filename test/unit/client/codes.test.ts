// The client package's copy of the sidecar's codes (packages/client/src/codes.ts) is the list and
// the union of src/errors.ts: it cannot import the server, so this test is what keeps them equal.
import t from 'tap'
import { ERROR_CODES, type ErrorCode } from '../../../src/errors.ts'
import { SIDECAR_ERROR_CODES, isSidecarErrorCode, type SidecarErrorCode } from '../../../packages/client/src/index.ts'

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const sameUnion: Same<SidecarErrorCode, ErrorCode> = true

t.test('the client lists the same codes as src/errors.ts, in the same order', async t => {
  t.ok(sameUnion, 'SidecarErrorCode and ErrorCode are the same union (compile time)')
  t.same(SIDECAR_ERROR_CODES, ERROR_CODES)
  t.ok(Object.isFrozen(SIDECAR_ERROR_CODES))
})

t.test('isSidecarErrorCode tells the sidecar\'s codes from the client\'s own and from others', async t => {
  for (const code of ERROR_CODES) t.ok(isSidecarErrorCode(code), code)
  for (const code of ['ERR_CLIENT_TIMEOUT', 'ERR_HTTP_500', 'err_internal', '', 'toString', '__proto__']) t.notOk(isSidecarErrorCode(code), code)
  const code: string = 'ERR_KEY_RELEASE_DENIED'
  t.ok(isSidecarErrorCode(code) && code === 'ERR_KEY_RELEASE_DENIED', 'narrowed, the comparison is checked')
})
