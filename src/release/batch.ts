// Batch release: several keys of one vault under ONE attestation (one wrapping key, one MAA
// token), released concurrently with a bound. Per-kid failures are results, so one missing or
// denied key does not hide the others; the batch as a whole fails only when nothing could be
// tried (a malformed batch, the attestation failed) or the caller went away.
import { InternalError, isSidecarError, RequestInvalid } from '../errors.ts'
import type { SidecarError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { KeyReleaseBatchRequest, KeyReleaseBatchResult } from '../service/types.ts'
import type { AttestationLease } from './attestation-cache.ts'

/** How a batch reaches the orchestrator (key-release.ts). */
/** Most kids one batch release carries by default; the HTTP schema's bound (MAX_BATCH_KIDS) is this too. */
export const DEFAULT_MAX_BATCH = 16

export interface BatchDeps<T> {
  maxBatch: number
  concurrency: number
  /** Parses one kid (throws RequestInvalid for a malformed one). */
  targetOf: (kid: string) => T
  /** The batch's one attestation. */
  attest: () => Promise<AttestationLease>
  releaseOne: (target: T, lease: AttestationLease) => Promise<Record<string, unknown>>
  signal?: AbortSignal
  log?: Logger
}

function asSidecarError (err: unknown): SidecarError {
  return isSidecarError(err) ? err : new InternalError('internal error', { cause: err })
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function forEachBounded<T> (items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await work(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Releases every kid of `request`; see KeyReleaseService.releaseMany. */
export async function releaseBatch<T> (request: KeyReleaseBatchRequest, deps: BatchDeps<T>): Promise<KeyReleaseBatchResult> {
  const { kids } = request
  if (!Array.isArray(kids) || kids.length === 0 || kids.length > deps.maxBatch) {
    throw new RequestInvalid(`kids must list 1 to ${deps.maxBatch} key ids, got ${Array.isArray(kids) ? kids.length : 'none'}`)
  }
  if (new Set(kids).size !== kids.length) throw new RequestInvalid('kids must not list a key id twice')
  deps.signal?.throwIfAborted()

  const released = new Map<string, Record<string, unknown>>()
  const failed = new Map<string, SidecarError>()
  const targets: Array<{ kid: string, target: T }> = []
  for (const kid of kids) {
    try {
      targets.push({ kid, target: deps.targetOf(kid) })
    } catch (err) {
      failed.set(kid, asSidecarError(err))
    }
  }

  if (targets.length > 0) {
    const lease = await deps.attest()
    await forEachBounded(targets, Math.max(1, deps.concurrency), async ({ kid, target }) => {
      try {
        released.set(kid, await deps.releaseOne(target, lease))
      } catch (err) {
        failed.set(kid, asSidecarError(err))
      }
    })
  }
  // A batch the caller abandoned is not answered piecemeal.
  deps.signal?.throwIfAborted()
  deps.log?.info({ akv: request.akvEndpoint, requested: kids.length, released: released.size, failed: failed.size }, 'key batch released')

  // Built in request order, with own data properties only (a kid can never reach a prototype).
  return {
    keys: Object.fromEntries(kids.filter((kid) => released.has(kid)).map((kid) => [kid, released.get(kid) as Record<string, unknown>])),
    errors: Object.fromEntries(kids.filter((kid) => failed.has(kid)).map((kid) => [kid, failed.get(kid) as SidecarError]))
  }
}
