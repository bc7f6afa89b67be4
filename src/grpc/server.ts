// The gRPC server: the key provider under the reference's name and the ocicrypt/CoCo name,
// grpc.health.v1 (so Kubernetes `grpc:` probes work) and server reflection (so `grpcurl
// list` works, as with the reference). Plaintext and loopback-only by default, like the
// reference (which hard-codes localhost) and like skr's HTTP API.
import { Server, ServerCredentials } from '@grpc/grpc-js'
import { ReflectionService } from '@grpc/reflection'
import { HealthImplementation, type ServingStatusMap } from 'grpc-health-check'
import pino from 'pino'
import { isLoopbackHost, type Config } from '../config.ts'
import { ConfigInvalid, ShuttingDown } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { AttestationService, KeyReleaseService } from '../service/types.ts'
import { loadGrpcDefinitions, OCICRYPT_SERVICE, REFERENCE_SERVICE } from './protos.ts'
import { ocicryptHandlers, referenceHandlers } from './service.ts'
import type { WrapOptions } from './wrap.ts'

/** What startGrpcServer needs. */
export interface GrpcServerDeps {
  readonly config: Config
  readonly attestation: AttestationService
  readonly keyRelease: KeyReleaseService
  readonly logger?: Logger
  /** The port to bind (0: any free port). Default: config.port for serverType 'grpc', config.grpcPort otherwise. */
  readonly port?: number
  /** File-system seam for WrapKey. */
  readonly wrapOptions?: WrapOptions
}

/** A listening gRPC server. */
export interface RunningGrpcServer {
  readonly port: number
  /** `127.0.0.1:50000` or `[::1]:50000`. */
  readonly address: string
  /**
   * Reports NOT_SERVING, lets in-flight calls finish for up to `graceMs` (default 10 s), then
   * answers those still waiting UNAVAILABLE (ERR_SHUTTING_DOWN) and cuts whatever is left.
   */
  close (graceMs?: number): Promise<void>
}

/** Default grace period for in-flight calls on close. */
export const DEFAULT_GRACE_MS = 10_000

/** How long calls stopped at the end of the grace period get to send their status (ms). */
const STOP_FLUSH_MS = 500

// 1 MiB like the HTTP body limit: key-provider messages are a few kilobytes.
const MAX_MESSAGE_BYTES = 1024 * 1024

/** The address to bind for a configured host: 'localhost' pins IPv4 loopback, IPv6 literals get brackets. */
export function bindHost (host: string): string {
  if (host.toLowerCase() === 'localhost') return '127.0.0.1'
  const bare = host.replace(/^\[|\]$/g, '')
  return bare.includes(':') ? `[${bare}]` : bare
}

async function bind (server: Server, address: string): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => {
      if (err === null) resolve(port)
      else reject(new ConfigInvalid(`cannot listen for gRPC on ${address}: ${err.message}`, { cause: err }))
    })
  })
}

/** Starts the gRPC server on config.host and the given port. */
export async function startGrpcServer (deps: GrpcServerDeps): Promise<RunningGrpcServer> {
  const { config } = deps
  // config.ts already refuses this; checked again because exposure is the costly mistake.
  if (!isLoopbackHost(config.host) && !config.allowNonLoopback) {
    throw new ConfigInvalid('SKR_HOST is not a loopback address and SKR_ALLOW_NON_LOOPBACK is not set')
  }
  const logger = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'grpc' })
  const defs = loadGrpcDefinitions()
  // Aborted when the grace period of close() ends: calls still waiting then answer UNAVAILABLE
  // with ERR_SHUTTING_DOWN instead of being cut by forceShutdown.
  const stop = new AbortController()
  const handlerDeps = { config, attestation: deps.attestation, keyRelease: deps.keyRelease, logger, wrapOptions: deps.wrapOptions, stopSignal: stop.signal }

  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES
  })
  server.addService(defs.reference, referenceHandlers(handlerDeps))
  server.addService(defs.ocicrypt, ocicryptHandlers(handlerDeps))
  const serving: ServingStatusMap = { '': 'SERVING', [REFERENCE_SERVICE]: 'SERVING', [OCICRYPT_SERVICE]: 'SERVING' }
  const health = new HealthImplementation(serving)
  health.addToServer(server)
  new ReflectionService(defs.all).addToServer(server)

  const requested = deps.port ?? (config.serverType === 'grpc' ? config.port : config.grpcPort)
  const host = bindHost(config.host)
  const port = await bind(server, `${host}:${requested}`)
  const address = `${host}:${port}`
  if (!isLoopbackHost(config.host)) {
    logger.warn({ address }, `the gRPC key provider is listening on the NON-LOOPBACK address ${address}: anyone who can reach it can unwrap keys; this was allowed by SKR_ALLOW_NON_LOOPBACK`)
  }
  logger.info({ address }, 'skr gRPC key provider listening')

  let closing: Promise<void> | null = null
  const close = async (graceMs: number = DEFAULT_GRACE_MS): Promise<void> => {
    closing ??= new Promise<void>(resolve => {
      for (const name of Object.keys(serving)) health.setStatus(name, 'NOT_SERVING')
      let flush: ReturnType<typeof setTimeout> | undefined
      const timer = setTimeout(() => {
        stop.abort(new ShuttingDown('server is shutting down: the grace period ended before the answer was ready', { details: { retryAfterSeconds: 1 } }))
        // The stopped calls' statuses are sent on the next turns of the loop; then cut what is left.
        flush = setTimeout(() => { server.forceShutdown(); resolve() }, graceMs === 0 ? 0 : STOP_FLUSH_MS)
        flush.unref()
      }, graceMs)
      timer.unref()
      server.tryShutdown(() => { clearTimeout(timer); clearTimeout(flush); resolve() })
    })
    await closing
  }
  return { port, address, close }
}
