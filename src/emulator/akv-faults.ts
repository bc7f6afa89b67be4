// The AKV emulator's fault knobs (./akv.ts): statuses, delays and hostile release answers, read on
// every release request.
import { keyNotFound, type Answer } from './akv-answers.ts'

/** Hostile-but-well-formed release answers, for proving a client refuses them. */
export type CorruptJwsMode = 'signature' | 'x5c-untrusted' | 'wrong-kid' | 'wrong-enc' | 'truncate-ciphertext' | 'alg-none' | 'wrong-host'

/**
 * Fault knobs, read on every release request (mutate them between requests). `hold`: each release
 * waits for this promise to settle (after `delayMs`), so a test decides when the answers go out.
 */
export interface AkvFaults { status?: number, retryAfter?: string, delayMs?: number, hold?: Promise<unknown>, corruptJws?: CorruptJwsMode }

const FAULT_BODIES: Readonly<Record<number, { code: string, message: string, innererror?: { code: string } }>> = Object.freeze({
  401: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
  403: { code: 'Forbidden', message: 'Caller is not authorized to perform action on resource. Action: \'Microsoft.KeyVault/vaults/keys/release/action\'', innererror: { code: 'ForbiddenByRbac' } },
  429: { code: 'Throttled', message: 'Request was not processed because too many requests were received.' },
  500: { code: 'InternalServerError', message: 'The service encountered an internal error.' },
  503: { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' }
})

/** The answer a status fault forces (after the delay and hold faults), or null to go on with the release. */
export async function faultAnswer (faults: AkvFaults, name: string): Promise<Answer | null> {
  const delayMs = faults.delayMs
  if (typeof delayMs === 'number' && delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
  const hold = faults.hold
  if (hold !== undefined) await hold.then(() => undefined, () => undefined)
  const status = faults.status
  if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599) {
    const headers: Record<string, string> = faults.retryAfter === undefined ? {} : { 'Retry-After': faults.retryAfter }
    if (status === 404) return { ...keyNotFound(name), headers }
    return { status, body: { error: FAULT_BODIES[status] ?? { code: 'EmulatedFault', message: `Emulated fault ${status}.` } }, headers }
  }
  return null
}
