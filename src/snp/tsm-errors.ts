// The configfs-tsm backend's errno mapping (docs/sev-snp.md#configfs-tsm,
// docs/sev-snp.md#ioctl-errors): what each failure of an entry's mkdir, read or write means and
// what a user can do about it, and the Retry signal for a failure that a fresh entry may avoid.
import { RequestInvalid, SnpDeviceUnavailable, SnpFirmwareError } from '../errors.ts'
import type { ErrorDetails } from '../errors.ts'

/** Thrown inside one attempt when a fresh entry may succeed; never escapes withRetry (./tsm.ts). */
export class Retry extends Error {
  readonly kind: 'race' | 'busy'
  readonly details: ErrorDetails
  constructor (kind: 'race' | 'busy', details: ErrorDetails) {
    super(`configfs-tsm ${kind}`)
    this.kind = kind
    this.details = details
  }
}

/** The errno code (`EBUSY`, ...) of a filesystem failure; `unknown` when it has none. */
export function errnoOf (err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code
  return 'unknown'
}

const PERMISSION = new Set(['EACCES', 'EPERM', 'EROFS'])
const PERMISSION_HINT = 'configfs-tsm needs root and a writable /sys/kernel/config (in a container: run privileged or mount configfs read-write)'
const ABSENT_HINT = 'configfs-tsm not available: kernel < 6.7, configfs not mounted, or no TSM provider'

// What a user can do about each errno the sev_guest provider returns when a blob is read
// (docs/sev-snp.md#ioctl-errors, docs/sev-snp.md#configfs-tsm).
const FIRMWARE_HINTS: Readonly<Record<string, string>> = {
  EINVAL: 'the provider rejected the request (report data not 64 bytes, a VMPL below the guest\'s own, or firmware ' +
    'status INVALID_PARAM/INVALID_KEY); check the requested vmpl against privlevel_floor',
  ENXIO: 'the SEV-SNP firmware returned an error status, or the sev_guest provider went away; check dmesg for sev-guest messages',
  EIO: 'the host failed the guest request and the kernel may have disabled the VMPCK, after which every request fails; ' +
    'check dmesg, restart the VM, and report it to the platform operator',
  ETIMEDOUT: 'the host kept the request busy for over a minute and the kernel may have disabled the VMPCK; restart the ' +
    'VM if it persists and report it to the platform operator',
  ENOTTY: 'the sev-guest driver refuses requests, usually because an earlier fatal error disabled the VMPCK; restart the VM'
}

/** The error for a failed mkdir of a request's entry under `root` (EBUSY: Retry). */
export function mkdirFailure (err: unknown, root: string): Error {
  const errno = errnoOf(err)
  const options = { cause: err, details: { errno, operation: 'mkdir', backend: 'tsm' } }
  if (errno === 'EBUSY') return new Retry('busy', options.details)
  if (errno === 'ENOENT' || errno === 'ENXIO') return new SnpDeviceUnavailable(`${ABSENT_HINT} (mkdir in ${root}: ${errno})`, options)
  if (PERMISSION.has(errno)) return new SnpDeviceUnavailable(`cannot create an entry in ${root} (${errno}): ${PERMISSION_HINT}`, options)
  return new SnpDeviceUnavailable(`cannot create a configfs-tsm entry in ${root} (${errno})`, options)
}

/** The error for a failed read or write of an entry's attribute (EBUSY: Retry). */
export function fsFailure (err: unknown, operation: 'read' | 'write', attribute: string): Error {
  const errno = errnoOf(err)
  const options = { cause: err, details: { errno, operation, attribute, backend: 'tsm' } }
  if (errno === 'EBUSY') return new Retry('busy', options.details)
  if (PERMISSION.has(errno)) return new SnpDeviceUnavailable(`cannot ${operation} ${attribute} (${errno}): ${PERMISSION_HINT}`, options)
  if (attribute === 'privlevel' && errno === 'EINVAL') {
    return new RequestInvalid('the provider refused the requested vmpl (EINVAL): it is below privlevel_floor', { details: options.details })
  }
  const blob = operation === 'read' && attribute.endsWith('blob')
  const hint = blob ? FIRMWARE_HINTS[errno] : undefined
  if (hint !== undefined) return new SnpFirmwareError(`reading ${attribute} failed with ${errno}: ${hint}`, options)
  if (!blob && (errno === 'ENOENT' || errno === 'ENXIO')) {
    return new SnpDeviceUnavailable(`configfs-tsm entry has no usable ${attribute} (${errno}): the root is not a ` +
      'configfs-tsm report directory, or the provider went away', options)
  }
  return new SnpFirmwareError(`configfs-tsm ${operation} of ${attribute} failed with ${errno}`, options)
}

/** Why probeTsm found configfs-tsm unusable, at the stage that failed. */
export function probeReason (err: unknown, root: string, stage: 'access' | 'mkdir' | 'provider'): string {
  const errno = errnoOf(err)
  if (PERMISSION.has(errno)) return `${root}: ${errno}: ${PERMISSION_HINT}`
  if (stage !== 'provider' && (errno === 'ENOENT' || errno === 'ENXIO')) return `${root}: ${errno}: ${ABSENT_HINT}`
  return `${root}: ${stage} failed with ${errno}`
}
