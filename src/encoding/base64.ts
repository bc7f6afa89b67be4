// Base64 helpers with explicit strictness. Buffer.from(text, 'base64') silently skips bad
// characters and accepts any padding, so untrusted input is validated here first and only
// then handed to Buffer.

const STD_OR_URL = /^[A-Za-z0-9+/_-]*={0,2}$/
const URL_ONLY = /^[A-Za-z0-9_-]*={0,2}$/

/** Checks padding and length rules shared by both alphabets; returns the unpadded body or null. */
function unpaddedBody (text: string): string | null {
  const body = text.replace(/=+$/, '')
  // A single leftover character carries only 6 bits: no byte string encodes to that.
  if (body.length % 4 === 1) return null
  // Padding, when present, must complete the last quantum exactly.
  if (body.length !== text.length && text.length % 4 !== 0) return null
  return body
}

/**
 * Decodes standard (RFC 4648 §4) or url-safe (§5) base64, padded or unpadded.
 * The reference decodes runtime_data with Go's StdEncoding while its own tests send the
 * url-safe alphabet, so both are accepted; mixing the two alphabets is not. CR and LF are
 * ignored as Go's decoder ignores them (`base64` wraps its output at 76 columns).
 * Returns null for any other character, wrong padding or an impossible length.
 */
export function decodeBase64Flexible (text: string): Buffer | null {
  const compact = text.replace(/[\r\n]/g, '')
  if (!STD_OR_URL.test(compact)) return null
  const body = unpaddedBody(compact)
  if (body === null) return null
  const std = /[+/]/.test(body)
  const url = /[-_]/.test(body)
  if (std && url) return null
  return Buffer.from(body, url ? 'base64url' : 'base64')
}

/** Encodes with the url-safe alphabet (RFC 4648 §5), with or without `=` padding. */
export function encodeBase64Url (buf: Buffer, padded: boolean): string {
  const text = buf.toString('base64url')
  return padded ? text + '='.repeat((4 - (text.length % 4)) % 4) : text
}

/** Decodes url-safe base64 only (padded or unpadded); null for any other character or shape. */
export function decodeBase64Url (text: string): Buffer | null {
  if (!URL_ONLY.test(text)) return null
  const body = unpaddedBody(text)
  if (body === null) return null
  return Buffer.from(body, 'base64url')
}
