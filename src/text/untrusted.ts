// Text skr did not write (upstream error bodies, SDK messages, token claims, caller input) on its
// way into a log line, an error message or an operator's terminal: one place that decides which
// characters may pass and which substrings look like credentials. Pure: no I/O, no imports.

// C0 (CR, LF, ESC, NUL …), DEL and C1 (NEL, CSI …) can forge or rewrite log and terminal lines;
// U+2028/U+2029 are line breaks to JavaScript and many log viewers; the bidi marks, embeddings,
// overrides and isolates (U+061C, U+200E/F, U+202A-E, U+2066-9) reorder what a reader sees
// (CVE-2021-42574, "Trojan Source").
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/
const CONTROL_ALL = new RegExp(CONTROL.source, 'g')

// A compact JWS/JWT (and the first three parts of a JWE): a base64url JSON header, which always
// starts `{"` and so encodes to `eyJ`, then at least one more dot-separated base64url part.
const TOKEN_SHAPED = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*/
const TOKEN_SHAPED_ALL = new RegExp(TOKEN_SHAPED.source, 'g')

/** What replaces each token-shaped run. */
export const REDACTED = '[redacted]'

/** How oneLine shapes its result; every member optional. */
export interface OneLineOptions {
  /** The most UTF-16 code units kept (the ellipsis not counted); default: no cap. */
  max?: number
  /** Append `…` when `max` cut the text (default true). */
  ellipsis?: boolean
  /** Trim surrounding whitespace before the cut (default false). */
  trim?: boolean
  /** Write each control as JSON's `\uXXXX` instead of a space, for output that must show the text exactly (default false). */
  escape?: boolean
}

/** True when `text` holds a character oneLine replaces: a C0 or C1 control, DEL, U+2028/U+2029 or a bidi control. */
export function hasControl (text: string): boolean {
  return CONTROL.test(text)
}

function unicodeEscape (char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`
}

/**
 * `text` made safe for one line of a log, a message or a terminal: every character hasControl
 * finds becomes a space (or, with `escape`, `\uXXXX`), so untrusted text can neither start a line
 * nor move the cursor nor reorder what is shown. With `max`, a longer result is cut (never inside
 * a surrogate pair) and, unless `ellipsis: false`, ends with `…`.
 */
export function oneLine (text: string, options: OneLineOptions = {}): string {
  let out = options.escape === true ? text.replace(CONTROL_ALL, unicodeEscape) : text.replace(CONTROL_ALL, ' ')
  if (options.trim === true) out = out.trim()
  const max = options.max
  if (max === undefined || out.length <= max) return out
  const last = out.charCodeAt(max - 1)
  const end = last >= 0xd800 && last <= 0xdbff ? max - 1 : max
  return `${out.slice(0, end)}${options.ellipsis === false ? '' : '…'}`
}

/** True when `text` contains something shaped like a JWT (`eyJ….….…`): a bearer token that must not be shown. */
export function isTokenShaped (text: string): boolean {
  return TOKEN_SHAPED.test(text)
}

/**
 * `text` with every JWT-shaped run replaced by `[redacted]`. Upstreams (Entra, IMDS, AKV) may echo
 * the token or assertion they were sent; the echo must not reach a message or a log.
 */
export function redactTokens (text: string): string {
  return text.replace(TOKEN_SHAPED_ALL, REDACTED)
}

/** Upstream or caller text as a message or log field may carry it: redactTokens, then oneLine with `options`. */
export function untrustedText (text: string, options: OneLineOptions = {}): string {
  return oneLine(redactTokens(text), options)
}

/**
 * True for a non-null object that is not an array, typed for member reads: the runtime check on
 * parsed JSON before its members are read (jose's isObject; other objects, such as Date or a
 * null-prototype object, also pass, as JSON.parse never makes them).
 */
export function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
