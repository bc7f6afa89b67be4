import t from 'tap'
import crypto from 'node:crypto'
import { calculateJwkThumbprint } from 'jose'
import { createWrappingKey, wrappingJwks, WRAPPING_KEY_BITS } from '../../../src/release/wrapping-key.ts'

// Test vector from the reference sidecar (microsoft/confidential-sidecar-containers
// pkg/skr/skr_test.go Test_SKR "SKR_KeyBlobFromPEM"): a PKCS#1 key and the exact JWKS bytes
// GenerateJWKSet produces for it.
const REFERENCE_PEM = `-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAv965SRmyp8zbG5eNFuDCmmiSeaHpujG2bC/keLSuzvDMLO1W
yrUJveaa5bzMoO0pA46pXkmbqHisozVzpiNDLCo6d3z4TrGMeFPf2APIMu+RSrzN
56qvHVyIr5caWfHWk+FMRDwAefyNYRHkdYYkgmFK44hhUdtlCAKEv5UQpFZjvh4i
I9jVBdGYMyBaKQLhjI5WIh+QG6Za5sSuOCFMnmuyuvN5DflpLFz595Ss+EoBIY+N
il6lCtvcGgR+IbjUYHAOs5ajamTzgeO8kx3VCE9HcyKmyUZsiyiF6IDRp2Bpy3NH
TjIz7tmkpTHx7tHnRtlfE2FUv0B6i/QYl/ZA5QIDAQABAoIBAG9Ig9jFIdy3MWII
fVmGlPgvrL0FTuWiTbbj9DSaP0VhXlq0cYFyjSrqZG7ZGSpBQ2d/x/Ya5UBKdX7X
0rLKgvxLpcuF3RLvYZSsuQi18NiyIGfjp901Hwn9kH2fOzZt0NHGe5Cb6H7YHzvs
v7/2RJimS2Q6xo9Om4OQymO/1n4pZ+ZMiTy56AvIYZ/ToD8lorlzkGFNQsljmTSC
IHEqRuyttI0Tf64jNaD8K74EThlZG8AE/yNG2FiRtN37+gAgMhxNWoF64s+9D/G0
1xL96WNP5GmxXidK4BAUwWZmLJTtgUDcGjJbmfSuEMFjpRA9wfcL717jDzB0AImO
OnZSgWECgYEA2swHf+pU8D1vshCBCTx/wGeIMRJE1Nw3YBhvPrUCExMo8M2UAkzs
lKq61xSnh0X7f/Ma28vj9/gT+AHOnoCSdFSFO3dxX8B3y+B3jVvbxx7P+iZrM8J+
VgrqPaXrIpBNPCooieD6O9EGvyC0+somgvtkA3ne2jdxX1rbPaQZr5kCgYEA4H6Y
dWb2F5Dglhby9oXfjaLslIumoTTRFTgygIXHBG0auwMQzwfhuLyzH55mBICn16Ez
LRyqssna5NgfTF0XrZT/BIPo8dSj0hlWvDtvCnZbDMTLYrk+GdypJD2oWmsbB6gB
FjdjU4pv8c/4WjGuuWJ8Vs47+HTBNJlJlr6fWy0CgYBapPJqdRtxWBKBM8Mxn2XR
wVKz+byYbw9l+VmFIhpU6rgoYxLxjQrqYHz9hCoPqdeS35V9/89XOOiU87K1CdEi
7q0vwMEwiR1YUotU/fxkVwiUuvvouqf6X5VBqw5qCFxnE5Qt4w3oYCWqYxN3Xu5r
j1iU9BV2VEfc2FhCBk056QKBgQDChm/tKy6K9QrmgzQ80XwI6ug9P1U/0thpnqyE
GWd+OlwzOFDUVGwO+9PqzgJwXFsTyabirDhte+Ok8HEOZowh6T2g1/x9sFfTsgkq
SgXJ9wymX9As138sQbx+nr7GupBNbhKjAZObzBV8X01AOlTAZsp/HW1xuRnBTiIp
8Tt8cQKBgQDUv6Jpe1/kO0YJ6KlqVcMIZa+aQFamoMavlCNxxBvjoPnVdWB9PtWi
arzVMyAVvTjnT1QvGPJj1dffE+GSrAf3mssdp/tGfMGcgSB0DRcE1jz/JlzEc81F
o9Ki1lCw8ljoaNfJ8K+7wdiQ1V/H+rgL691P/2ZGc4vdOXJvy/hGZA==
-----END RSA PRIVATE KEY-----`
const REFERENCE_JWKS = '{"keys":[{"e":"AQAB","key_ops":["encrypt"],"kid":"Nvhfuq2cCIOAB8XR4Xi9Pr0NP_9CeMzWQGtW_HALz_w","kty":"RSA","n":"v965SRmyp8zbG5eNFuDCmmiSeaHpujG2bC_keLSuzvDMLO1WyrUJveaa5bzMoO0pA46pXkmbqHisozVzpiNDLCo6d3z4TrGMeFPf2APIMu-RSrzN56qvHVyIr5caWfHWk-FMRDwAefyNYRHkdYYkgmFK44hhUdtlCAKEv5UQpFZjvh4iI9jVBdGYMyBaKQLhjI5WIh-QG6Za5sSuOCFMnmuyuvN5DflpLFz595Ss-EoBIY-Nil6lCtvcGgR-IbjUYHAOs5ajamTzgeO8kx3VCE9HcyKmyUZsiyiF6IDRp2Bpy3NHTjIz7tmkpTHx7tHnRtlfE2FUv0B6i_QYl_ZA5Q"}]}'

