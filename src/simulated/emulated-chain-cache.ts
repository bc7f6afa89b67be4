// The emulated AMD chain's source: PEM given by the operator, else the chain cached on disk, else
// a fresh one (./emulated-chain-generator.ts) cached for the next start.
import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { ConfigInvalid } from '../errors.ts'
import { emulatedChainFromPem, type EmulatedAmdChain, type PemSource } from './emulated-chain.ts'
import { generateEmulatedChain } from './emulated-chain-generator.ts'

/** Options of loadOrCreateEmulatedChain. */
export interface LoadEmulatedChainOptions {
  /** Where the generated chain is cached; default defaultEmulatedCacheDir(). */
  cacheDir?: string
  /** SKR_SIMULATED_VCEK_KEY: the VCEK's PEM private key (with certChainPem, replaces the cache). */
  vcekKeyPem?: string
  /** SKR_SIMULATED_CERT_CHAIN: PEM VCEK, ASK, ARK. */
  certChainPem?: string
  now?: Date
  /** Makes a chain when the cache has no usable one; default generateEmulatedChain. */
  generate?: (now: Date) => Promise<EmulatedAmdChain>
  /**
   * Called with a line for a person before and after a chain is generated (seconds of work with
   * nothing else to show, on a first run); not called when the chain comes from the cache or PEM.
   * Callers print it on stderr, so a command's JSON on stdout stays parseable.
   */
  progress?: (message: string) => void
}

const CACHE_FILE = 'emulated-amd-chain.json'
const CACHE_FORMAT = 'skr-emulated-amd-chain/1'
const ENV_SOURCE: PemSource = { key: 'SKR_SIMULATED_VCEK_KEY', chain: 'SKR_SIMULATED_CERT_CHAIN' }

function invalid (message: string, key: string): ConfigInvalid {
  return new ConfigInvalid(message, { details: { key } })
}

/** `${XDG_CACHE_HOME:-~/.cache}/skr` (XDG says a relative XDG_CACHE_HOME is to be ignored). */
export function defaultEmulatedCacheDir (env: Readonly<Record<string, string | undefined>> = process.env): string {
  const xdg = env.XDG_CACHE_HOME
  return join(xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'skr')
}

/**
 * The emulated chain: from vcekKeyPem + certChainPem when given (ConfigInvalid if they are
 * inconsistent), else from the cache in cacheDir, else freshly generated and cached (JSON, 0600,
 * written atomically). A corrupt or expired cache is regenerated; a cache that cannot be written is
 * skipped (the chain still works, it is just generated again next time).
 */
export async function loadOrCreateEmulatedChain (options: LoadEmulatedChainOptions = {}): Promise<EmulatedAmdChain> {
  const now = options.now ?? new Date()
  // An empty value counts as unset, so the message names the variable that is really missing.
  const vcekKeyPem = options.vcekKeyPem === '' ? undefined : options.vcekKeyPem
  const certChainPem = options.certChainPem === '' ? undefined : options.certChainPem
  if (vcekKeyPem !== undefined || certChainPem !== undefined) {
    if (vcekKeyPem === undefined) throw invalid(`${ENV_SOURCE.chain} is set but ${ENV_SOURCE.key} is not; set both or neither`, ENV_SOURCE.key)
    if (certChainPem === undefined) throw invalid(`${ENV_SOURCE.key} is set but ${ENV_SOURCE.chain} is not; set both or neither`, ENV_SOURCE.chain)
    return emulatedChainFromPem(vcekKeyPem, certChainPem, ENV_SOURCE, now)
  }
  const dir = options.cacheDir ?? defaultEmulatedCacheDir()
  const file = join(dir, CACHE_FILE)
  const cached = await readCache(file, now)
  if (cached.chain !== null) return cached.chain
  const generate = options.generate ?? (async (at: Date) => await generateEmulatedChain({ now: at }))
  const started = performance.now()
  options.progress?.(`generating the emulated AMD certificate chain (RSA-4096 keys: a few seconds, once; cached in ${dir})`)
  const chain = await writeCache(dir, file, await generate(now), cached.exists, now)
  options.progress?.(`emulated AMD certificate chain ready (${((performance.now() - started) / 1000).toFixed(1)} s)`)
  return chain
}

function errnoOf (err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined
}

async function readCache (file: string, now: Date): Promise<{ chain: EmulatedAmdChain | null, exists: boolean }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    return { chain: null, exists: errnoOf(err) !== 'ENOENT' }
  }
  try {
    const doc: unknown = JSON.parse(text)
    if (typeof doc !== 'object' || doc === null || !('format' in doc) || doc.format !== CACHE_FORMAT ||
      !('vcekKeyPem' in doc) || typeof doc.vcekKeyPem !== 'string' ||
      !('certChainPem' in doc) || typeof doc.certChainPem !== 'string') return { chain: null, exists: true }
    // Verified at `now`, so an expired cache is regenerated like a corrupt one.
    return { chain: emulatedChainFromPem(doc.vcekKeyPem, doc.certChainPem, { key: file, chain: file }, now), exists: true }
  } catch {
    return { chain: null, exists: true }
  }
}

async function writeCache (dir: string, file: string, chain: EmulatedAmdChain, replace: boolean, now: Date): Promise<EmulatedAmdChain> {
  const body = JSON.stringify({
    format: CACHE_FORMAT,
    vcekKeyPem: chain.vcekKey.export({ type: 'pkcs8', format: 'pem' }),
    certChainPem: chain.vcekPem + chain.chainPem
  }) + '\n'
  const tmp = join(dir, `.${CACHE_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.chmod(0o600) // open()'s mode goes through the umask; the file holds a private key
      await fh.writeFile(body)
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (!replace) {
      try {
        // link, unlike rename, fails when another process cached a chain first: then both use that one.
        await link(tmp, file)
        return chain
      } catch (err) {
        if (errnoOf(err) === 'EEXIST') {
          const theirs = await readCache(file, now)
          if (theirs.chain !== null) return theirs.chain
        }
      }
    }
    await rename(tmp, file)
    return chain
  } catch {
    return chain
  } finally {
    // Gone already after a rename; may be unreachable when the directory is not.
    await rm(tmp, { force: true }).catch(() => {})
  }
}
