// Chooses the attestation backend (`--attestation`, env SKR_ATTESTATION; docs/sev-snp.md#choosing-a-backend).
// `auto` tries configfs-tsm, then /dev/sev-guest, then the legacy /dev/sev, as go-sev-guest's
// GetQuoteProvider does. When none is there we fail at start-up: the reference silently serves a
// fixed fake report instead, which only fails later at MAA with an error nobody can trace back, so
// the simulator is never a fallback and must be asked for by name.
import { access } from 'node:fs/promises'
import { SnpDeviceUnavailable, isSidecarError } from '../errors.ts'
import type { QuoteProvider } from './provider.ts'
import { DEFAULT_TSM_ROOT, createTsmProvider, probeTsm as probeTsmDefault } from './tsm.ts'

/** The values `--attestation` accepts. */
export type AttestationMode = 'auto' | 'tsm' | 'sev-guest' | 'sev' | 'simulated'

const MODES: readonly AttestationMode[] = ['auto', 'tsm', 'sev-guest', 'sev', 'simulated']

/** The upstream sev-guest driver's device (Linux 6.1+). */
export const DEFAULT_SEV_GUEST_PATH = '/dev/sev-guest'
/** The 5.15-era Confidential ACI UVM guest device (docs/sev-snp.md#legacy-aci-guest-device). */
export const DEFAULT_SEV_PATH = '/dev/sev'

/** How to pick a backend; the probes and constructors are injectable for tests. */
export interface SelectOptions {
  mode: AttestationMode
  tsmRoot?: string
  sevGuestPath?: string
  sevPath?: string
  exists?: (path: string) => Promise<boolean>
  probeTsm?: (root: string) => Promise<{ usable: boolean, reason: string }>
  factories?: {
    tsm?: (root: string) => QuoteProvider
    ioctl?: (device: 'sev-guest' | 'sev', path: string) => Promise<QuoteProvider> | QuoteProvider
    simulated?: () => Promise<QuoteProvider>
  }
}

type Factories = NonNullable<SelectOptions['factories']>
type Backend = 'tsm' | 'sev-guest' | 'sev'

/** The mode named by a flag or env value (case and surrounding blanks ignored); null if unknown. */
export function parseAttestationMode (value: string): AttestationMode | null {
  const wanted = value.trim().toLowerCase()
  return MODES.find((mode) => mode === wanted) ?? null
}

const SIMULATED_HINT = 'for development without SEV-SNP hardware only, opt into fake reports with ' +
  '`--attestation simulated` (SKR_ATTESTATION=simulated); a real MAA never accepts them'

/** Picks and constructs the QuoteProvider for `mode`; `tried` lists each candidate and its outcome. */
export async function selectQuoteProvider (options: SelectOptions): Promise<{ provider: QuoteProvider, tried: string[] }> {
  const { mode } = options
  if (parseAttestationMode(mode) !== mode) throw new TypeError(`mode must be one of ${MODES.join(', ')}`)
  const factories = options.factories ?? {}
  const tried: string[] = []

  if (mode === 'simulated') {
    tried.push('simulated')
    if (factories.simulated === undefined) {
      throw new SnpDeviceUnavailable('`--attestation simulated` was requested but no simulator was supplied: the ' +
        'simulator needs its own configuration and is wired in only when that configuration enables it (development ' +
        'only); enable it, or use `--attestation auto` on an SEV-SNP guest', { details: { mode } })
    }
    return { provider: checked(await factories.simulated(), 'simulated'), tried }
  }

  const paths: Record<Backend, string> = {
    tsm: options.tsmRoot ?? DEFAULT_TSM_ROOT,
    'sev-guest': options.sevGuestPath ?? DEFAULT_SEV_GUEST_PATH,
    sev: options.sevPath ?? DEFAULT_SEV_PATH
  }
  const exists = options.exists ?? defaultExists
  const probeTsm = options.probeTsm ?? (async (root: string) => await probeTsmDefault({ root }))
  // An explicit mode never falls through: asking for sev-guest and silently getting /dev/sev
  // would hide a misconfigured deployment.
  const candidates: readonly Backend[] = mode === 'auto' ? ['tsm', 'sev-guest', 'sev'] : [mode]

  for (const backend of candidates) {
    const path = paths[backend]
    if (backend === 'tsm') {
      const probe = await probeTsm(path)
      tried.push(`tsm ${probe.reason}`)
      if (probe.usable) return { provider: checked(await construct(backend, path, factories), backend), tried }
    } else {
      const present = await exists(path)
      tried.push(`${backend} ${path}: ${present ? 'present' : 'not found'}`)
      if (present) return { provider: checked(await construct(backend, path, factories), backend), tried }
    }
  }

  const list = tried.join('; ')
  const message = mode === 'auto'
    ? `no SEV-SNP attestation interface found (tried ${list}). Run inside an SEV-SNP guest with configfs-tsm ` +
      `(Linux 6.7+) or the sev-guest device passed into the container, or ${SIMULATED_HINT}`
    : `\`--attestation ${mode}\` was requested but it is not usable (${list}); other backends are not tried ` +
      `for an explicit mode: use \`--attestation auto\` to try them all, or ${SIMULATED_HINT}`
  throw new SnpDeviceUnavailable(message, { details: { mode, tried: list } })
}

async function defaultExists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch (err) {
    // Anything but "no such path" means something is there; the backend will say what is wrong.
    const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined
    return code !== 'ENOENT' && code !== 'ENOTDIR'
  }
}

async function construct (backend: Backend, path: string, factories: Factories): Promise<QuoteProvider> {
  try {
    if (backend === 'tsm') return (factories.tsm ?? defaultTsm)(path)
    return await (factories.ioctl ?? defaultIoctl)(backend, path)
  } catch (err) {
    if (isSidecarError(err)) throw err
    throw new SnpDeviceUnavailable(`the ${backend} backend for ${path} could not be started`, { cause: err, details: { backend, path } })
  }
}

function defaultTsm (root: string): QuoteProvider {
  return createTsmProvider({ root })
}

// Imported on demand: the ioctl module (and the native addon behind it) loads only when that
// backend is chosen, so a tsm or simulated deployment never touches native code.
async function defaultIoctl (device: 'sev-guest' | 'sev', path: string): Promise<QuoteProvider> {
  const { createIoctlProvider } = await import('./ioctl.ts')
  return createIoctlProvider({ device, path })
}

// A factory that hands back the wrong kind of provider (a simulator wired into a hardware slot
// above all) would recreate the reference's silent fake report, so refuse it loudly.
function checked (provider: QuoteProvider, backend: Backend | 'simulated'): QuoteProvider {
  if (provider.backend !== backend || provider.simulated !== (backend === 'simulated')) {
    throw new TypeError(`the ${backend} factory returned a ${provider.backend} provider (simulated: ${String(provider.simulated)})`)
  }
  return provider
}
