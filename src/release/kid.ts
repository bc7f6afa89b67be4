// The `kid` of POST /key/release: a key name, or name/version (the reference passes it verbatim
// into the URL path, so "name/version" already worked there). Checked here so a bad id is the
// caller's 400, not a confusing 404 or a request to some other path of the vault.
import { RequestInvalid } from '../errors.ts'

/** A key name and, when pinned, its version. */
export interface KeyId {
  name: string
  version: string | null
}

// Key Vault object names: 1-127 characters of 0-9, a-z, A-Z and '-'. Versions are 32 hex digits
// in practice; any name-shaped segment is accepted so emulators and future formats still work.
const SEGMENT = /^[0-9A-Za-z-]{1,127}$/
const MAX_ECHO = 80

function invalid (kid: string, problem: string): RequestInvalid {
  const shown = kid.length > MAX_ECHO ? `${kid.slice(0, MAX_ECHO)}…` : kid
  return new RequestInvalid(`kid must be a key name or name/version (letters, digits and '-'), got ${JSON.stringify(shown)}: ${problem}`)
}

/** Splits `name` or `name/version`; RequestInvalid for anything else (paths, empty parts, other characters). */
export function parseKid (kid: string): KeyId {
  if (typeof kid !== 'string') throw new TypeError('parseKid: kid must be a string')
  if (kid === '') throw invalid(kid, 'it is empty')
  const parts = kid.split('/')
  if (parts.length > 2) throw invalid(kid, 'too many "/"')
  const [name = '', version] = parts
  if (!SEGMENT.test(name)) throw invalid(kid, 'bad key name')
  if (version === undefined) return { name, version: null }
  if (!SEGMENT.test(version)) throw invalid(kid, 'bad key version')
  return { name, version }
}
