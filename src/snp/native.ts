// Loads build/Release/snp_guest.node (native/*.cc) on first use, never at import time: skr
// must start, and serve the simulated or configfs backends, on hosts where the addon was not
// built or cannot load. Failure becomes ERR_SNP_DEVICE_UNAVAILABLE with the fix in the message.
import { createRequire } from 'node:module'
import { SnpDeviceUnavailable } from '../errors.ts'
import { packagePath } from '../package-root.ts'

/** The addon's surface (native/addon.cc). */
export interface NativeBinding {
  /**
   * One SNP_GET_REPORT ioctl (or the legacy 5.15 /dev/sev one when `legacy`) on a worker thread.
   * Resolves with the whole response buffer (4000 bytes, legacy 1280): MSG_REPORT_RSP unchecked.
   * Rejects with a NativeIoctlError. Throws TypeError/RangeError on bad arguments.
   */
  getReport (reportData: Buffer, vmpl: number, device: string, legacy: boolean): Promise<Buffer>
}

/** The error the addon rejects with: message "SNP_GET_REPORT: <strerror>" plus these facts. */
export interface NativeIoctlError extends Error {
  /** The positive Linux errno. */
  errno: number
  /** Its symbolic name ('EIO'), or 'EUNKNOWN'. */
  code: string
  syscall: 'open' | 'ioctl'
  /** exitinfo2 bits 31:0 (legacy: the `error` field). Only meaningful after EIO. */
  fwError: number
  /** exitinfo2 bits 63:32. */
  vmmError: number
  /** exitinfo2 as 0x-prefixed 16-digit hex. */
  exitinfo2: string
}

/** Test seams for loadNativeBinding. */
export interface LoadNativeOptions {
  /** Defaults to process.platform. */
  platform?: NodeJS.Platform
  /** Defaults to a require() relative to this module. */
  require?: (id: string) => unknown
}

// Built by node-gyp into the package root's build/ (binding.gyp), from a checkout and in the bundle.
// Errors name it relative to the root: where the package is installed is nobody's business.
const ADDON_PATH = 'build/Release/snp_guest.node'
const BUILD_HINT = 'run `npm run build:native` (needs a C++ toolchain, python3 and make)'

let cached: NativeBinding | undefined

/** Returns the addon, loading it once; throws SnpDeviceUnavailable when it cannot be used. */
export function loadNativeBinding (options: LoadNativeOptions = {}): NativeBinding {
  const injected = options.platform !== undefined || options.require !== undefined
  if (!injected && cached !== undefined) return cached
  const platform = options.platform ?? process.platform
  if (platform !== 'linux') {
    throw new SnpDeviceUnavailable(
      `the SEV-SNP ioctl backend needs Linux, found platform ${platform}; use the simulated backend here`,
      { details: { platform } })
  }
  const load = options.require ?? createRequire(import.meta.url)
  let mod: unknown
  try {
    mod = load(packagePath(ADDON_PATH))
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined
    throw new SnpDeviceUnavailable(
      `the SEV-SNP addon build/Release/snp_guest.node could not be loaded (${code ?? 'load error'}); ${BUILD_HINT}`,
      { cause: err, details: { addon: ADDON_PATH, loadError: code } })
  }
  if (!isNativeBinding(mod)) {
    throw new SnpDeviceUnavailable(
      `build/Release/snp_guest.node does not export getReport(); it is stale or not skr's addon: ${BUILD_HINT}`,
      { details: { addon: ADDON_PATH } })
  }
  if (!injected) cached = mod
  return mod
}

function isNativeBinding (mod: unknown): mod is NativeBinding {
  return typeof mod === 'object' && mod !== null && 'getReport' in mod && typeof mod.getReport === 'function'
}

/** True when `err` has the shape the addon rejects with. */
export function isNativeIoctlError (err: unknown): err is NativeIoctlError {
  if (!(err instanceof Error)) return false
  const e = err as Partial<Record<keyof NativeIoctlError, unknown>>
  return typeof e.errno === 'number' && typeof e.code === 'string' &&
    (e.syscall === 'open' || e.syscall === 'ioctl') &&
    typeof e.fwError === 'number' && typeof e.vmmError === 'number' && typeof e.exitinfo2 === 'string'
}
