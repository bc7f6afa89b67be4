// The steps of a key release and the relabelling that names them. Shared by the orchestrator
// (key-release.ts) and the attestation cache, which runs the "wrapping key" and "attestation"
// steps on the orchestrator's behalf: a failure must read the same whether the attestation was
// done for this request or shared with others.
import { InternalError, isSidecarError } from '../errors.ts'
import type { SidecarError, SidecarErrorOptions } from '../errors.ts'

/** The steps of a release, as they prefix error messages and fill `details.step`. */
export type ReleaseStep = 'wrapping key' | 'attestation' | 'identity' | 'release' | 'verification' | 'unwrap'

type SidecarErrorClass = new (message: string, options?: SidecarErrorOptions) => SidecarError

/** Re-labels a failure with its step, keeping class, code and status; the caller's own cancellation passes unchanged. */
export function inStep (step: ReleaseStep, err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted === true && (err === signal.reason || !isSidecarError(err))) return err
  if (isSidecarError(err)) {
    const Class = err.constructor as SidecarErrorClass
    return new Class(`${step}: ${err.message}`, { cause: err, details: { ...err.details, step } })
  }
  // Not ours (a TypeError, a library bug): its text is not vetted for secrets, so it stays in `cause`.
  return new InternalError(`${step}: internal error`, { cause: err, details: { step } })
}

/** Runs one step: refuses to start once `signal` fired, and relabels any failure with inStep. */
export async function runStep<T> (step: ReleaseStep, signal: AbortSignal | undefined, work: () => Promise<T> | T): Promise<T> {
  try {
    // No step starts once the caller has gone (its reason passes through inStep unchanged).
    signal?.throwIfAborted()
    return await work()
  } catch (err) {
    throw inStep(step, err, signal)
  }
}
