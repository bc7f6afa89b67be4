// Azure error bodies, reduced to short, printable facts that may go into error details and logs.
// The raw body never leaves this module: it can echo request data back at us.
import { isObject, untrustedText } from '../text/untrusted.ts'

/** The code/message an Azure service put in its error body; every field optional. */
export interface AzureErrorInfo {
  code?: string
  message?: string
  innerCode?: string
}

const MAX_TEXT = 300
const MAX_BODY = 64 * 1024

// Controls (newlines included) would let an upstream forge log lines; an echoed token must not be logged.
function clean (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const text = untrustedText(value, { trim: true, max: MAX_TEXT, ellipsis: false })
  return text === '' ? undefined : text
}

/**
 * Parses `{"error":{"code","message","innererror":{"code"}}}` (MAA, AKV) and
 * `{"error","error_description"}` (IMDS, Entra). Texts are control-stripped, token-redacted
 * (text/untrusted.ts) and cut to 300 characters; anything else, including non-JSON, gives `{}`. Never throws.
 */
export function parseAzureError (body: Buffer): AzureErrorInfo {
  if (!Buffer.isBuffer(body) || body.length === 0 || body.length > MAX_BODY) return {}
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch {
    return {}
  }
  if (!isObject(json)) return {}
  const out: AzureErrorInfo = {}
  const error = json.error
  if (isObject(error)) {
    const code = clean(error.code)
    const message = clean(error.message)
    const inner = isObject(error.innererror) ? clean(error.innererror.code) : undefined
    if (code !== undefined) out.code = code
    if (message !== undefined) out.message = message
    if (inner !== undefined) out.innerCode = inner
  } else {
    const code = clean(error)
    const message = clean(json.error_description)
    if (code !== undefined) out.code = code
    if (message !== undefined) out.message = message
  }
  return out
}
