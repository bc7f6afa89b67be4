// The configfs-tsm attestation backend (Linux 6.7+; docs/sev-snp.md#configfs-tsm).
// Each request gets its own entry under /sys/kernel/config/tsm/report: mkdir, write inblob
// (and privlevel), read outblob and auxblob, check that `generation` counted only our writes, rmdir.
// A private entry per request is what makes the generation check meaningful: any extra bump means
// another writer touched our entry and the blob we read may answer someone else's inblob.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { RequestInvalid, ReportInvalid, SnpDeviceUnavailable, SnpFirmwareError } from '../errors.ts'
import type { ErrorDetails } from '../errors.ts'
import { REPORT_SIZE } from './abi.ts'
import { REPORT_DATA_SIZE } from './provider.ts'
import type { QuoteProvider, RawQuote } from './provider.ts'
import { errnoOf, fsFailure, mkdirFailure, probeReason, Retry } from './tsm-errors.ts'
import { nodeTsmFs, type TsmFs } from './tsm-fs.ts'

/** Where the kernel exposes configfs-tsm report entries. */
export const DEFAULT_TSM_ROOT = '/sys/kernel/config/tsm/report'

/** Options of createTsmProvider; every field has a production default. */
export interface TsmProviderOptions {
  root?: string
  fs?: TsmFs
  /** Names each request's entry; must be unique per call (default `skr-<pid>-<16 hex>`). */
  entryName?: () => string
}

const SEV_GUEST_PROVIDER = 'sev_guest'

function defaultEntryName (): string {
  return `skr-${process.pid}-${randomBytes(8).toString('hex')}`
}

interface Context { root: string, fs: TsmFs, entryName: () => string }

/** A QuoteProvider over configfs-tsm; requests run one at a time, each in its own entry. */
export function createTsmProvider (options: TsmProviderOptions = {}): QuoteProvider {
  const ctx: Context = { root: options.root ?? DEFAULT_TSM_ROOT, fs: options.fs ?? nodeTsmFs, entryName: options.entryName ?? defaultEntryName }
  // One request at a time: the provider's generation counter and the PSP are shared, and
  // parallel entries only add contention (docs/sev-snp.md#ioctl-errors: the host throttles).
  let queue: Promise<unknown> = Promise.resolve()
  return Object.freeze({
    backend: 'tsm' as const,
    simulated: false,
    async getReport (reportData: Uint8Array, vmpl?: number): Promise<RawQuote> {
      const data = checkReportData(reportData)
      checkVmpl(vmpl)
      const run = queue.then(async () => await withRetry(ctx, data, vmpl))
      queue = run.catch(() => undefined)
      return await run
    }
  })
}

function checkReportData (reportData: Uint8Array): Buffer {
  if (!(reportData instanceof Uint8Array)) throw new TypeError('reportData must be a Uint8Array')
  // sev_guest answers EINVAL to anything but 64 bytes, and only when outblob is read; say so up front.
  if (reportData.length !== REPORT_DATA_SIZE) {
    throw new RequestInvalid(`report data is ${reportData.length} bytes, want exactly ${REPORT_DATA_SIZE}`,
      { details: { found: reportData.length, expected: REPORT_DATA_SIZE } })
  }
  return Buffer.from(reportData) // a private copy: the caller may reuse its buffer while we queue
}

function checkVmpl (vmpl: number | undefined): void {
  if (vmpl === undefined) return
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) {
    throw new RequestInvalid(`vmpl ${String(vmpl)} is out of range, want an integer 0..3`, { details: { expected: '0..3' } })
  }
}

// A race or EBUSY earns one more try in a fresh entry; a second one is reported.
async function withRetry (ctx: Context, data: Buffer, vmpl: number | undefined): Promise<RawQuote> {
  let last: Retry | undefined
  for (let i = 0; i < 2; i++) {
    try {
      return await attempt(ctx, data, vmpl)
    } catch (err) {
      if (!(err instanceof Retry)) throw err
      last = err
    }
  }
  const details: ErrorDetails = { ...last?.details, backend: 'tsm', attempts: 2 }
  if (last?.kind === 'race') {
    throw new SnpFirmwareError('configfs-tsm entry generation changed under us twice: another process is writing to ' +
      'our entries, so the report cannot be trusted to answer our inblob; find and stop that writer', { details })
  }
  throw new SnpFirmwareError('configfs-tsm answered EBUSY twice: the provider is busy; retry the request later', { details })
}

async function attempt (ctx: Context, data: Buffer, vmpl: number | undefined): Promise<RawQuote> {
  const name = ctx.entryName()
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/')) {
    throw new TypeError('entryName() must return a plain directory name')
  }
  const dir = join(ctx.root, name)
  try {
    await ctx.fs.mkdir(dir)
  } catch (err) {
    throw mkdirFailure(err, ctx.root)
  }
  try {
    return await fill(ctx.fs, dir, data, vmpl)
  } finally {
    // A failed rmdir must not hide the request's own outcome; the entry holds no secret.
    await ctx.fs.rmdir(dir).catch(() => undefined)
  }
}

