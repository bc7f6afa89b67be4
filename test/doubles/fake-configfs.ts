// A TsmFs over a real temporary directory that behaves like the kernel's configfs-tsm report
// interface with the sev_guest provider (docs/sev-snp.md#configfs-tsm): mkdir populates the attribute
// files, writes to inblob/privlevel bump `generation`, reading outblob produces a report, and
// rmdir removes the attributes as configfs does implicitly. Faults are injected through the
// mutable `faults` object; `created`, `removed`, `writes` and `maxLive` record what happened.
import * as fsp from 'node:fs/promises'
import { constants, tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { serializeReport } from '../../src/snp/abi.ts'
import type { TsmFs } from '../../src/snp/tsm-fs.ts'

/** What the outblob callback gets: the entry's inblob and privlevel (0 when never written). */
export interface OutblobRequest { reportData: Buffer, vmpl: number, entry: string }

/** Faults to inject; change them between calls. */
export interface FakeConfigfsFaults {
  /** errno thrown by mkdir of an entry (e.g. 'ENOENT', 'ENXIO', 'EACCES'). */
  mkdirErrno: string | null
  /** Content of `provider` in new entries. */
  provider: string
  /** Content of `privlevel_floor` in new entries; null leaves the file out. */
  privlevelFloor: number | null
  /** errno thrown by outblob reads, for the next `outblobErrnoTimes` reads. */
  outblobErrno: string | null
  outblobErrnoTimes: number
  /** errno thrown by writes to inblob. */
  inblobErrno: string | null
  /** Resize the produced report to this many bytes. */
  outblobSize: number | null
  /** The next N outblob reads are followed by a foreign write bumping `generation`. */
  races: number
  /** auxblob content in new entries; null leaves the file out (older kernels). */
  auxblob: Buffer | null
}

/** Options of createFakeConfigfs. */
export interface FakeConfigfsOptions {
  /** Builds the outblob; default: a v2 report via serializeReport with REPORT_DATA and VMPL set. */
  report?: (request: OutblobRequest) => Buffer
}

/** The fake and its records; call cleanup() when done. */
export interface FakeConfigfs {
  root: string
  fs: TsmFs
  faults: FakeConfigfsFaults
  created: string[]
  removed: string[]
  writes: Array<{ entry: string, attribute: string, data: Buffer }>
  /** The most entries that existed at the same time. */
  maxLive: number
  /** Names left in the root directory. */
  leftovers: () => Promise<string[]>
  cleanup: () => Promise<void>
}

const ATTRIBUTES = ['provider', 'generation', 'privlevel_floor', 'inblob', 'privlevel', 'outblob', 'auxblob']

/** An errno exception shaped like Node's own (code, errno, syscall, path). */
export function errnoError (code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const number = (constants.errno as Record<string, number | undefined>)[code]
  const err: NodeJS.ErrnoException = new Error(`${code}: fake configfs, ${syscall} '${path}'`)
  err.code = code
  if (number !== undefined) err.errno = -number
  err.syscall = syscall
  err.path = path
  return err
}

/** A 1184-byte v2 report carrying the request's REPORT_DATA (0x50) and VMPL (0x30). */
export function defaultReport (request: OutblobRequest): Buffer {
  const zeros = (n: number): Buffer => Buffer.alloc(n)
  return serializeReport({
    version: 2,
    guestSvn: 0,
    policy: 0x30000n,
    familyId: zeros(16),
    imageId: zeros(16),
    vmpl: request.vmpl,
    signatureAlgo: 1,
    currentTcb: 0n,
    platformInfo: 0n,
    signerInfo: 0,
    reportData: request.reportData,
    measurement: zeros(48),
    hostData: zeros(32),
    idKeyDigest: zeros(48),
    authorKeyDigest: zeros(48),
    reportId: zeros(32),
    reportIdMa: Buffer.alloc(32, 0xff),
    reportedTcb: 0n,
    cpuid: null,
    chipId: zeros(64),
    committedTcb: 0n,
    currentVersion: { major: 1, minor: 55, build: 0 },
    committedVersion: { major: 1, minor: 55, build: 0 },
    launchTcb: 0n,
    launchMitVector: null,
    currentMitVector: null,
    signature: { r: zeros(48), s: zeros(48) }
  })
}

/** Creates a fake configfs-tsm report directory under the OS temp directory. */
export async function createFakeConfigfs (options: FakeConfigfsOptions = {}): Promise<FakeConfigfs> {
  const base = await fsp.mkdtemp(join(tmpdir(), 'skr-configfs-'))
  const root = join(base, 'report')
  await fsp.mkdir(root)
  const makeReport = options.report ?? defaultReport
  const live = new Set<string>()
  const faults: FakeConfigfsFaults = {
    mkdirErrno: null,
    provider: 'sev_guest\n',
    privlevelFloor: 0,
    outblobErrno: null,
    outblobErrnoTimes: Number.POSITIVE_INFINITY,
    inblobErrno: null,
    outblobSize: null,
    races: 0,
    auxblob: Buffer.alloc(0)
  }

  // Only direct children of root are entries; anything else is a caller bug worth an ENOENT.
  const entryOf = (path: string): string => {
    if (dirname(path) !== root) throw errnoError('ENOENT', 'open', path)
    return basename(path)
  }
  const bumpGeneration = async (entry: string): Promise<void> => {
    const file = join(root, entry, 'generation')
    const g = Number((await fsp.readFile(file, 'utf8')).trim())
    await fsp.writeFile(file, `${g + 1}\n`)
  }

  const fs: TsmFs = {
    async mkdir (path) {
      const entry = entryOf(path)
      if (faults.mkdirErrno !== null) throw errnoError(faults.mkdirErrno, 'mkdir', path)
      await fsp.mkdir(path)
      fake.created.push(entry)
      live.add(entry)
      fake.maxLive = Math.max(fake.maxLive, live.size)
      await fsp.writeFile(join(path, 'provider'), faults.provider)
      await fsp.writeFile(join(path, 'generation'), '0\n')
      if (faults.privlevelFloor !== null) await fsp.writeFile(join(path, 'privlevel_floor'), `${faults.privlevelFloor}\n`)
      if (faults.auxblob !== null) await fsp.writeFile(join(path, 'auxblob'), faults.auxblob)
    },
    async rmdir (path) {
      const entry = entryOf(path)
      // configfs drops an item's attributes with the item; a plain directory needs them gone first.
      for (const name of ATTRIBUTES) await fsp.rm(join(path, name), { force: true })
      await fsp.rmdir(path)
      live.delete(entry)
      fake.removed.push(entry)
    },
    async readFile (path) {
      const entry = entryOf(dirname(path))
      if (basename(path) !== 'outblob') return await fsp.readFile(path)
      if (faults.outblobErrno !== null && faults.outblobErrnoTimes > 0) {
        faults.outblobErrnoTimes--
        throw errnoError(faults.outblobErrno, 'read', path)
      }
      const dir = dirname(path)
      const reportData = await fsp.readFile(join(dir, 'inblob')).catch(() => Buffer.alloc(0))
      // sev_guest's own check (docs/sev-snp.md#configfs-tsm): anything but 64 bytes is EINVAL at read time.
      if (reportData.length !== 64) throw errnoError('EINVAL', 'read', path)
      const level = await fsp.readFile(join(dir, 'privlevel'), 'utf8').catch(() => '0')
      let report = makeReport({ reportData, vmpl: Number(level.trim()), entry })
      if (faults.outblobSize !== null) {
        const resized = Buffer.alloc(faults.outblobSize)
        report.copy(resized, 0, 0, Math.min(report.length, faults.outblobSize))
        report = resized
      }
      if (faults.races > 0) {
        faults.races--
        await bumpGeneration(entry)
      }
      return Buffer.from(report)
    },
    async writeFile (path, data) {
      const entry = entryOf(dirname(path))
      const attribute = basename(path)
      const bytes = Buffer.from(data)
      if (attribute === 'inblob') {
        if (faults.inblobErrno !== null) throw errnoError(faults.inblobErrno, 'write', path)
        if (bytes.length > 64) throw errnoError('EINVAL', 'write', path)
      } else if (attribute === 'privlevel') {
        const text = bytes.toString('utf8').trim()
        const floor = faults.privlevelFloor ?? 0
        if (!/^\d+$/.test(text) || Number(text) > 3 || Number(text) < floor) throw errnoError('EINVAL', 'write', path)
      } else {
        throw errnoError('EACCES', 'open', path) // every other attribute is read-only
      }
      await fsp.writeFile(path, bytes)
      fake.writes.push({ entry, attribute, data: bytes })
      await bumpGeneration(entry)
    },
    async access (path) {
      await fsp.access(path)
    }
  }

  const fake: FakeConfigfs = {
    root,
    fs,
    faults,
    created: [],
    removed: [],
    writes: [],
    maxLive: 0,
    leftovers: async () => await fsp.readdir(root),
    cleanup: async () => { await fsp.rm(base, { recursive: true, force: true }) }
  }
  return fake
}
