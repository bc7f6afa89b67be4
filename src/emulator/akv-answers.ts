// The AKV emulator's answers (./akv.ts): Azure-shaped errors (docs/protocols.md#test-doubles),
// the release denials, and the JSON body every write route reads first.
import type { IncomingMessage } from 'node:http'
import { isObject } from '../text/untrusted.ts'
import { azureError, readBody } from './http-util.ts'

const MAX_BODY = 1024 * 1024

/** The release denial for an attestation statement that is unverifiable or does not meet the policy. */
export const DENIED = { error: { code: 'Forbidden', message: 'Target environment attestation statement cannot be verified.', innererror: { code: 'AccessDenied' } } }

/** The release denial for a key that is not exportable (hence has no policy). */
export const NOT_EXPORTABLE = { error: { code: 'Forbidden', message: 'The key is not exportable or has no release policy.', innererror: { code: 'KeyNotExportable' } } }

/** What a route answers; no body (undefined) for the Managed HSM challenge. */
export interface Answer { status: number, body?: unknown, headers?: Record<string, string> }

/** An Azure error answer: `{error: {code, message}}` with its status. */
export function akvError (status: number, code: string, message: string): Answer {
  return { status, body: azureError(code, message) }
}

/** 400 BadParameter. */
export function badParameter (message: string): Answer {
  return akvError(400, 'BadParameter', message)
}

/** 404 KeyNotFound for a key name or name/version. */
export function keyNotFound (id: string): Answer {
  return akvError(404, 'KeyNotFound', `A key with (name/id) ${id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`)
}

/** The request body as a JSON object, or the 400 answer for one too large or not an object. */
export async function readJson (req: IncomingMessage): Promise<{ doc: Record<string, unknown> } | { answer: Answer }> {
  const body = await readBody(req, MAX_BODY)
  if (body === null) return { answer: badParameter('The request body is too large.') }
  try {
    const doc: unknown = JSON.parse(body.toString('utf8'))
    if (isObject(doc)) return { doc }
  } catch {
    // not JSON: answered below like any other non-object body
  }
  return { answer: badParameter('The request body is not a JSON object.') }
}