async function fill (fs: TsmFs, dir: string, data: Buffer, vmpl: number | undefined): Promise<RawQuote> {
  const g0 = await readGeneration(fs, dir)
  let writes = 0
  await write(fs, dir, 'inblob', data)
  writes++
  if (vmpl !== undefined) {
    const floor = await readPrivlevelFloor(fs, dir)
    if (floor !== undefined && vmpl < floor) {
      throw new RequestInvalid(`vmpl ${vmpl} is below this guest's privlevel_floor ${floor}; request ${floor} or higher`,
        { details: { vmpl, privlevelFloor: floor } })
    }
    await write(fs, dir, 'privlevel', String(vmpl))
    writes++
  }
  const provider = (await read(fs, dir, 'provider')).toString('utf8').trim()
  if (provider !== SEV_GUEST_PROVIDER) {
    const shown = provider.slice(0, 64)
    throw new SnpDeviceUnavailable(`configfs-tsm provider is "${shown}", want "${SEV_GUEST_PROVIDER}": this is not an SEV-SNP guest`,
      { details: { provider: shown, backend: 'tsm' } })
  }
  const report = await read(fs, dir, 'outblob')
  const aux = await readOptional(fs, dir, 'auxblob')
  const g1 = await readGeneration(fs, dir)
  if (g1 !== g0 + writes) throw new Retry('race', { found: g1, expected: g0 + writes })
  if (report.length !== REPORT_SIZE) {
    throw new ReportInvalid(`outblob is ${report.length} bytes, want ${REPORT_SIZE}`,
      { details: { found: report.length, expected: REPORT_SIZE, backend: 'tsm' } })
  }
  return aux === undefined || aux.length === 0
    ? { report, backend: 'tsm' }
    : { report, certTable: aux, backend: 'tsm' }
}

async function read (fs: TsmFs, dir: string, attribute: string): Promise<Buffer> {
  try {
    return await fs.readFile(join(dir, attribute))
  } catch (err) {
    throw fsFailure(err, 'read', attribute)
  }
}

async function readOptional (fs: TsmFs, dir: string, attribute: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(join(dir, attribute))
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined // no certificates from this kernel or host
    throw fsFailure(err, 'read', attribute)
  }
}

async function write (fs: TsmFs, dir: string, attribute: string, data: Uint8Array | string): Promise<void> {
  try {
    await fs.writeFile(join(dir, attribute), data)
  } catch (err) {
    throw fsFailure(err, 'write', attribute)
  }
}

function parseCounter (raw: Buffer, attribute: string): number {
  const text = raw.toString('utf8').trim()
  if (!/^\d{1,15}$/.test(text)) {
    throw new SnpDeviceUnavailable(`configfs-tsm ${attribute} reads "${text.slice(0, 32)}", want a decimal number: ` +
      'the root is not a configfs-tsm report directory', { details: { attribute, backend: 'tsm' } })
  }
  return Number(text)
}

async function readGeneration (fs: TsmFs, dir: string): Promise<number> {
  return parseCounter(await read(fs, dir, 'generation'), 'generation')
}

// privlevel_floor only helps us explain a refusal; when it cannot be read the kernel still
// enforces it on the privlevel write.
async function readPrivlevelFloor (fs: TsmFs, dir: string): Promise<number | undefined> {
  let raw: Buffer
  try {
    raw = await fs.readFile(join(dir, 'privlevel_floor'))
  } catch {
    return undefined
  }
  const text = raw.toString('utf8').trim()
  return /^\d{1,3}$/.test(text) ? Number(text) : undefined
}

/** Whether configfs-tsm is usable here: a probe entry can be made and its provider is sev_guest. */
export async function probeTsm (options: { root?: string, fs?: TsmFs } = {}): Promise<{ usable: boolean, reason: string }> {
  const root = options.root ?? DEFAULT_TSM_ROOT
  const fs = options.fs ?? nodeTsmFs
  try {
    await fs.access(root)
  } catch (err) {
    return { usable: false, reason: probeReason(err, root, 'access') }
  }
  const dir = join(root, `skr-probe-${process.pid}-${randomBytes(8).toString('hex')}`)
  try {
    await fs.mkdir(dir)
  } catch (err) {
    return { usable: false, reason: probeReason(err, root, 'mkdir') }
  }
  try {
    const provider = (await fs.readFile(join(dir, 'provider'))).toString('utf8').trim().slice(0, 64)
    if (provider !== SEV_GUEST_PROVIDER) return { usable: false, reason: `${root}: provider is "${provider}", want "${SEV_GUEST_PROVIDER}"` }
    return { usable: true, reason: `${root}: provider ${SEV_GUEST_PROVIDER}` }
  } catch (err) {
    return { usable: false, reason: probeReason(err, root, 'provider') }
  } finally {
    await fs.rmdir(dir).catch(() => undefined)
  }
}
