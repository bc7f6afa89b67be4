// QuoteProviders over the SEV-SNP guest ioctls: SNP_GET_REPORT on /dev/sev-guest and the
// legacy 5.15 /dev/sev interface of older Confidential ACI UVMs (docs/sev-snp.md#guest-request-ioctls to docs/sev-snp.md#legacy-aci-guest-device).
// The addon returns the raw response; everything that needs judgement lives here: one request
// in flight, MSG_REPORT_RSP checks, bounded retries of BUSY, and never retrying after the
// kernel has wiped the VMPCK (a retry cannot succeed and would only hide the first cause).
import { setTimeout as delay } from 'node:timers/promises'
import { InternalError, ReportInvalid, RequestInvalid, SnpDeviceUnavailable, SnpFirmwareError } from '../errors.ts'
import type { SidecarError } from '../errors.ts'
import { isNativeIoctlError, loadNativeBinding } from './native.ts'
import type { NativeBinding, NativeIoctlError } from './native.ts'
import { REPORT_DATA_SIZE } from './provider.ts'
import type { QuoteProvider, RawQuote } from './provider.ts'

/** Options for createIoctlProvider. */
export interface IoctlProviderOptions {
  /** 'sev-guest': the upstream driver (Linux >= 5.19); 'sev': the 5.15 UVM driver, only inside such a UVM. */
  device: 'sev-guest' | 'sev'
  /** Device node; defaults to /dev/sev-guest or /dev/sev. */
  path?: string
  /** The addon; loaded lazily by default. */
  binding?: NativeBinding
  /** EAGAIN/EBUSY retries: total attempts and the first delay, doubled each time (default 5, 200 ms). */
  retry?: { attempts: number, baseDelayMs: number }
  sleep?: (ms: number) => Promise<void>
}

const HDR_SIZE = 0x20 // MSG_REPORT_RSP: status u32, report_size u32, 24 reserved (SNP ABI 56860 Table 25)
const MIN_REPORT_SIZE = 0x4A0
const RESPONSE_SIZE = { 'sev-guest': 4000, sev: 1280 } as const
const DEFAULT_PATH = { 'sev-guest': '/dev/sev-guest', sev: '/dev/sev' } as const
const DEFAULT_RETRY = { attempts: 5, baseDelayMs: 200 }
const MAX_DELAY_MS = 10_000

const OPEN_CAUSES = new Set(['ENOENT', 'EACCES', 'EPERM', 'ENXIO', 'ENODEV'])
const OPEN_HINT = 'is the sev-guest module loaded, is the device passed into the container, are you root?'
const FATAL_CODES = new Set(['EIO', 'EBADMSG', 'ETIMEDOUT'])
const VMPCK_WIPED = "the kernel has now disabled the guest's message key (VMPCK), so later requests will fail until the UVM restarts"

// SEV firmware status codes (linux/psp-sev.h sev_ret_code; 0x27 from SNP ABI 56860).
const FW_STATUS: Readonly<Record<number, string>> = {
  0x01: 'invalid platform state', 0x02: 'invalid guest state', 0x03: 'invalid config',
  0x04: 'invalid length', 0x06: 'invalid certificate', 0x07: 'policy failure', 0x08: 'inactive',
  0x09: 'invalid address', 0x0A: 'bad signature', 0x0B: 'bad measurement', 0x10: 'invalid guest',
  0x11: 'invalid command', 0x15: 'unsupported', 0x16: "invalid parameters, e.g. a VMPL below the guest's",
  0x17: 'resource limit', 0x18: 'secure data invalid', 0x27: 'invalid key selection'
}
const VMM_ERROR: Readonly<Record<number, string>> = { 0: 'none', 1: 'invalid length', 2: 'host busy' }

const hex = (n: number): string => `0x${n.toString(16)}`

/** A QuoteProvider over /dev/sev-guest (or legacy /dev/sev) through the native addon. */
export function createIoctlProvider (options: IoctlProviderOptions): QuoteProvider {
  const { device } = options
  if (device !== 'sev-guest' && device !== 'sev') throw new TypeError(`device must be 'sev-guest' or 'sev', got ${String(device)}`)
  const retry = options.retry ?? DEFAULT_RETRY
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1 || !(retry.baseDelayMs >= 0)) {
    throw new TypeError('retry needs an integer attempts >= 1 and baseDelayMs >= 0')
  }
  const path = options.path ?? DEFAULT_PATH[device]
  const legacy = device === 'sev'
  const sleep = options.sleep ?? (async (ms: number) => { await delay(ms) })
  let binding = options.binding
  // Guest requests are strictly one at a time; older kernels turn contention into a VMPCK wipe.
  let tail: Promise<unknown> = Promise.resolve()
  let fatal: SnpFirmwareError | undefined

  async function call (data: Buffer, vmpl: number): Promise<Buffer> {
    binding ??= loadNativeBinding()
    for (let attempt = 1; ; attempt++) {
      try {
        return await binding.getReport(data, vmpl, path, legacy)
      } catch (err) {
        if (!isNativeIoctlError(err)) throw new InternalError('the SEV-SNP addon failed unexpectedly', { cause: err })
        const busy = err.syscall === 'ioctl' && (err.code === 'EAGAIN' || err.code === 'EBUSY')
        if (!busy || attempt >= retry.attempts) throw mapIoctlError(err, path, attempt)
        await sleep(Math.min(retry.baseDelayMs * 2 ** (attempt - 1), MAX_DELAY_MS))
      }
    }
  }

  async function request (data: Buffer, vmpl: number): Promise<RawQuote> {
    if (fatal !== undefined) throw fatal
    let response: Buffer
    try {
      response = await call(data, vmpl)
    } catch (err) {
      if (err instanceof SnpFirmwareError && err.details.vmpckDisabled === true) fatal = err
      throw err
    }
    return { report: extractReport(response, RESPONSE_SIZE[device], path), backend: device }
  }

  return {
    backend: device,
    simulated: false,
    async getReport (reportData: Uint8Array, vmpl = 0): Promise<RawQuote> {
      const data = checkReportData(reportData)
      checkVmpl(vmpl)
      const run = tail.then(async () => await request(data, vmpl))
      tail = run.catch(() => undefined)
      return await run
    }
  }
}