t.test('the reference vector: identical JWKS bytes and thumbprint kid', async (t) => {
  const key = crypto.createPrivateKey(REFERENCE_PEM)
  const { jwks, kid } = await wrappingJwks(key)
  t.equal(jwks.toString('utf8'), REFERENCE_JWKS)
  t.equal(kid, 'Nvhfuq2cCIOAB8XR4Xi9Pr0NP_9CeMzWQGtW_HALz_w')
  const fromPublic = await wrappingJwks(crypto.createPublicKey(key))
  t.equal(fromPublic.jwks.toString('utf8'), REFERENCE_JWKS, 'same bytes from the public half')
  await t.rejects(wrappingJwks(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), TypeError)
})

t.test('a fresh key: RSA-2048, e=65537, exact member order, no private members, kid = RFC 7638 thumbprint', async (t) => {
  const w = await createWrappingKey()
  t.equal(w.privateKey.type, 'private')
  t.equal(w.privateKey.asymmetricKeyType, 'rsa')
  t.equal(w.privateKey.asymmetricKeyDetails?.modulusLength, WRAPPING_KEY_BITS)
  t.equal(WRAPPING_KEY_BITS, 2048)
  t.equal(w.privateKey.asymmetricKeyDetails?.publicExponent, 65537n)
  t.ok(Buffer.isBuffer(w.jwks))
  const text = w.jwks.toString('utf8')
  t.match(text, /^\{"keys":\[\{"e":"AQAB","key_ops":\["encrypt"\],"kid":"[A-Za-z0-9_-]{43}","kty":"RSA","n":"[A-Za-z0-9_-]{342}"\}\]\}$/)
  const doc = JSON.parse(text) as { keys: Array<Record<string, unknown>> }
  const jwk = doc.keys[0] as Record<string, string>
  t.same(Object.keys(jwk), ['e', 'key_ops', 'kid', 'kty', 'n'])
  t.equal(jwk['kid'], w.kid)
  t.equal(w.kid, await calculateJwkThumbprint({ kty: 'RSA', n: jwk['n'], e: jwk['e'] }, 'sha256'))
  const pub = crypto.createPublicKey(w.privateKey).export({ format: 'jwk' })
  t.equal(jwk['n'], pub.n, 'the JWKS carries this key\'s modulus')
  const other = await createWrappingKey()
  t.not(other.kid, w.kid, 'every release gets its own key')
})
