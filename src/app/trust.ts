// What the process trusts and every client it calls out with, built once from the Config: the
// extra CA roots (SKR_EXTRA_CA_CERTS plus those an embedder passes, read and checked once), the
// egress-proxy routing, the upstream metrics, and the roots release signers must chain to. The
// attestation and key-release builds take their upstream clients from here, so one setting has one
// way to its use, and shutdown closes every client in one place.
import { readFile } from 'node:fs/promises'
import type { RootStore } from '../akv/root-store.ts'
import { checkExtraCaPems, loadRootStore } from '../akv/trust-store.ts'
import type { Config } from '../config/config.ts'
import { ConfigInvalid } from '../errors.ts'
import { Upstream, type UpstreamFactory, type UpstreamName, type UpstreamOptions } from '../http/upstream.ts'

/** The trust material and client factory of one process. */
export interface Trust {
  /** Extra PEM roots for upstream TLS and release-signer chains, in order: the embedder's, then SKR_EXTRA_CA_CERTS's. */
  readonly extraCa: readonly string[]
  /** A new client for `name` with the process's CA roots, proxy routing and metrics; closed by close(). */
  readonly upstream: UpstreamFactory
  /** Node's, the OS's and the extra roots, read on first use and parsed only as chains need them (../akv/root-store.ts): release signers chain to these. */
  trustedRoots (): RootStore
  /** Closes every client upstream() made; idempotent. */
  close (): Promise<void>
}

/** What createTrust needs besides the Config. */
export interface TrustOptions {
  /** Extra PEM roots an embedder trusts (the demo's local PKI, test doubles), before SKR_EXTRA_CA_CERTS's. */
  extraCa?: readonly string[]
  /** Records every upstream call (observability/metrics.ts's Metrics fits). */
  observeUpstream?: NonNullable<UpstreamOptions['metrics']>['observeUpstream']
}

/**
 * `extra` followed by the contents of config.extraCaFile (when set). An unreadable file is
 * ConfigInvalid naming SKR_EXTRA_CA_CERTS and the error code; the message never carries the path
 * or the file's contents.
 */
export async function readExtraCa (config: Pick<Config, 'extraCaFile'>, extra: readonly string[] = []): Promise<string[]> {
  const roots = [...extra]
  if (config.extraCaFile !== null) {
    try {
      roots.push(await readFile(config.extraCaFile, 'utf8'))
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw new ConfigInvalid(`SKR_EXTRA_CA_CERTS names a file that cannot be read (${typeof code === 'string' ? code : 'unknown error'})`,
        { cause: err, details: { key: 'SKR_EXTRA_CA_CERTS' } })
    }
  }
  return roots
}

/** Reads and checks the extra roots (ConfigInvalid for an unreadable file or a bad PEM) and returns the process's Trust. */
export async function createTrust (config: Pick<Config, 'extraCaFile' | 'proxy'>, options: TrustOptions = {}): Promise<Trust> {
  const extraCa = await readExtraCa(config, options.extraCa)
  // Checked here so a bad PEM stops start-up; the upstreams build their TLS contexts on first use.
  checkExtraCaPems(extraCa)
  const made: Upstream[] = []
  let roots: RootStore | undefined
  const observeUpstream = options.observeUpstream
  return {
    extraCa,
    upstream (name: UpstreamName, policy) {
      const upstream = new Upstream({
        name,
        proxy: config.proxy,
        ...(policy === undefined ? {} : { policy }),
        ...(extraCa.length === 0 ? {} : { ca: [...extraCa] }),
        ...(observeUpstream === undefined ? {} : { metrics: { observeUpstream } })
      })
      made.push(upstream)
      return upstream
    },
    trustedRoots () {
      // Every release gets the same store (signer-chain-cache.ts relies on it).
      roots ??= loadRootStore(extraCa.length === 0 ? {} : { extraCaPem: [...extraCa] })
      return roots
    },
    async close () {
      await Promise.allSettled(made.map(async (u) => { await u.close() }))
    }
  }
}