/** Copies reportData into a fresh 64-byte Buffer, or throws RequestInvalid. */
function checkReportData (reportData: unknown): Buffer {
  if (!(reportData instanceof Uint8Array)) {
    throw new RequestInvalid(`reportData is ${typeof reportData}, want a Uint8Array of ${REPORT_DATA_SIZE} bytes`)
  }
  if (reportData.length !== REPORT_DATA_SIZE) {
    throw new RequestInvalid(`reportData is ${reportData.length} bytes, want exactly ${REPORT_DATA_SIZE}`,
      { details: { length: reportData.length } })
  }
  return Buffer.from(reportData)
}

function checkVmpl (vmpl: unknown): void {
  if (typeof vmpl !== 'number' || !Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) {
    throw new RequestInvalid(`vmpl is ${String(vmpl)}, want an integer from 0 to 3`)
  }
}

/** Checks MSG_REPORT_RSP (status, then report_size) and returns a copy of the report bytes. */
function extractReport (response: Buffer, responseSize: number, path: string): Buffer {
  if (response.length !== responseSize) {
    throw new ReportInvalid(`the ${path} response is ${response.length} bytes, want ${responseSize}`,
      { details: { path, length: response.length } })
  }
  const status = response.readUInt32LE(0)
  if (status !== 0) {
    throw new SnpFirmwareError(
      `the firmware answered MSG_REPORT_RSP status ${hex(status)} (${FW_STATUS[status] ?? 'unknown status'}), want 0`,
      { details: { path, status } })
  }
  const reportSize = response.readUInt32LE(4)
  const max = responseSize - HDR_SIZE
  if (reportSize < MIN_REPORT_SIZE || reportSize > max) {
    throw new ReportInvalid(`MSG_REPORT_RSP report_size is ${hex(reportSize)}, want ${hex(MIN_REPORT_SIZE)}..${hex(max)}`,
      { details: { path, reportSize } })
  }
  return Buffer.from(response.subarray(HDR_SIZE, HDR_SIZE + reportSize))
}

/** Maps an addon rejection to the typed error, naming who can fix it. */
function mapIoctlError (err: NativeIoctlError, path: string, attempts: number): SidecarError {
  const details = {
    path, errno: err.errno, code: err.code, syscall: err.syscall, attempts,
    fwError: err.fwError, vmmError: err.vmmError, exitinfo2: err.exitinfo2
  }
  const options = { cause: err, details }
  if (err.syscall === 'open') {
    const hint = OPEN_CAUSES.has(err.code) ? `: ${OPEN_HINT}` : ''
    return new SnpDeviceUnavailable(`cannot open ${path} (${err.code}, errno ${err.errno})${hint}`, options)
  }
  const what = `SNP_GET_REPORT on ${path} failed with ${err.code} (errno ${err.errno})`
  if (FATAL_CODES.has(err.code)) {
    const fw = `firmware error ${hex(err.fwError)} (${FW_STATUS[err.fwError] ?? 'unknown'}), ` +
      `VMM error ${err.vmmError} (${VMM_ERROR[err.vmmError] ?? 'unknown'})`
    return new SnpFirmwareError(`${what}, ${fw}; ${VMPCK_WIPED}`, { cause: err, details: { ...details, vmpckDisabled: true } })
  }
  switch (err.code) {
    case 'ENOTTY':
      return new SnpFirmwareError(`${what}: the guest's message key (VMPCK) is disabled after an earlier firmware ` +
        `error (restart the UVM), or ${path} does not support this ioctl`, options)
    case 'EAGAIN':
    case 'EBUSY':
      return new SnpFirmwareError(`${what}: the host stayed busy after ${attempts} attempts; retry later`, options)
    case 'EINVAL':
      return new SnpFirmwareError(`${what}: the driver rejected the request; ${path} may not speak this ABI ` +
        '(on a KVM host /dev/sev is the host PSP device)', options)
    default:
      return new SnpFirmwareError(what, options)
  }
}
